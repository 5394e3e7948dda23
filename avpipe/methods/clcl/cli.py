"""Argument parsing shared by the three paper-000 stage entry points."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TypeVar

S = TypeVar("S")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="results/manifest/<dataset>")
    p.add_argument(
        "--visual-store",
        required=True,
        type=Path,
        help="results/extract/<dataset>/<recipe>.zarr (maps)",
    )
    p.add_argument(
        "--audio-store", required=True, type=Path, help="results/extract/<dataset>/vggish.zarr"
    )
    p.add_argument(
        "--config-json", required=True, help="the stage's config slice as JSON (or @file.json)"
    )
    p.add_argument("--seed", required=True, type=int)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (the rule's threads); default: data.num_threads of the config",
    )
    p.add_argument("--out-dir", required=True, type=Path)


def with_threads(cfg: S, threads: int | None) -> S:
    """``cfg`` (a stage config with a ``data`` section) with data.num_threads = ``threads``."""
    if threads is None:
        return cfg
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_threads=threads))
