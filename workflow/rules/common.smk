# Helpers shared by the rule files. Only wiring: paths, config slices, code hashes.

import glob
import json

from avpipe.utils.provenance import source_hash


# GPU is a per-machine limit (profiles/default sets gpu=1); on SLURM every GPU
# job gets its own GPU, so the resource must not be global.
resource_scopes:
    gpu="local",


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    recipe=r"[A-Za-z0-9_\-]+",
    shard=r"\d+",
    experiment=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_\-]+",
    round=r"\d+",
    seed=r"\d+",


def gpu_job():
    """The `gpu` resource of a GPU-capable job: 1 where it will use a GPU, else 0.

    profiles/default caps gpu at 1 (one GPU job at a time); on a machine without a
    GPU (or with run.device: cpu) that cap would only serialise CPU jobs.
    """
    device = str(config["run"]["device"])
    if device == "cpu":
        return 0
    if device == "auto":
        return 1 if glob.glob("/dev/nvidia[0-9]*") else 0
    return 1


GPU_JOB = gpu_job()


# Every rule file appends its final outputs here; `rule all` asks for them.
ALL_TARGETS = []


def as_json(obj):
    """A config slice as compact, key-sorted JSON for `--config-json {params.cfg:q}`."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def code(*subpackages):
    """Hash of the avpipe sources a rule runs.

    Pass as a param so that editing the method's code reruns its stages:
    Snakemake tracks shell text and params, not the modules a command imports.
    """
    return source_hash(*subpackages)


def dataset_cfg(name):
    try:
        return config["datasets"][name]
    except KeyError:
        raise ValueError(
            f"config: dataset {name!r} is not defined under 'datasets' "
            f"(defined: {', '.join(sorted(config['datasets']))})"
        )
