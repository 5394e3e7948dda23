# Stage "cpsp": PSP / CPSP / SSPSP, fully and weakly supervised, one job
# per (dataset, experiment, seed); an experiment is a (method variant, setting, feature
# set). Each job receives its experiment resolved for the dataset:
# cpsp.train <- experiments.<exp>.train <- overrides.<dataset>.train
# <- overrides.<dataset>.experiments.<exp>.train, the same for data;
# model: cpsp.model <- overrides.<dataset>.model.


# Datasets of the method; each is defined under `datasets` (checks.smk).
CPSP_DATASETS = list(config["cpsp"]["datasets"])


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
        code=code(
            "methods/cpsp",
            "training",
            "stages/cpsp",
            "io/store",
            "datasets/manifest",
            "metrics/ave",
            "localize/inputs",
        ),
        manifest=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        "avpipe cpsp --manifest {params.manifest} --visual-store {input.visual:q} "
        "--audio-store {input.audio:q} --seed {wildcards.seed} --config-json {params.cfg:q} "
        "--out-dir {params.out} > {log} 2>&1"
