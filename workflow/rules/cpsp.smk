# Stage "cpsp": PSP / CPSP / SSPSP, fully and weakly supervised, one job
# per (dataset, experiment, seed); an experiment is a (method variant, setting, feature
# set). Each job receives its experiment resolved for the dataset (avpipe.config.resolve):
# cpsp.train <- overrides.<dataset>.train <- experiments.<exp>.train (the experiment's
# own keys win) <- overrides.<dataset>.experiments.<exp>.train, the same for data;
# model: cpsp.model <- overrides.<dataset>.model.


rule cpsp:
    input:
        unpack(cpsp_inputs),
    output:
        model="results/cpsp/{dataset}/{experiment}/seed{seed}/model.pt",
        predictions="results/cpsp/{dataset}/{experiment}/seed{seed}/predictions.npz",
        history="results/cpsp/{dataset}/{experiment}/seed{seed}/history.tsv",
        summary="results/cpsp/{dataset}/{experiment}/seed{seed}/summary.json",
    log:
        "logs/cpsp/{dataset}/{experiment}/seed{seed}.log",
    threads: cpsp_threads
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU_JOB,
    params:
        cfg=lambda wildcards: as_json(
            cpsp_config(wildcards.dataset, wildcards.experiment)
        ),
        code=code(*stage_code("cpsp")),
        manifest=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        "avpipe cpsp --manifest {params.manifest} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"
