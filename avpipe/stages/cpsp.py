"""``avpipe cpsp``: one PSP / CPSP / SSPSP experiment (fully or weakly
supervised) on one dataset and seed.  Writes model.pt, predictions.npz, history.tsv
and summary.json to ``--out-dir``."""

from __future__ import annotations

import argparse
from pathlib import Path

from avpipe.config import from_dict, load_json_arg
from avpipe.datasets.manifest import Manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="results/manifest/<dataset>")
    p.add_argument(
        "--visual-store",
        required=True,
        type=Path,
        help="results/extract/<dataset>/vgg19_pool5.zarr",
    )
    p.add_argument(
        "--audio-store", required=True, type=Path, help="results/extract/<dataset>/vggish.zarr"
    )
    p.add_argument(
        "--config-json",
        required=True,
        help="the experiment's resolved config as JSON (or @file.json)",
    )
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    from avpipe.methods.cpsp.config import CpspStage
    from avpipe.methods.cpsp.pipeline import run_experiment

    cfg = from_dict(CpspStage, load_json_arg(args.config_json), where="cpsp")
    run_experiment(
        Manifest.read(args.manifest),
        args.visual_store,
        args.audio_store,
        cfg,
        args.seed,
        args.out_dir,
    )
    return 0
