"""``avpipe pretrain``: CLCL stage A (collaborative encoder, instance discrimination
+ decorrelation).  Writes encoder.pt, embeddings.npz, history.tsv, summary.json."""

from __future__ import annotations

import argparse

from avpipe.config import from_dict, load_json_arg
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import add_data_arguments, with_threads
from avpipe.methods.clcl.config import PretrainStage
from avpipe.methods.clcl.pipeline import run_pretrain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)


def run(args: argparse.Namespace) -> int:
    cfg = from_dict(PretrainStage, load_json_arg(args.config_json), where="unsupervised")
    cfg = with_threads(cfg, args.threads)
    manifest = Manifest.read(args.manifest)
    run_pretrain(manifest, args.visual_store, args.audio_store, cfg, args.seed, args.out_dir)
    return 0
