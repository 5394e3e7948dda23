"""Argument parsing shared by the three paper-000 stage entry points."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--out-dir", required=True, type=Path)
