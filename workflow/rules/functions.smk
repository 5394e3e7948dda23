# Functions of the stage rule files, grouped by stage (snakemake --lint wants
# definitions apart from the rules). Wiring only: config slices, paths, inputs.


# --- avvp ---------------------------------------------------------------------
def avvp_merge(base, over):
    """Deep merge of a per-dataset override into a config slice (new dicts)."""
    out = json.loads(json.dumps(base))
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = avvp_merge(out[key], value)
        else:
            out[key] = value
    return out


def avvp_base(name):
    """The method a name of avvp.methods trains: itself, or a variant's `method`."""
    return config["avvp"].get("variants", {}).get(name, {}).get("method", name)


def avvp_slice(dataset, name):
    """{"data": ..., <method>: ...} of config["avvp"] for a method or a variant of one:
    the method's settings <- the dataset's override of the method <- the variant's own
    changes <- the dataset's override of the variant (a variant keeps its own changes).
    """
    av = config["avvp"]
    over = av.get("overrides", {}).get(dataset, {})
    data = avvp_merge(av.get("data", {}), over.get("data", {}))
    data["device"] = config["run"]["device"]
    method = avvp_base(name)
    block = avvp_merge(av.get(method, {}), over.get(method, {}))
    if name != method:
        block = avvp_merge(block, av["variants"][name].get("changes", {}))
        block = avvp_merge(block, over.get(name, {}))
    return {"data": data, method: block}


def avvp_stores(wildcards):
    data = avvp_slice(wildcards.dataset, wildcards.method)["data"]
    base = f"results/extract/{wildcards.dataset}"
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "audio": f"{base}/{data.get('audio_recipe', 'vggish')}.zarr",
        "frames": f"{base}/{data.get('frames_recipe', 'resnet152_llp')}.zarr",
        "motion": f"{base}/{data.get('motion_recipe', 'r2plus1d18')}.zarr",
    }


def avvp_evaluate_task(dataset):
    """unav100 (detection mAP + the AVVP F-scores) for UnAV-100 data, else avvp."""
    fmt = config["datasets"].get(dataset, {}).get("format")
    return "unav100" if fmt == "unav100" else "avvp"


def avvp_evaluate_cfg(wildcards):
    """avvp.evaluate for the dataset's task (the detection keys only for unav100)."""
    cfg = dict(config["avvp"].get("evaluate", {}))
    if avvp_evaluate_task(wildcards.dataset) != "unav100":
        cfg.pop("detection", None)
    return as_json(cfg)


# --- cpsp ---------------------------------------------------------------------
def cpsp_config(dataset, experiment):
    """The CpspStage dict of avpipe.methods.cpsp.config for one (dataset, experiment)."""
    cp = config["cpsp"]
    if experiment not in cp["experiments"]:
        raise ValueError(
            f"config: cpsp experiment {experiment!r} is not defined "
            f"(defined: {', '.join(sorted(cp['experiments']))})"
        )
    over = cp.get("overrides", {}).get(dataset, {})
    own = over.get("experiments", {}).get(experiment, {})
    exp = dict(cp["experiments"][experiment])
    train = {
        **cp["train"],
        **exp.pop("train", {}),
        **over.get("train", {}),
        **own.get("train", {}),
    }
    data = {
        **cp["data"],
        **exp.pop("data", {}),
        **over.get("data", {}),
        **own.get("data", {}),
        "device": config["run"]["device"],
    }
    model = {**cp["model"], **over.get("model", {})}
    return {
        "experiment": experiment,
        "data": data,
        "model": model,
        "run": {**exp, "train": train},
    }


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


def cpsp_evaluate_cfg(wildcards):
    data = cpsp_config(wildcards.dataset, wildcards.experiment)["data"]
    return as_json({"split": data["evaluate_split"]})


# --- extract ------------------------------------------------------------------
def extract_options(dataset, recipe):
    ext = config["extract"]
    opts = dict(ext["recipes"][recipe])
    opts.update(ext.get("overrides", {}).get(dataset, {}).get(recipe, {}))
    return opts


