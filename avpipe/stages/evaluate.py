"""``avpipe evaluate``: metrics from a training stage's predictions.

Reads the dataset manifest and a ``predictions.npz`` (arrays documented in the
task's module under ``avpipe/metrics``), runs the task's evaluator and writes
``metrics.json`` (with the provenance of the config) and one TSV per table.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avpipe import config as configs
from avpipe.datasets.manifest import Manifest
from avpipe.metrics import TASKS, get_task
from avpipe.stages import add_config_arguments, fill_paths, require
from avpipe.utils import atomic
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)
SECTION = None  # --config-json: the task's settings (e.g. avvp.evaluate of config.yaml)
DEFAULT_JSON = "{}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    add_config_arguments(p)
    p.add_argument("--experiment", help="with --config and --task ave: the cpsp experiment")
    p.add_argument("--manifest", type=Path, help="results/manifest/<dataset>")
    p.add_argument("--predictions", type=Path, help="predictions.npz of a training stage")
    p.add_argument("--out-dir", type=Path)


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve(
        "evaluate", args.dataset, task=args.task, experiment=args.experiment, config=config
    )


def run(args: argparse.Namespace) -> int:
    cfg = args.cfg
    fill_paths(args, manifest=f"results/manifest/{args.dataset}")
    require(args, "manifest", "predictions", "out_dir")
    manifest = Manifest.read(args.manifest)
    with np.load(args.predictions, allow_pickle=False) as npz:
        preds = {k: npz[k] for k in npz.files}
    result = get_task(args.task)(manifest, preds, cfg)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in result.tables.items():
        atomic.write_tsv(args.out_dir / f"{name}.tsv", header, rows)
    atomic.write_json(
        args.out_dir / "metrics.json",
        {
            "task": args.task,
            "dataset": manifest.dataset,
            "metrics": result.metrics,
            "info": result.info,
            "predictions": str(args.predictions),
            **provenance(cfg),
        },
    )
    log.info(
        "%s on %s: %s",
        args.task,
        manifest.dataset,
        {k: round(v, 3) if isinstance(v, float) else v for k, v in result.metrics.items()},
    )
    return 0
