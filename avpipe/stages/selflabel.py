"""``avpipe selflabel``: CLCL stage B (annotator trained by label contrast on the
stage-A features, uniform gamma).  Writes annotator.pt, pseudo_labels.{npz,tsv},
history.tsv, summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from avpipe import config as configs
from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import with_threads
from avpipe.methods.clcl.config import SelflabelStage
from avpipe.methods.clcl.stages import run_selflabel
from avpipe.stages import add_clcl_arguments, clcl_paths, fill_paths, require

SECTION = "unsupervised"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_clcl_arguments(p)
    p.add_argument("--pretrain", type=Path, help="folder of the pretrain stage")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("unsupervised", args.dataset, stage="selflabel", config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    return configs.to_dict(from_dict(SelflabelStage, cfg, where="unsupervised"))


def run(args: argparse.Namespace) -> int:
    clcl_paths(args)
    fill_paths(args, pretrain=f"results/pretrain/{args.dataset}/seed{args.seed}")
    require(args, "pretrain")
    cfg = from_dict(SelflabelStage, args.cfg, where="unsupervised")
    cfg = with_threads(cfg, args.threads)
    manifest = Manifest.read(args.manifest)
    run_selflabel(
        manifest, args.visual_store, args.audio_store, args.pretrain, cfg, args.seed, args.out_dir
    )
    return 0
