"""``avpipe synthetic``: write one part of the synthetic dataset (MP4 + AVE/LLP annotations).

``--config-json`` is the ``synthetic`` section of config.yaml (or the slice the
rule passes: the shared keys plus the part's own sub-section); null values take
the preset's.  ``--out-dir`` (``results/synthetic/<part>``) receives ``videos/``,
the annotation files of the part's format, ``truth.tsv`` and ``synthetic.json``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from avpipe.config import load_json_arg
from avpipe.datasets.synthetic import generate, resolve
from avpipe.datasets.synthetic.config import PARTS

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--part", required=True, choices=PARTS, help="dataset layout to write")
    p.add_argument(
        "--config-json", required=True, help="the synthetic config section as JSON (or @file.json)"
    )
    p.add_argument("--out-dir", required=True, type=Path, help="results/synthetic/<part>")


def run(args: argparse.Namespace) -> int:
    cfg = resolve(load_json_arg(args.config_json))
    log.info(
        "synthetic %s: preset %s, seed %d, %d classes, %s videos",
        args.part,
        cfg.preset,
        cfg.seed,
        cfg.n_classes,
        "/".join(str(getattr(cfg.part(args.part), s)) for s in ("train", "val", "test")),
    )
    generate(cfg, args.part, args.out_dir)
    return 0