def decode_slice(dataset):
    """config["decode"] with the dataset's overrides."""
    dec = config["decode"]
    out = {k: v for k, v in dec.items() if k != "overrides"}
    out.update(dec.get("overrides", {}).get(dataset, {}))
    return out


def extract_shards(dataset):
    return range(decode_slice(dataset).get("shards", 2))


def extract_cache_arg(dataset):
    """`--cache-dir <extract.cache_dir>/<dataset>`, or "" when extract.cache is false."""
    ext = config["extract"]
    if not ext.get("cache", True):
        return ""
    root = ext.get("cache_dir", "results/cache/extract")
    return "--cache-dir " + shlex.quote(f"{root}/{dataset}")


def extract_slice(dataset):
    """What one (dataset, shard) job computes: every recipe of the dataset, and how."""
    ext, dec = config["extract"], decode_slice(dataset)
    return {
        "recipes": {
            r: extract_options(dataset, r)
            for r in config["extract"].get("stores", {}).get(dataset, [])
        },
        "shards": dec.get("shards", 2),
        "on_error": dec.get("on_error", "skip"),
        "truncation_tolerance_s": dec.get("truncation_tolerance_s", 1.0),
        "batch_size": ext.get("batch_size", 16),
        "num_threads": ext.get("num_threads", 2),
        "prefetch": ext.get("prefetch", 2),
        "prepare": ext.get("prepare", "auto"),
        "keep_decoded": ext.get("keep_decoded", False),
        "device": config["run"]["device"],
    }


# --- manifest -----------------------------------------------------------------
def manifest_inputs(wildcards):
    entry = dataset_cfg(wildcards.dataset)
    return [entry["root"]] if entry.get("generated", False) else []


# --- pretrain -----------------------------------------------------------------
def unsup_slice(dataset, *sections):
    """{"data": ..., <section>: ...} of config["unsupervised"], with the dataset's overrides."""
    un = config["unsupervised"]
    over = un.get("overrides", {}).get(dataset, {})
    out = {}
    for name in ("data", *sections):
        merged = json.loads(json.dumps(un[name]))
        for key, value in over.get(name, {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        out[name] = merged
    out["data"]["device"] = config["run"]["device"]
    # threads reach the job as --threads {threads}, not through the config slice, so
    # that a different core count does not invalidate the outputs
    out["data"].pop("num_threads", None)
    return out


def unsup_threads(wildcards):
    """data.num_threads of the dataset (default 1: ~8x faster than 2 on a shared 2-core box)."""
    un = config["unsupervised"]
    over = un.get("overrides", {}).get(wildcards.dataset, {}).get("data", {})
    return over.get("num_threads", un["data"].get("num_threads", 1))


def unsup_stores(wildcards):
    data = unsup_slice(wildcards.dataset)["data"]
    return {
        "manifest": f"results/manifest/{wildcards.dataset}/samples.tsv",
        "visual": f"results/extract/{wildcards.dataset}/{data['visual_recipe']}.zarr",
        "audio": f"results/extract/{wildcards.dataset}/{data['audio_recipe']}.zarr",
    }


# --- report -------------------------------------------------------------------
def report_seeds():
    seeds = config["report"].get("seeds")
    return None if seeds is None else {int(s) for s in seeds}


def report_metrics():
    seeds = report_seeds()
    out = []
    for target in ALL_TARGETS:
        if not (
            target.startswith("results/evaluate/")
            and os.path.basename(target) == "metrics.json"
        ):
            continue
        seed_part = [p for p in target.split(os.sep) if p.startswith("seed")]
        if seeds is not None and seed_part and int(seed_part[0][4:]) not in seeds:
            continue
        out.append(target)
    return sorted(set(out))


def report_history_args(wildcards, input):
    return " ".join(
        f"'unsupervised={os.path.join(os.path.dirname(p), 'history.tsv')}'"
        for p in input.histories
    )


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
