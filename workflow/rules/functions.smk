# Functions of the stage rule files, grouped by stage (snakemake --lint wants
# definitions apart from the rules). Wiring only: config slices, paths, inputs.


# --- avvp ---------------------------------------------------------------------
def avvp_base(name):
    """The method a name of avvp.methods trains: itself, or a variant's `method`."""
    return config["avvp"].get("variants", {}).get(name, {}).get("method", name)


def avvp_names():
    """The registry's AVVP methods and the variants under avvp.variants."""
    return [*of_stage("avvp"), *config["avvp"].get("variants", {})]


def avvp_slice(dataset, name):
    """{"data": ..., <method>: ...} of config["avvp"] for one dataset and a method or a
    variant of one (avpipe.config.resolve)."""
    return resolve("avvp", dataset, method=name, config=config)


def avvp_stores(wildcards):
    data = avvp_slice(wildcards.dataset, wildcards.method)["data"]
    base = f"results/extract/{wildcards.dataset}"
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "audio": f"{base}/{data['audio_recipe']}.zarr",
        "frames": f"{base}/{data['frames_recipe']}.zarr",
        "motion": f"{base}/{data['motion_recipe']}.zarr",
    }


def avvp_evaluate_task(dataset):
    """unav100 (detection mAP + the AVVP F-scores) for UnAV-100 data, else avvp."""
    fmt = config["datasets"].get(dataset, {}).get("format")
    return "unav100" if fmt == "unav100" else "avvp"


def avvp_evaluate_cfg(wildcards):
    """avvp.evaluate for the dataset's task (the detection keys only for unav100)."""
    task = avvp_evaluate_task(wildcards.dataset)
    return as_json(resolve("evaluate", wildcards.dataset, task=task, config=config))


# --- cpsp ---------------------------------------------------------------------
def cpsp_config(dataset, experiment):
    """The CpspStage dict of avpipe.methods.cpsp.config for one (dataset, experiment)."""
    return resolve("cpsp", dataset, experiment=experiment, config=config)


def cpsp_inputs(wildcards):
    data = cpsp_config(wildcards.dataset, wildcards.experiment)["data"]
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "visual": f"results/extract/{wildcards.dataset}/{data['visual_recipe']}.zarr",
        "audio": f"results/extract/{wildcards.dataset}/{data['audio_recipe']}.zarr",
    }


def cpsp_threads(wildcards):
    return cpsp_config(wildcards.dataset, wildcards.experiment)["data"]["num_threads"]


# --- em -----------------------------------------------------------------------
def em_inputs(wildcards):
    ds, seed, k = wildcards.dataset, wildcards.seed, int(wildcards.round)
    out = {
        "encoder": f"results/pretrain/{ds}/seed{seed}/encoder.pt",
        "labels": f"results/selflabel/{ds}/seed{seed}/pseudo_labels.npz",
        "annotator": f"results/selflabel/{ds}/seed{seed}/annotator.pt",
    }
    if k > 1:
        out["previous"] = f"results/em/{ds}/seed{seed}/round{k - 1}/localizer.pt"
        # read by em.align_labels and selflabel.init: previous
        out["previous_labels"] = (
            f"results/em/{ds}/seed{seed}/round{k - 1}/pseudo_labels.npz"
        )
        out["previous_annotator"] = (
            f"results/em/{ds}/seed{seed}/round{k - 1}/annotator.pt"
        )
    return out


def em_previous_arg(wildcards, input):
    return (
        f"--previous {os.path.dirname(input.previous)}"
        if "previous" in input.keys()
        else ""
    )


# --- evaluate -----------------------------------------------------------------
def unsup_labelled(dataset):
    return config["datasets"].get(dataset, {}).get("format") != "folder"


def evaluate_cfg(task):
    """The params function of an evaluation rule: its task's resolved settings."""

    def cfg(wildcards):
        exp = wildcards.get("experiment") if task == "ave" else None
        ds = wildcards.dataset
        return as_json(
            resolve("evaluate", ds, task=task, experiment=exp, config=config)
        )

    return cfg


