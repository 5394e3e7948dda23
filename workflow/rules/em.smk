# Stage "em" (CLCL stage C): EM round k = 1..unsupervised.em.rounds, one job each.
# Round 1 starts from the selflabel pseudo-labels (uniform gamma); round k >= 2
# re-estimates them with round k-1's localizer.


rule em:
    input:
        unpack(unsup_stores),
        unpack(em_inputs),
    output:
        localizer="results/em/{dataset}/seed{seed}/round{round}/localizer.pt",
        predictions="results/em/{dataset}/seed{seed}/round{round}/predictions.npz",
        timelines="results/em/{dataset}/seed{seed}/round{round}/timelines.tsv",
        labels="results/em/{dataset}/seed{seed}/round{round}/pseudo_labels.tsv",
        labels_npz="results/em/{dataset}/seed{seed}/round{round}/pseudo_labels.npz",
        annotator="results/em/{dataset}/seed{seed}/round{round}/annotator.pt",
        embeddings="results/em/{dataset}/seed{seed}/round{round}/embeddings.npz",
        history="results/em/{dataset}/seed{seed}/round{round}/history.tsv",
        summary="results/em/{dataset}/seed{seed}/round{round}/summary.json",
    log:
        "logs/em/{dataset}/seed{seed}/round{round}.log",
    threads: unsup_threads
    resources:
        mem_mb=8000,
        runtime=300,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(unsup_slice(wildcards.dataset, "em")),
        code=code(*stage_code("em")),
        pretrain=lambda wildcards, input: os.path.dirname(input.encoder),
        selflabel=lambda wildcards, input: os.path.dirname(input.labels),
        previous=em_previous_arg,
        out=lambda wildcards, output: os.path.dirname(output.localizer),
    shell:
        "avpipe em "
        "--manifest results/manifest/{wildcards.dataset} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --threads {threads} "
        "--config-json {params.cfg:q} --round {wildcards.round} "
        "--pretrain {params.pretrain} --selflabel {params.selflabel} {params.previous} "
        "--out-dir {params.out} > {log} 2>&1"
