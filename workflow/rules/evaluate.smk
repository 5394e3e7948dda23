# Stage "evaluate": metrics from each training stage's predictions.npz
# (avpipe evaluate --task ave|unsupervised|avvp). Outputs under
# results/evaluate/<stage>/<dataset>/<experiment>/..., logs under logs/evaluate/.
# Each method's rules live in its own section below.


# --- CLCL: unsupervised (task "unsupervised") -------------------------------------------
# One evaluation per EM round: mapping pseudo-class -> class fitted on the training
# videos, purity/NMI/ARI per round, segment accuracy on unsupervised.evaluate_split.
# Datasets without classes (format "folder") are not evaluated: their EM rounds
# still write pseudo-labels and timelines.


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


# --- PSP / CPSP (task "ave") -------------------------------------------------------------
# One evaluation per (dataset, experiment, seed): AVE segment accuracy (spec §5.1),
# overall and per class (background = the last row), on cpsp.data.evaluate_split.


rule evaluate_cpsp:
    input:
        manifest="results/manifest/{dataset}/samples.tsv",
        predictions="results/cpsp/{dataset}/{experiment}/seed{seed}/predictions.npz",
    output:
        metrics="results/evaluate/cpsp/{dataset}/{experiment}/seed{seed}/metrics.json",
        per_class="results/evaluate/cpsp/{dataset}/{experiment}/seed{seed}/per_class.tsv",
    log:
        "logs/evaluate/cpsp/{dataset}/{experiment}/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=cpsp_evaluate_cfg,
        code=code(
            "metrics/__init__", "metrics/ave", "stages/evaluate", "datasets/manifest"
        ),
        manifest=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task ave --manifest {params.manifest} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


CPSP_METRICS = [
    f"results/evaluate/cpsp/{ds}/{exp}/seed{seed}/metrics.json"
    for ds in CPSP_DATASETS
    for exp in config["cpsp"]["experiments"]
    for seed in config["run"]["seeds"]
]
ALL_TARGETS.extend(CPSP_METRICS)
if "EVAL_METRICS" in globals():
    EVAL_METRICS.extend(CPSP_METRICS)

# --- HAN / CoLeaF (task "avvp", or "unav100" for UnAV-100 data) --------------------------
# Every AVVP metric (segment/event A, V, AV, Ao, Vo, Type@AV(o), Event@AV(o); without the
# Ao/Vo ones when A and V truth are identical) of the test split under each fixed-threshold
# setting and the val-selected per-class thresholds: metrics.json
# (<setting>.<level>.<metric>), scores.tsv (paper-style table), thresholds.tsv. UnAV-100
# adds its official metric, detection mAP at tIoU 0.1:0.1:0.9 (detection.tsv).


rule evaluate_avvp:
    input:
        manifest="results/manifest/{dataset}/samples.tsv",
        predictions="results/avvp/{dataset}/{method}/seed{seed}/predictions.npz",
    output:
        metrics="results/evaluate/avvp/{dataset}/{method}/seed{seed}/metrics.json",
        scores="results/evaluate/avvp/{dataset}/{method}/seed{seed}/scores.tsv",
    log:
        "logs/evaluate/avvp/{dataset}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=AVVP_NAMES,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        task=lambda wildcards: avvp_evaluate_task(wildcards.dataset),
        cfg=avvp_evaluate_cfg,
        code=code(
            "metrics/__init__",
            "metrics/avvp",
            "metrics/unav",
            "config",
            "stages/evaluate",
            "datasets/manifest",
        ),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task {params.task} --manifest results/manifest/{wildcards.dataset} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


AVVP_METRICS = [
    f"results/evaluate/avvp/{ds}/{method}/seed{seed}/{name}"
    for ds in AVVP_DATASETS
    for method in AVVP_METHODS
    for seed in config["run"]["seeds"]
    for name in ("metrics.json", "scores.tsv")
]
ALL_TARGETS.extend(AVVP_METRICS)
if "EVAL_METRICS" in globals():
    EVAL_METRICS.extend(m for m in AVVP_METRICS if m.endswith(".json"))
