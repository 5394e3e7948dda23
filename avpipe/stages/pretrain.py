"""``avpipe pretrain``: CLCL stage A (collaborative encoder, instance discrimination
+ decorrelation).  Writes encoder.pt, embeddings.npz, history.tsv, summary.json."""

from __future__ import annotations

import argparse
from typing import Any

from avpipe import config as configs
from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import with_threads
from avpipe.methods.clcl.config import PretrainStage
from avpipe.methods.clcl.stages import run_pretrain
from avpipe.stages import add_clcl_arguments, clcl_paths

SECTION = "unsupervised"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_clcl_arguments(p)


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("unsupervised", args.dataset, stage="pretrain", config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    return configs.to_dict(from_dict(PretrainStage, cfg, where="unsupervised"))


def run(args: argparse.Namespace) -> int:
    clcl_paths(args)
    cfg = from_dict(PretrainStage, args.cfg, where="unsupervised")
    cfg = with_threads(cfg, args.threads)
    manifest = Manifest.read(args.manifest)
    run_pretrain(manifest, args.visual_store, args.audio_store, cfg, args.seed, args.out_dir)
    return 0
