# Stage "decode": each (dataset, shard) decodes its videos once, for every recipe of the
# dataset: results/decode/<dataset>/shard<k>.zarr (frames on the segment grid + 16 kHz
# mono audio) and shard<k>.tsv (per-video status). Videos go to shard crc32(id) % shards.


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
