# Stage "evaluate": metrics from each training stage's predictions.npz
# (avpipe evaluate --task ave|unsupervised|avvp). Outputs under
# results/evaluate/<stage>/<dataset>/<experiment>/..., logs under logs/evaluate/.
# Each method's rules live in its own section below.


# --- paper 000: unsupervised (task "unsupervised") ----------------------------------------
# One evaluation per EM round: mapping pseudo-class -> class fitted on the training
# videos, purity/NMI/ARI per round, segment accuracy on unsupervised.evaluate_split.
# Datasets without classes (format "folder") are not evaluated: their EM rounds
# still write pseudo-labels and timelines.


def unsup_labelled(dataset):
    return config["datasets"].get(dataset, {}).get("format") != "folder"


rule evaluate_unsupervised:
    input:
        manifest="results/manifest/{dataset}/samples.tsv",
        predictions="results/em/{dataset}/seed{seed}/round{round}/predictions.npz",
    output:
        metrics="results/evaluate/unsupervised/{dataset}/{experiment}/seed{seed}/round{round}/metrics.json",
        per_class="results/evaluate/unsupervised/{dataset}/{experiment}/seed{seed}/round{round}/per_class.tsv",
        mapping="results/evaluate/unsupervised/{dataset}/{experiment}/seed{seed}/round{round}/mapping.tsv",
    log:
        "logs/evaluate/unsupervised/{dataset}/{experiment}/seed{seed}/round{round}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=as_json({"split": config["unsupervised"]["evaluate_split"]}),
        code=code(
            "metrics/__init__",
            "metrics/unsupervised",
            "metrics/ave",
            "stages/evaluate",
            "datasets/manifest",
        ),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task unsupervised --manifest results/manifest/{wildcards.dataset} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


UNSUP_METRICS = [
    f"results/evaluate/unsupervised/{ds}/{config['unsupervised']['experiment']}/seed{seed}/round{k}/metrics.json"
    for ds in UNSUP_DATASETS
    if unsup_labelled(ds)
    for seed in config["run"]["seeds"]
    for k in range(1, unsup_slice(ds, "em")["em"]["rounds"] + 1)
]
ALL_TARGETS.extend(UNSUP_METRICS)
if "EVAL_METRICS" in globals():
    EVAL_METRICS.extend(UNSUP_METRICS)


# --- paper 001: PSP / CPSP (task "ave") ---------------------------------------------------
#
#
#


# --- paper 002: HAN / CoLeaF (task "avvp") ------------------------------------------------
#
#
#
