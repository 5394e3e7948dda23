# Stage "extract": one job per (dataset, recipe, shard) runs the recipe's extractor over
# the decoded shard -> results/extract/<dataset>/<recipe>/shard<k>.zarr; one gather job
# per (dataset, recipe) concatenates the shards into results/extract/<dataset>/<recipe>.zarr
# (one writer, whole chunks); failures.tsv lists the videos decoding could not use.
# Each job's params hold only its own recipe's options, so editing one recipe reruns
# only that store (unless it raises the dataset's decode frames_per_segment).
# A per-video cache outside the outputs (extract.cache, avpipe/io/cache.py) makes a rerun
# shard job (e.g. after videos were added to the manifest) compute only the new videos.


# Datasets with stores that are defined under `datasets` (others are skipped, so the DAG
# builds before a dataset is configured).
EXTRACT_DATASETS = [
    d for d in config["extract"].get("stores", {}) if d in config["datasets"]
]


rule extract:
    input:
        decoded="results/decode/{dataset}/shard{shard}.zarr",
    output:
        directory("results/extract/{dataset}/{recipe}/shard{shard}.zarr"),
    log:
        "logs/extract/{dataset}/{recipe}/shard{shard}.log",
    threads: config["extract"].get("num_threads", 2)
    resources:
        mem_mb=config["extract"].get("mem_mb", 8000),
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(
            extract_slice(wildcards.dataset, wildcards.recipe)
        ),
        code=code("features", "io/cache", "io/decode", "io/store", "stages/extract"),
        cache=lambda wildcards: extract_cache_arg(wildcards.dataset, wildcards.recipe),
    shell:
        "avpipe extract shard --decoded {input.decoded:q} --config-json {params.cfg:q} "
        "{params.cache} --out {output:q} > {log} 2>&1"


rule extract_gather:
    input:
        lambda wildcards: expand(
            "results/extract/{dataset}/{recipe}/shard{shard}.zarr",
            dataset=wildcards.dataset,
            recipe=wildcards.recipe,
            shard=decode_shards(wildcards.dataset),
        ),
    output:
        directory("results/extract/{dataset}/{recipe}.zarr"),
    log:
        "logs/extract/{dataset}/{recipe}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code("io/store", "stages/extract"),
    shell:
        "avpipe extract gather {input:q} --out {output:q} > {log} 2>&1"


rule extract_failures:
    input:
        lambda wildcards: expand(
            "results/decode/{dataset}/shard{shard}.tsv",
            dataset=wildcards.dataset,
            shard=decode_shards(wildcards.dataset),
        ),
    output:
        "results/extract/{dataset}/failures.tsv",
    log:
        "logs/extract/{dataset}/failures.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        code=code("stages/extract"),
    shell:
        "avpipe extract failures {input:q} --out {output:q} > {log} 2>&1"


ALL_TARGETS.extend(
    [
        f"results/extract/{dataset}/{recipe}.zarr"
        for dataset in EXTRACT_DATASETS
        for recipe in config["extract"]["stores"][dataset]
    ]
    + [f"results/extract/{dataset}/failures.tsv" for dataset in EXTRACT_DATASETS]
)
