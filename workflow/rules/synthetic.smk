# Stage "synthetic": the embedded default dataset. One job per part writes
# results/synthetic/<part>/ (videos/ + the real AVE or LLP annotation files,
# truth.tsv, synthetic.json), which the manifest rule reads as the root of
# datasets.synth_ave / datasets.synth_llp. Each job gets the shared keys plus
# its own part's section, so changing llp sizes does not regenerate ave.

SYNTHETIC_PARTS = ("ave", "llp")


rule synthetic:
    output:
        directory("results/synthetic/{part}"),
    log:
        "logs/synthetic/{part}.log",
    wildcard_constraints:
        part="|".join(SYNTHETIC_PARTS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=lambda wildcards: as_json(
            {
                k: v
                for k, v in config["synthetic"].items()
                if k not in SYNTHETIC_PARTS or k == wildcards.part
            }
        ),
        code=code("datasets/synthetic", "stages/synthetic"),
    shell:
        "avpipe synthetic --part {wildcards.part} --config-json {params.cfg:q} "
        "--out-dir {output} > {log} 2>&1"
