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
from typing import Any

from avpipe import config as configs
from avpipe.datasets.synthetic import generate, resolve
from avpipe.datasets.synthetic.config import PARTS
from avpipe.stages import add_config_arguments, require

log = logging.getLogger(__name__)
SECTION = "synthetic"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--part", required=True, choices=PARTS, help="dataset layout to write")
    add_config_arguments(p, dataset=False)
    p.add_argument("--out-dir", type=Path, help="results/synthetic/<part>")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("synthetic", part=args.part, config=config)


def run(args: argparse.Namespace) -> int:
    require(args, "out_dir")
    cfg = resolve(args.cfg)
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
