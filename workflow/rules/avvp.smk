# Stage "avvp": HAN and CoLeaF, weakly supervised audio-visual video parsing.
# One job per (dataset, method, seed): trains on weak labels, selects the epoch on val,
# writes the deployed model, val+test predictions and the training history.
# Metrics: rule evaluate_avvp in evaluate.smk.


# Methods: the registry entries of stage "avvp" (avpipe/methods/registry.py) and named
# variants of them (avvp.variants, e.g. coleaf_cmpae); which run and on which datasets:
# avvp.methods and avvp.datasets (functions.smk all_targets).


rule avvp:
    input:
        unpack(avvp_stores),
    output:
        model="results/avvp/{dataset}/{method}/seed{seed}/model.pt",
        predictions="results/avvp/{dataset}/{method}/seed{seed}/predictions.npz",
        history="results/avvp/{dataset}/{method}/seed{seed}/history.tsv",
        summary="results/avvp/{dataset}/{method}/seed{seed}/summary.json",
    log:
        "logs/avvp/{dataset}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=wildcard_choices(avvp_names()),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(avvp_slice(wildcards.dataset, wildcards.method)),
        method=lambda wildcards: avvp_base(wildcards.method),
        code=code(*stage_code("avvp")),
        out=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        "avpipe avvp --method {params.method} --manifest results/manifest/{wildcards.dataset} "
        "--audio-store {input.audio:q} --frames-store {input.frames:q} --motion-store {input.motion:q} "
        "--seed {wildcards.seed} --config-json {params.cfg:q} --out-dir {params.out} > {log} 2>&1"
