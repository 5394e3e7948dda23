"""``avpipe train``: one method family added through the registry, on one dataset and seed.

The method's entry in avpipe/methods/registry.py names its config dataclass, trainer
and prediction function; this stage builds the config from the method's config.yaml
section (``--config config/config.yaml --dataset DS`` or the workflow's
``--config-json``), reads the feature stores the entry names, calls the trainer and the
prediction function, and writes to ``--out-dir``: ``model.pt`` (weights, the config,
the seed), ``predictions.npz`` (the arrays of the method's evaluation task) and
``history.tsv`` (one row per epoch).  How to add a method: docs/extending.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avpipe import config as configs
from avpipe.config import ConfigError, from_dict, to_dict
from avpipe.datasets.manifest import Manifest
from avpipe.methods import registry
from avpipe.stages import add_config_arguments, fill_paths, require
from avpipe.utils import atomic

log = logging.getLogger(__name__)
SECTION = None  # the method's own section; resolve_config picks it from --method


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=sorted(registry.generic()) or None)
    add_config_arguments(p)
    p.add_argument("--manifest", type=Path, help="results/manifest/<dataset>")
    p.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="a feature store the method reads, by its data key (e.g. audio_recipe=...zarr); "
        "with --dataset: results/extract/<dataset>/<recipe>.zarr",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path)


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve(registry.get(args.method).family, args.dataset, config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    method = registry.get(args.method)
    return to_dict(from_dict(registry.load(method.config), cfg, where=method.family))


def _stores(args: argparse.Namespace, method: registry.Method, cfg: Any) -> dict[str, Path]:
    given = {}
    for item in args.store:
        key, sep, path = item.partition("=")
        if not sep or key not in method.stores:
            raise ConfigError(
                f"--store {item!r}: expected KEY=PATH with KEY one of {list(method.stores)}"
            )
        given[key] = Path(path)
    for key in method.stores:
        if key not in given and args.dataset:
            given[key] = Path(f"results/extract/{args.dataset}/{getattr(cfg.data, key)}.zarr")
        if key not in given:
            raise ConfigError(f"--store {key}=PATH is required (or --dataset)")
    return given


def run(args: argparse.Namespace) -> int:
    from avpipe.training.checkpoint import save_checkpoint
    from avpipe.training.epochs import seed_everything

    method = registry.get(args.method)
    cfg = from_dict(registry.load(method.config), args.cfg, where=method.family)
    fill_paths(args, manifest=f"results/manifest/{args.dataset}")
    require(args, "manifest", "out_dir")
    stores = _stores(args, method, cfg)
    manifest = Manifest.read(args.manifest)
    seed_everything(args.seed)
    trained = registry.load(method.trainer)(cfg, manifest, stores, args.seed)
    pred = registry.load(method.predict)(trained, cfg, manifest, stores)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        args.out_dir / "model.pt",
        trained.state,
        to_dict(cfg),
        method=args.method,
        seed=args.seed,
        classes=list(manifest.classes),
        **trained.meta,
    )
    with atomic.atomic_path(args.out_dir / "predictions.npz") as tmp, tmp.open("wb") as fh:
        np.savez(fh, **pred)
    header = list(dict.fromkeys(k for row in trained.history for k in row))
    rows = [[row.get(k) for k in header] for row in trained.history]
    atomic.write_tsv(args.out_dir / "history.tsv", header, rows)
    log.info("%s on %s, seed %d: %d epochs", args.method, manifest.dataset, args.seed, len(rows))
    return 0