# --- extract ------------------------------------------------------------------
def released_stores():
    """(dataset, recipe) -> its entry under datasets.<ds>.features (released features)."""
    return {
        (ds, recipe): rel
        for ds, entry in config["datasets"].items()
        for recipe, rel in entry.get("features", {}).items()
    }


def extract_shards(dataset):
    return range(resolve("extract", dataset, config=config)["shards"])


def extract_cache_arg(dataset):
    """`--cache-dir <extract.cache_dir>/<dataset>`, or "" when extract.cache is false."""
    ext = config["extract"]
    if not ext["cache"]:
        return ""
    folder = shlex.quote(f"{ext['cache_dir']}/{dataset}")
    return f"--cache-dir {folder}"


def extract_slice(dataset):
    """What one (dataset, shard) job computes: every recipe of the dataset, and how."""
    return resolve("extract", dataset, config=config)


# --- manifest -----------------------------------------------------------------
def manifest_inputs(wildcards):
    entry = dataset_cfg(wildcards.dataset)
    return [entry["root"]] if entry.get("generated", False) else []


# --- pretrain -----------------------------------------------------------------
def unsup_slice(dataset, stage):
    """{"data": ..., <stage's sections>: ...} of config["unsupervised"] for one dataset.

    Threads reach the job as --threads {threads}, not through the config slice, so that
    a different core count does not invalidate the outputs.
    """
    out = resolve("unsupervised", dataset, stage=stage, config=config)
    out["data"].pop("num_threads", None)
    return out


def unsup_threads(wildcards):
    """data.num_threads of the dataset (default 1: ~8x faster than 2 on a shared 2-core box)."""
    un = resolve("unsupervised", wildcards.dataset, stage="pretrain", config=config)
    return un["data"]["num_threads"]


def family_seeds(family):
    """Seeds of a method family's runs: its section's `seeds` (unsupervised), else run.seeds."""
    own = (config.get(family) or {}).get("seeds")
    return list(own) if own is not None else list(config["run"]["seeds"])


def unsup_rounds(dataset):
    return resolve("unsupervised", dataset, stage="em", config=config)["em"]["rounds"]


def unsup_stores(wildcards):
    data = unsup_slice(wildcards.dataset, "pretrain")["data"]
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "visual": f"results/extract/{wildcards.dataset}/{data['visual_recipe']}.zarr",
        "audio": f"results/extract/{wildcards.dataset}/{data['audio_recipe']}.zarr",
    }


# --- report -------------------------------------------------------------------
def report_metrics():
    """Every metrics.json the config asks for (of report.seeds, or all)."""
    seeds = config["report"]["seeds"]
    keep = None if seeds is None else {int(s) for s in seeds}
    return sorted(
        path for path, seed in evaluation_targets() if keep is None or seed in keep
    )


def report_datasets():
    return sorted({t.split(os.sep)[3] for t in report_metrics()})


def report_histories():
    """Training curves of the stages before the evaluated one (CLCL's pretrain and
    selflabel), drawn with the evaluated runs; the evaluated stages' own history.tsv
    lie next to their predictions and are found through metrics.json."""
    return sorted(
        f"results/{stage}/{ds}/seed{seed}/history.tsv"
        for name in METHODS
        for stage in METHODS[name].before
        for ds in method_datasets(name)
        for seed in family_seeds(METHODS[name].family)
    )


def report_history_args(wildcards, input):
    return " ".join(f"'unsupervised={p}'" for p in input.histories)


# --- train (method families on the generic stage) ------------------------------
def train_slice(dataset, method):
    """The method's config section resolved for one dataset (avpipe.config.resolve)."""
    return resolve(METHODS[method].family, dataset, config=config)


def train_inputs(wildcards):
    """The manifest and the feature stores the method's registry entry names (keys of
    its config's `data`, read from the config dataclass: defaults included)."""
    m = METHODS[wildcards.method]
    raw = train_slice(wildcards.dataset, wildcards.method)
    data = from_dict(load_ref(m.config), raw, where=m.family).data
    base = f"results/extract/{wildcards.dataset}"
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        **{key: f"{base}/{getattr(data, key)}.zarr" for key in m.stores},
    }


