# Helpers shared across the workflow, wiring only (paths, config slices, code hashes).

import json
import os
import re
import shlex
import shutil

from avpipe.utils.provenance import source_hash


def gpu_job():
    """The `gpu` resource of a GPU-capable job: 1 where it will use a GPU, else 0.

    profiles/default caps gpu at 1 (one GPU job at a time); on a machine without a
    GPU (or with run.device: cpu) that cap would only serialise CPU jobs.
    """
    device = str(config["run"]["device"])
    if device == "cpu":
        return 0
    if device == "auto":
        return 1 if shutil.which("nvidia-smi") else 0
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
