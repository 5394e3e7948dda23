# Stage "manifest": one job per dataset in config["datasets"] parses its annotations
# into results/manifest/<dataset>/ (samples, events, classes, meta) and writes the
# coverage report (listed / present / decodable / with audio per split) and problems.tsv.
# A dataset with `generated: true` has its root made by the synthetic rule, so that
# root is an input; real datasets are read where they lie.


rule manifest:
    input:
        manifest_inputs,
    output:
        samples="results/manifest/{dataset}/samples.tsv",
        events="results/manifest/{dataset}/events.tsv",
        classes="results/manifest/{dataset}/classes.txt",
        meta="results/manifest/{dataset}/meta.json",
        coverage="results/manifest/{dataset}/coverage.tsv",
        problems="results/manifest/{dataset}/problems.tsv",
    log:
        "logs/manifest/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        cfg=lambda wildcards: as_json(dataset_cfg(wildcards.dataset)),
        code=code("datasets", "stages/manifest"),
        out=lambda wildcards: f"results/manifest/{wildcards.dataset}",
    shell:
        "avpipe manifest --dataset {wildcards.dataset} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"
