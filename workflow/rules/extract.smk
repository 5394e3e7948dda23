# Stage "extract": one job per (dataset, shard) decodes each of its videos once, in memory,
# and computes every recipe of extract.stores.<dataset> from that one decode:
# results/extract/<dataset>/shards/shard<k>/{<recipe>.zarr,status.tsv}. One gather job per
# (dataset, recipe) concatenates the shards into results/extract/<dataset>/<recipe>.zarr
# (one writer, whole chunks); failures.tsv lists the videos that could not be used.
# A per-video cache outside the outputs (extract.cache, avpipe/io/cache.py), keyed by the
# video file's content, makes a rerun shard job compute only what changed: after a recipe
# edit only that recipe's features, after adding videos only the new videos.


rule extract:
    input:
        samples="results/manifest/{dataset}/samples.tsv",
        meta="results/manifest/{dataset}/meta.json",
    output:
        directory("results/extract/{dataset}/shards/shard{shard}"),
    log:
        "logs/extract/{dataset}/shard{shard}.log",
    threads: config["extract"]["workers"]
    resources:
        mem_mb=config["extract"]["mem_mb"],
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(extract_slice(wildcards.dataset)),
        code=code(
            "features",
            "io/cache",
            "io/decode",
            "io/grid",
            "io/store",
            "datasets/manifest",
            "stages/extract",
        ),
        cache=lambda wildcards: extract_cache_arg(wildcards.dataset),
        manifest=lambda wildcards, input: os.path.dirname(input.samples),
    shell:
        "avpipe extract shard --manifest {params.manifest:q} --shard {wildcards.shard} "
        "--config-json {params.cfg:q} {params.cache} --workers {threads} --out {output:q} "
        "> {log} 2>&1"


rule extract_gather:
    input:
        lambda wildcards: expand(
            "results/extract/{dataset}/shards/shard{shard}",
            dataset=wildcards.dataset,
            shard=extract_shards(wildcards.dataset),
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
        stores=lambda wildcards, input: " ".join(
            shlex.quote(f"{d}/{wildcards.recipe}.zarr") for d in input
        ),
        code=code("io/store", "stages/extract"),
    shell:
        "avpipe extract gather {params.stores} --out {output:q} > {log} 2>&1"


rule extract_failures:
    input:
        lambda wildcards: expand(
            "results/extract/{dataset}/shards/shard{shard}",
            dataset=wildcards.dataset,
            shard=extract_shards(wildcards.dataset),
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
        tables=lambda wildcards, input: " ".join(
            shlex.quote(f"{d}/status.tsv") for d in input
        ),
        code=code("stages/extract"),
    shell:
        "avpipe extract failures {params.tables} --out {output:q} > {log} 2>&1"
