"""``avpipe em``: one EM round of CLCL (E-step pseudo-labels, M-step MIL localizer).

Round 1 takes the self-label stage's pseudo-labels (uniform gamma); round k >= 2
re-estimates them with round k-1's localizer (``--previous``).  Writes localizer.pt,
annotator.pt, pseudo_labels.{npz,tsv}, predictions.npz, embeddings.npz,
timelines.tsv, history.tsv, summary.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from avpipe import config as configs
from avpipe.config import ConfigError, from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.cli import with_threads
from avpipe.methods.clcl.config import EMStage
from avpipe.methods.clcl.stages import run_em_round
from avpipe.stages import add_clcl_arguments, clcl_paths, fill_paths, require

SECTION = "unsupervised"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_clcl_arguments(p)
    p.add_argument("--round", type=int, default=1, help="EM round k >= 1")
    p.add_argument("--pretrain", type=Path, help="folder of the pretrain stage")
    p.add_argument("--selflabel", type=Path, help="folder of the selflabel stage")
    p.add_argument("--previous", type=Path, default=None, help="round k-1's folder (k >= 2)")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("unsupervised", args.dataset, stage="em", config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    return configs.to_dict(from_dict(EMStage, cfg, where="unsupervised"))


def run(args: argparse.Namespace) -> int:
    clcl_paths(args)
    fill_paths(
        args,
        pretrain=f"results/pretrain/{args.dataset}/seed{args.seed}",
        selflabel=f"results/selflabel/{args.dataset}/seed{args.seed}",
    )
    require(args, "pretrain", "selflabel")
    cfg = from_dict(EMStage, args.cfg, where="unsupervised")
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
