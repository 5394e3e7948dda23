# Stage "pretrain" (CLCL stage A): the collaborative encoder per (dataset, seed).
# Each stage of the unsupervised method gets only its own config slice (+ data), so
# that editing the selflabel or EM settings never reruns pretraining.


rule pretrain:
    input:
        unpack(unsup_stores),
    output:
        encoder="results/pretrain/{dataset}/seed{seed}/encoder.pt",
        embeddings="results/pretrain/{dataset}/seed{seed}/embeddings.npz",
        history="results/pretrain/{dataset}/seed{seed}/history.tsv",
        summary="results/pretrain/{dataset}/seed{seed}/summary.json",
    log:
        "logs/pretrain/{dataset}/seed{seed}.log",
    threads: unsup_threads
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(unsup_slice(wildcards.dataset, "pretrain")),
        code=code(*stage_code("pretrain")),
        out=lambda wildcards, output: os.path.dirname(output.encoder),
    shell:
        "avpipe pretrain "
        "--manifest results/manifest/{wildcards.dataset} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --threads {threads} "
        "--config-json {params.cfg:q} --out-dir {params.out} > {log} 2>&1"
