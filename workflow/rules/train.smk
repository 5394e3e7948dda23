# Stage "train": method families added after the three built-in ones (registry entries
# with stage "train", avpipe/methods/registry.py; docs/extending.md). One job per
# (dataset, method, seed) trains the method with the settings of its own config section
# (config.yaml `<family>:`, resolved by avpipe.config.resolve) on the feature stores its
# entry names, and writes the model, the predictions for its evaluation task and the
# training history. Metrics: rule evaluate_train in evaluate.smk.


rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/train/{dataset}/{method}/seed{seed}/model.pt",
        predictions="results/train/{dataset}/{method}/seed{seed}/predictions.npz",
        history="results/train/{dataset}/{method}/seed{seed}/history.tsv",
    log:
        "logs/train/{dataset}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=wildcard_choices(generic()),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(train_slice(wildcards.dataset, wildcards.method)),
        code=lambda wildcards: code(*method_code(wildcards.method)),
        stores=train_store_args,
        manifest=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        "avpipe train --method {wildcards.method} --manifest {params.manifest:q} "
        "{params.stores} --seed {wildcards.seed} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"
