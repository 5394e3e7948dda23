# Stage "selflabel" (CLCL stage B): pseudo-labels of every training video from
# the annotator trained by label contrast on the stage-A features (uniform gamma).


rule selflabel:
    input:
        unpack(unsup_stores),
        encoder="results/pretrain/{dataset}/seed{seed}/encoder.pt",
    output:
        annotator="results/selflabel/{dataset}/seed{seed}/annotator.pt",
        labels="results/selflabel/{dataset}/seed{seed}/pseudo_labels.npz",
        tsv="results/selflabel/{dataset}/seed{seed}/pseudo_labels.tsv",
        history="results/selflabel/{dataset}/seed{seed}/history.tsv",
        summary="results/selflabel/{dataset}/seed{seed}/summary.json",
    log:
        "logs/selflabel/{dataset}/seed{seed}.log",
    threads: unsup_threads
    resources:
        mem_mb=8000,
        runtime=300,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(unsup_slice(wildcards.dataset, "selflabel")),
        code=code(*stage_code("selflabel")),
        pretrain=lambda wildcards, input: os.path.dirname(input.encoder),
        out=lambda wildcards, output: os.path.dirname(output.annotator),
    shell:
        "avpipe selflabel "
        "--manifest results/manifest/{wildcards.dataset} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --threads {threads} "
        "--config-json {params.cfg:q} --pretrain {params.pretrain} "
        "--out-dir {params.out} > {log} 2>&1"
