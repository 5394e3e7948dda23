"""``avpipe em``: one EM round of CLCL (E-step pseudo-labels, M-step MIL localizer).

Round 1 takes the self-label stage's pseudo-labels (uniform gamma); round k >= 2
re-estimates them with round k-1's localizer (``--previous``).  Writes localizer.pt,
annotator.pt, pseudo_labels.{npz,tsv}, predictions.npz, embeddings.npz,
timelines.tsv, history.tsv, summary.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avpipe.config import ConfigError, from_dict, load_json_arg
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import add_data_arguments, with_threads
from avpipe.methods.clcl.config import EMStage
from avpipe.methods.clcl.pipeline import run_em_round


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--round", required=True, type=int, help="EM round k >= 1")
    p.add_argument("--pretrain", required=True, type=Path, help="folder of the pretrain stage")
    p.add_argument("--selflabel", required=True, type=Path, help="folder of the selflabel stage")
    p.add_argument("--previous", type=Path, default=None, help="round k-1's folder (k >= 2)")


def run(args: argparse.Namespace) -> int:
    cfg = from_dict(EMStage, load_json_arg(args.config_json), where="unsupervised")
    cfg = with_threads(cfg, args.threads)
    if not 1 <= args.round <= cfg.em.rounds:
        raise ConfigError(
            f"--round {args.round} is outside 1..unsupervised.em.rounds = {cfg.em.rounds}"
        )
    manifest = Manifest.read(args.manifest)
    run_em_round(
        manifest,
        args.visual_store,
        args.audio_store,
        args.pretrain,
        args.selflabel,
        args.previous,
        args.round,
        cfg,
        args.seed,
        args.out_dir,
    )
    return 0
