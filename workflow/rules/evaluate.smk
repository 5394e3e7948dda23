# Stage "evaluate": metrics from each training stage's predictions.npz
# (avpipe evaluate --task ave|unsupervised|avvp). Outputs under
# results/evaluate/<stage>/<dataset>/<experiment>/..., logs under logs/evaluate/.
# Each method's rules live in its own section below.


# --- paper 000: unsupervised (task "unsupervised") ----------------------------------------
#
#
#


# --- paper 001: PSP / CPSP (task "ave") ---------------------------------------------------
#
#
#


# --- paper 002: HAN / CoLeaF (task "avvp") ------------------------------------------------
#
#
#
