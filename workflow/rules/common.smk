# Helpers shared across the workflow, wiring only (paths, config slices, code hashes).
# Config slices come from avpipe.config.resolve (one precedence for the workflow and the
# command line), methods and their code hashes from avpipe.methods.registry.METHODS.

import json
import os
import re
import shlex
import shutil

from avpipe.config import from_dict, resolve
from avpipe.methods.registry import (
    METHODS,
    TASK_CODE,
    generic,
    method_code,
    of_stage,
    stage_code,
)
from avpipe.methods.registry import load as load_ref
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


def as_json(obj):
    """A config slice as compact, key-sorted JSON for `--config-json {params.cfg:q}`."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def code(*subpackages):
    """Hash of the avpipe sources a rule runs.

    Pass as a param so that editing the method's code reruns its stages:
    Snakemake tracks shell text and params, not the modules a command imports.
    The lists come from the registry: stage_code(stage), TASK_CODE[task], method_code(m).
    """
    return source_hash(*subpackages)


def wildcard_choices(names):
    """A wildcard constraint matching exactly ``names`` (none: a pattern never matched)."""
    return "|".join(names) if names else "(?!)"


def dataset_cfg(name):
    try:
        return config["datasets"][name]
    except KeyError:
        raise ValueError(
            f"config: dataset {name!r} is not defined under 'datasets' "
            f"(defined: {', '.join(sorted(config['datasets']))})"
        )
