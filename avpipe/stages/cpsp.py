"""``avpipe cpsp``: one PSP / CPSP / SSPSP experiment (fully or weakly
supervised) on one dataset and seed.  Writes model.pt, predictions.npz, history.tsv
and summary.json to ``--out-dir``.

``avpipe cpsp --config config/config.yaml --dataset synth_ave --experiment cpsp_weak
--print-config`` shows the experiment as the workflow resolves it
(avpipe.config.resolve: cpsp.<part> <- overrides.<dataset> <- the experiment's keys).
"""

from __future__ import annotations

import argparse
from typing import Any

from avpipe import config as configs
from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.stages import add_config_arguments, add_run_arguments, fill_paths, require

SECTION = "cpsp"
# keys of the slice the workflow passes (CpspStage); a cpsp section has none of the last two
RESOLVED_KEYS = {"data", "model", "run", "experiment"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument(
        "--experiment",
        help="a key of cpsp.experiments (with a --config-json section of a single "
        "experiment, or none: that one)",
    )
    add_run_arguments(p, "visual", "audio")


def is_resolved(raw: dict[str, Any]) -> bool:
    return bool(raw) and set(raw) <= RESOLVED_KEYS and bool({"run", "experiment"} & set(raw))


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    experiment = args.experiment
    experiments = (config.get("cpsp") or {}).get("experiments")
    if experiment is None and experiments is None:
        # a --config-json section without experiments: the defaults' experiment
        experiment = "cpsp_full"
        config = configs.merge(config, {"cpsp": {"experiments": {experiment: {}}}})
    elif experiment is None and len(experiments) == 1:
        experiment = next(iter(experiments))
    return configs.resolve("cpsp", args.dataset, experiment=experiment, config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    from avpipe.methods.cpsp.config import CpspStage

    return configs.to_dict(from_dict(CpspStage, cfg, where="cpsp"))


def run(args: argparse.Namespace) -> int:
    from avpipe.methods.cpsp.config import CpspStage
    from avpipe.methods.cpsp.experiment import run_experiment

    cfg = from_dict(CpspStage, args.cfg, where="cpsp")
    base = f"results/extract/{args.dataset}"
    fill_paths(
        args,
        manifest=f"results/manifest/{args.dataset}",
        visual_store=f"{base}/{cfg.data.visual_recipe}.zarr",
        audio_store=f"{base}/{cfg.data.audio_recipe}.zarr",
    )
    require(args, "manifest", "visual_store", "audio_store", "out_dir")
    run_experiment(
        Manifest.read(args.manifest),
        args.visual_store,
        args.audio_store,
        cfg,
        args.seed,
        args.out_dir,
    )
    return 0
