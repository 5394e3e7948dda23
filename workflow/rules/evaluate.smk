# Stage "evaluate": metrics from each training stage's predictions.npz
# (avpipe evaluate --task ave|unsupervised|avvp). Outputs under
# results/evaluate/<stage>/<dataset>/<experiment>/..., logs under logs/evaluate/.
# One rule per training stage; the task and its code hash come from the method registry
# (avpipe/methods/registry.py), which runs are evaluated from the config (all_targets).


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
        cfg=evaluate_cfg("unsupervised"),
        code=code(*TASK_CODE["unsupervised"]),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task unsupervised --manifest results/manifest/{wildcards.dataset} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


# --- PSP / CPSP (task "ave") -------------------------------------------------------------
# One evaluation per (dataset, experiment, seed): AVE segment accuracy (YapengTian/AVE-ECCV18),
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
        cfg=evaluate_cfg("ave"),
        code=code(*TASK_CODE["ave"]),
        manifest=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task ave --manifest {params.manifest} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


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
        method=wildcard_choices(avvp_names()),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        task=lambda wildcards: avvp_evaluate_task(wildcards.dataset),
        cfg=avvp_evaluate_cfg,
        code=code(*TASK_CODE["avvp"]),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task {params.task} --manifest results/manifest/{wildcards.dataset} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"


# --- method families on the generic "train" stage ------------------------------------
# One evaluation per (dataset, method, seed) with the task the registry entry names;
# the report places it by that task (AVE accuracy, unsupervised, AVVP tables).


rule evaluate_train:
    input:
        manifest="results/manifest/{dataset}/samples.tsv",
        predictions="results/train/{dataset}/{method}/seed{seed}/predictions.npz",
    output:
        metrics="results/evaluate/train/{dataset}/{method}/seed{seed}/metrics.json",
    log:
        "logs/evaluate/train/{dataset}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=wildcard_choices(generic()),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        task=lambda wildcards: METHODS[wildcards.method].task,
        cfg=lambda wildcards: as_json(
            resolve(
                "evaluate",
                wildcards.dataset,
                method=wildcards.method,
                config=config,
            )
        ),
        code=lambda wildcards: code(*TASK_CODE[METHODS[wildcards.method].task]),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avpipe evaluate --task {params.task} --manifest results/manifest/{wildcards.dataset} "
        "--predictions {input.predictions:q} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"