def train_store_args(wildcards, input):
    return " ".join(
        f"--store {key}={shlex.quote(input[key])}"
        for key in METHODS[wildcards.method].stores
    )


# --- targets --------------------------------------------------------------------
# What `rule all` asks for, from the config and the method registry alone (not from the
# order in which rule files are included).
def method_datasets(name):
    """Datasets a registered method runs on: the `datasets` of its config section (an
    AVVP method: when avvp.methods lists it or a variant of it)."""
    m = METHODS[name]
    section = config.get(m.family) or {}
    if m.family == "avvp" and not avvp_runs_of(name):
        return []
    return list(section.get("datasets", []))


def avvp_runs_of(name):
    """The names of avvp.methods that train AVVP method `name`: itself, its variants."""
    return [n for n in config["avvp"].get("methods", []) if avvp_base(n) == name]


def method_runs(name):
    """(stage, dataset, experiment, seed, round) of every evaluated run of a method."""
    m = METHODS[name]
    seeds = family_seeds(m.family)
    for ds in method_datasets(name):
        if m.family == "unsupervised":
            if not unsup_labelled(ds):
                continue
            exp = config["unsupervised"]["experiment"]
            for seed in seeds:
                for k in range(1, unsup_rounds(ds) + 1):
                    yield "unsupervised", ds, exp, seed, k
        elif m.family == "cpsp":
            for exp in config["cpsp"]["experiments"]:
                for seed in seeds:
                    yield "cpsp", ds, exp, seed, None
        elif m.family == "avvp":
            for run in avvp_runs_of(name):
                for seed in seeds:
                    yield "avvp", ds, run, seed, None
        else:
            for seed in seeds:
                yield m.stage, ds, name, seed, None


def evaluation_targets():
    """(metrics.json, seed) of every evaluation."""
    for name in METHODS:
        for stage, ds, exp, seed, k in method_runs(name):
            parts = ["results/evaluate", stage, ds, exp, f"seed{seed}"]
            parts += [] if k is None else [f"round{k}"]
            yield os.path.join(*parts, "metrics.json"), seed


def all_targets():
    stores = config["extract"]["stores"]
    out = [f"results/manifest/{ds}/coverage.tsv" for ds in config["datasets"]]
    out.extend(f"results/extract/{ds}/{r}.zarr" for ds in stores for r in stores[ds])
    out.extend(f"results/extract/{ds}/failures.tsv" for ds in stores)
    out.extend(f"results/extract/{ds}/{r}.zarr" for ds, r in released_stores())
    # every EM round's timelines, also of datasets without labels (not evaluated)
    out.extend(
        f"results/em/{ds}/seed{seed}/round{k}/timelines.tsv"
        for ds in method_datasets("clcl")
        for seed in family_seeds("unsupervised")
        for k in range(1, unsup_rounds(ds) + 1)
    )
    metrics = [path for path, _ in evaluation_targets()]
    out.extend(metrics)
    out.extend(
        p.replace("metrics.json", "scores.tsv")
        for p in metrics
        if p.startswith("results/evaluate/avvp/")
    )
    out.extend(
        f"results/localize/{ds}/{model}/timelines.tsv"
        for ds, models in config.get("localize", {}).get("runs", {}).items()
        for model in models
    )
    # summary.html too: a study finished before the report had it gets it on the next
    # run, and `snakemake --report` needs it.
    out.extend(["results/report/summary.md", "results/report/summary.html"])
    return out


# --- localize -----------------------------------------------------------------
def localize_evaluation(wildcards):
    """The model's evaluation output that localize reads, if the workflow makes one."""
    parts = wildcards.model.split("/")
    if parts[0] == "avvp":
        return [f"results/evaluate/{wildcards.model}/metrics.json"]
    if parts[0] == "em" and unsup_labelled(parts[1]):
        experiment = config["unsupervised"]["experiment"]
        return [
            f"results/evaluate/unsupervised/{parts[1]}/{experiment}/{parts[2]}/{parts[3]}/mapping.tsv"
        ]
    return []
