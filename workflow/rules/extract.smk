# Stage "extract": one job per (dataset, shard) decodes each of its videos once, in memory,
# and computes every recipe of extract.stores.<dataset> from that one decode:
# results/extract/<dataset>/shards/shard<k>/{<recipe>.zarr,status.tsv}. One gather job per
# (dataset, recipe) concatenates the shards into results/extract/<dataset>/<recipe>.zarr
# (one writer, whole chunks); failures.tsv lists the videos that could not be used.
# A per-video cache outside the outputs (extract.cache, avpipe/io/cache.py), keyed by the
# video file's content, makes a rerun shard job compute only what changed: after a recipe
# edit only that recipe's features, after adding videos only the new videos.


# Released stores: datasets.<ds>.features.<recipe> = {released, format, ...}; the
# extract_import rule makes results/extract/<ds>/<recipe>.zarr from the file, and the
# extraction rules never claim that path (checks.smk: a recipe is released or extracted).
RELEASED = released_stores()
# "<ds>/<recipe>" alternatives; a regex that matches nothing when none is released
RELEASED_PAIRS = "|".join(re.escape(f"{d}/{r}") for d, r in RELEASED) or "(?!)"


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
    wildcard_constraints:
        dataset=rf"(?!(?:{RELEASED_PAIRS})\.zarr$)[^/]+",
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


# Released features -> the same store format, streamed (bounded memory), with the
# file's sha256 in the attributes (avpipe/io/released.py). The manifest maps AVE h5
# rows to video ids, and every video it lists must be in the release.
rule extract_import:
    input:
        released=lambda wildcards: RELEASED[(wildcards.dataset, wildcards.recipe)][
            "released"
        ],
        samples="results/manifest/{dataset}/samples.tsv",
    output:
        directory("results/extract/{dataset}/{recipe}.zarr"),
    log:
        "logs/extract/{dataset}/{recipe}.log",
    wildcard_constraints:
        dataset=rf"(?=(?:{RELEASED_PAIRS})\.zarr$)[^/]+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        fmt=lambda wildcards: RELEASED[(wildcards.dataset, wildcards.recipe)]["format"],
        key=lambda wildcards: RELEASED[(wildcards.dataset, wildcards.recipe)].get(
            "key", "avadataset"
        ),
        dtype=lambda wildcards: RELEASED[(wildcards.dataset, wildcards.recipe)].get(
            "dtype", "float32"
        ),
        manifest=lambda wildcards, input: os.path.dirname(input.samples),
        codec=config["extract"]["store_codec"],
        code=code("io/released", "io/store", "stages/extract"),
    shell:
        "avpipe extract import --format {params.fmt} --source {input.released:q} "
        "--recipe {wildcards.recipe} --manifest {params.manifest:q} --key {params.key:q} "
        "--dtype {params.dtype} --codec {params.codec} --out {output:q} > {log} 2>&1"
