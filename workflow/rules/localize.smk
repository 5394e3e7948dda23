# Stage "localize": event timelines of the videos of `folder` datasets from trained
# models (avpipe localize). One job per (dataset, model) of localize.runs:
# results/localize/<dataset>/<model>/{timelines.tsv,timelines.json,timelines/,
# predictions.npz,features/}, where <model> is the model's folder under results/
# (cpsp/<ds>/<experiment>/seed<k>, avvp/<ds>/<method>/seed<k>, em/<ds>/seed<k>/round<r>).
# A model's evaluation, when the workflow makes one, is an input: HAN/CoLeaF events are
# binarised with its setting, CLCL pseudo-classes named through its mapping. One thread:
# the videos are decoded in the job's own process (--workers 0).


LOCALIZE_RUNS = {
    ds: list(models)
    for ds, models in config.get("localize", {}).get("runs", {}).items()
}
for _ds in LOCALIZE_RUNS:
    if config["datasets"].get(_ds, {}).get("format") != "folder":
        raise ConfigError(
            f"localize.runs.{_ds}: not a dataset of format folder under `datasets`"
        )


rule localize:
    input:
        model=lambda wildcards: "results/{}/{}".format(
            wildcards.model,
            "localizer.pt" if wildcards.model.startswith("em/") else "model.pt",
        ),
        evaluation=localize_evaluation,
        manifest="results/manifest/{dataset}/samples.tsv",
    output:
        tsv="results/localize/{dataset}/{model}/timelines.tsv",
        json="results/localize/{dataset}/{model}/timelines.json",
    log:
        "logs/localize/{dataset}/{model}.log",
    wildcard_constraints:
        dataset="[^/]+",
        model=r"(cpsp|avvp)/[^/]+/[^/]+/seed\d+|em/[^/]+/seed\d+/round\d+",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU_JOB,
    params:
        evaluation=lambda wildcards, input: (
            f"--evaluation {os.path.dirname(input.evaluation[0])}"
            if input.evaluation
            else ""
        ),
        setting=config.get("localize", {}).get("avvp_setting", "fixed"),
        device=config["run"]["device"],
        code=code(
            "localize",
            "stages/localize",
            "stages/extract",
            "features",
            "io",
            "methods",
            "training",
            "datasets",
            "metrics/avvp",
            "report/figures",
            "report/figure_data",
        ),
        out=lambda wildcards, output: os.path.dirname(output.tsv),
    shell:
        "avpipe localize --model results/{wildcards.model} "
        "--manifest results/manifest/{wildcards.dataset} {params.evaluation} "
        "--avvp-setting {params.setting} --device {params.device} --workers 0 "
        "--out {params.out} > {log} 2>&1"
