# Stage "decode": each (dataset, shard) decodes its videos once, for every recipe of the
# dataset: results/decode/<dataset>/shard<k>.zarr (frames on the segment grid + 16 kHz
# mono audio) and shard<k>.tsv (per-video status). Videos go to shard crc32(id) % shards.


import os


def decode_slice(dataset):
    """config["decode"] with the dataset's overrides; frames_per_segment "auto" resolved."""
    dec = config["decode"]
    out = {k: v for k, v in dec.items() if k not in ("overrides", "temp")}
    out.update(dec.get("overrides", {}).get(dataset, {}))
    if out.get("frames_per_segment", "auto") == "auto":
        rates = [
            extract_options(dataset, r).get("frames_per_segment", 0)
            for r in config["extract"].get("stores", {}).get(dataset, [])
        ]
        out["frames_per_segment"] = max(rates, default=0) or 1
    return out


def decode_shards(dataset):
    return range(decode_slice(dataset).get("shards", 2))


def decode_output(path):
    return temp(directory(path)) if config["decode"].get("temp", False) else directory(path)


rule decode:
    input:
        samples="results/manifest/{dataset}/samples.tsv",
        meta="results/manifest/{dataset}/meta.json",
    output:
        store=decode_output("results/decode/{dataset}/shard{shard}.zarr"),
        status="results/decode/{dataset}/shard{shard}.tsv",
    log:
        "logs/decode/{dataset}/shard{shard}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        cfg=lambda wildcards: as_json(decode_slice(wildcards.dataset)),
        code=code("io/decode", "stages/decode", "datasets/manifest"),
        manifest=lambda wildcards, input: os.path.dirname(input.samples),
    shell:
        "avpipe decode --manifest {params.manifest:q} --shard {wildcards.shard} "
        "--config-json {params.cfg:q} --out {output.store:q} --status {output.status:q} "
        "--workers {threads} > {log} 2>&1"
