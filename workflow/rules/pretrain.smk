# Stage "pretrain" (paper 000 stage A): the collaborative encoder per (dataset, seed).
# Each stage of the unsupervised method gets only its own config slice (+ data), so
# that editing the selflabel or EM settings never reruns pretraining.


import os


def unsup_slice(dataset, *sections):
    """{"data": ..., <section>: ...} of config["unsupervised"], with the dataset's overrides."""
    un = config["unsupervised"]
    over = un.get("overrides", {}).get(dataset, {})
    out = {}
    for name in ("data", *sections):
        merged = json.loads(json.dumps(un[name]))
        for key, value in over.get(name, {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        out[name] = merged
    out["data"]["device"] = config["run"]["device"]
    # threads reach the job as --threads {threads}, not through the config slice, so
    # that a different core count does not invalidate the outputs
    out["data"].pop("num_threads", None)
    return out


def unsup_threads(wildcards):
    """data.num_threads of the dataset (default 1: ~8x faster than 2 on a shared 2-core box)."""
    un = config["unsupervised"]
    over = un.get("overrides", {}).get(wildcards.dataset, {}).get("data", {})
    return over.get("num_threads", un["data"].get("num_threads", 1))


def unsup_stores(wildcards):
    data = unsup_slice(wildcards.dataset)["data"]
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "visual": f"results/extract/{wildcards.dataset}/{data['visual_recipe']}.zarr",
        "audio": f"results/extract/{wildcards.dataset}/{data['audio_recipe']}.zarr",
    }


# Datasets of unsupervised.datasets that are defined under `datasets` (others are
# skipped, so the DAG builds before any dataset is configured).
UNSUP_DATASETS = [
    d for d in config["unsupervised"]["datasets"] if d in config["datasets"]
]
# Sources each stage runs (editing the annotator does not rerun pretraining).
UNSUP_CODE = tuple(
    f"methods/clcl/{m}"
    for m in (
        "__init__",
        "cli",
        "config",
        "data",
        "losses",
        "memory",
        "model",
        "pretrain",
        "pipeline",
    )
) + (
    "training/epochs",
    "training/checkpoint",
    "io/store",
    "datasets/manifest",
    "utils/provenance",
)
UNSUP_CODE_SELFLABEL = ("methods/clcl/annotator", "methods/clcl/localizer")


rule pretrain:
    input:
        unpack(unsup_stores),
    output:
        encoder="results/pretrain/{dataset}/seed{seed}/encoder.pt",
        embeddings="results/pretrain/{dataset}/seed{seed}/embeddings.npz",
        history="results/pretrain/{dataset}/seed{seed}/history.tsv",
    log:
        "logs/pretrain/{dataset}/seed{seed}.log",
    threads: unsup_threads
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(unsup_slice(wildcards.dataset, "pretrain")),
        code=code(*UNSUP_CODE, "stages/pretrain"),
        out=lambda wildcards, output: os.path.dirname(output.encoder),
    shell:
        "avpipe pretrain "
        "--manifest results/manifest/{wildcards.dataset} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --threads {threads} "
        "--config-json {params.cfg:q} --out-dir {params.out} > {log} 2>&1"
