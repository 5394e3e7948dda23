# Stage "avvp": HAN and CoLeaF, weakly supervised audio-visual video parsing.
# One job per (dataset, method, seed): trains on weak labels, selects the epoch on val,
# writes the deployed model, val+test predictions and the training history.
# Metrics: rule evaluate_avvp in evaluate.smk.


# Datasets of the method; each is defined under `datasets` (checks.smk).
AVVP_DATASETS = list(config["avvp"].get("datasets", []))
# methods and named variants of them (avvp.variants), e.g. coleaf_cmpae
AVVP_METHODS = list(config["avvp"].get("methods", []))
AVVP_NAMES = "|".join(AVVP_METHODS) or "none"
AVVP_CODE = (
    "methods/avvp",
    "methods/han",
    "methods/coleaf",
    "training/loop",
    "training/epochs",
    "training/streams",
    "training/checkpoint",
    "datasets/avvp",
    "datasets/manifest",
    "io/store",
    "metrics/avvp",
    "stages/avvp",
    "localize/inputs",
)


rule avvp:
    input:
        unpack(avvp_stores),
    output:
        model="results/avvp/{dataset}/{method}/seed{seed}/model.pt",
        predictions="results/avvp/{dataset}/{method}/seed{seed}/predictions.npz",
        history="results/avvp/{dataset}/{method}/seed{seed}/history.tsv",
        summary="results/avvp/{dataset}/{method}/seed{seed}/summary.json",
    log:
        "logs/avvp/{dataset}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=AVVP_NAMES,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(avvp_slice(wildcards.dataset, wildcards.method)),
        method=lambda wildcards: avvp_base(wildcards.method),
        code=code(*AVVP_CODE),
        out=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        "avpipe avvp --method {params.method} --manifest results/manifest/{wildcards.dataset} "
        "--audio-store {input.audio:q} --frames-store {input.frames:q} --motion-store {input.motion:q} "
        "--seed {wildcards.seed} --config-json {params.cfg:q} --out-dir {params.out} > {log} 2>&1"


ALL_TARGETS.extend(
    f"results/avvp/{ds}/{method}/seed{seed}/predictions.npz"
    for ds in AVVP_DATASETS
    for method in AVVP_METHODS
    for seed in config["run"]["seeds"]
)
