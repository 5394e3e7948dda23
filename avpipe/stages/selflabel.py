"""``avpipe selflabel``: CLCL stage B (annotator trained by label contrast on the
stage-A features, uniform gamma).  Writes annotator.pt, pseudo_labels.{npz,tsv},
history.tsv, summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from avpipe.config import from_dict, load_json_arg
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import add_data_arguments, with_threads
from avpipe.methods.clcl.config import SelflabelStage
from avpipe.methods.clcl.pipeline import run_selflabel


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--pretrain", required=True, type=Path, help="folder of the pretrain stage")


def run(args: argparse.Namespace) -> int:
    cfg = from_dict(SelflabelStage, load_json_arg(args.config_json), where="unsupervised")
    cfg = with_threads(cfg, args.threads)
    manifest = Manifest.read(args.manifest)
    run_selflabel(
        manifest, args.visual_store, args.audio_store, args.pretrain, cfg, args.seed, args.out_dir
    )
    return 0
