"""``inputs.json`` beside a trained model: how to remake its inputs from new videos.

Written by every training stage that ``avpipe localize`` can deploy (PSP/CPSP, HAN/CoLeaF,
the CLCL localizer) next to its checkpoint::

    {"family": "cpsp" | "avvp" | "clcl", "dataset": ..., "segment_hop": s, "segment_win": s,
     "stores": {role: {"path", "recipe", "extractor", "options", "weights", "grid"}},
     "standardize": {name: [float, ...]}}

``stores`` copies the provenance each feature store carries (its recipe, the options
it was built with, the weights and the segment grid: :func:`avpipe.stages.extract.store_attrs`),
so that new videos are extracted exactly as the training videos were, even where the
stores themselves are gone.  ``standardize`` holds the per-channel statistics the model's
inputs were z-scored with (empty when the training used raw features); float32 values
survive the JSON round trip exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avpipe.io.store import FeatureStore
from avpipe.utils import atomic

FILE = "inputs.json"
FAMILIES = ("cpsp", "avvp", "clcl")


class LocalizeError(ValueError):
    """A model folder, its recorded inputs or a video that ``avpipe localize`` cannot use."""


def store_record(path: str | Path) -> dict[str, Any]:
    """What a feature store says about how it was made (its attributes)."""
    attrs = FeatureStore(path).attrs
    made = attrs.get("config") or {}
    return {
        "path": str(path),
        "recipe": attrs.get("recipe"),
        "extractor": attrs.get("extractor"),
        "options": made.get("options"),
        "weights": attrs.get("weights"),
        "grid": attrs.get("grid"),
    }


def record_inputs(
    out_dir: str | Path,
    family: str,
    dataset: str,
    grid: tuple[float, float],
    stores: dict[str, str | Path],
    standardize: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``out_dir/inputs.json`` atomically (see the module docstring).

    ``grid``: the dataset's (segment_hop, segment_win) in seconds; ``stores``: role
    (e.g. ``visual``, ``audio``) -> the store the model was trained on."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    payload = {
        "family": family,
        "dataset": dataset,
        "segment_hop": float(grid[0]),
        "segment_win": float(grid[1]),
        "stores": {role: store_record(p) for role, p in stores.items()},
        "standardize": {
            k: np.asarray(v, np.float32).ravel().tolist() for k, v in (standardize or {}).items()
        },
    }
    atomic.write_json(Path(out_dir) / FILE, payload)


@dataclass(frozen=True)
class Inputs:
    """A model's recorded inputs (``inputs.json``)."""

    family: str
    dataset: str
    segment_hop: float
    segment_win: float
    stores: dict[str, dict[str, Any]]
    standardize: dict[str, np.ndarray]

    def stats(self, *names: str) -> list[np.ndarray] | None:
        """The statistics ``names`` (float32), or None when the model used raw inputs."""
        if not self.standardize:
            return None
        missing = [n for n in names if n not in self.standardize]
        if missing:
            raise LocalizeError(
                f"{FILE}: standardize has no {missing} (has {sorted(self.standardize)})"
            )
        return [self.standardize[n] for n in names]


def read_inputs(model_dir: Path) -> Inputs:
    path = model_dir / FILE
    if not path.is_file():
        raise LocalizeError(
            f"{model_dir}: no {FILE}, so how the model's inputs were made is unknown "
            "(a model trained before avpipe recorded it): train it again"
        )
    try:
        d = json.loads(path.read_text())
        inputs = Inputs(
            d["family"],
            d["dataset"],
            float(d["segment_hop"]),
            float(d["segment_win"]),
            dict(d["stores"]),
            {k: np.asarray(v, np.float32) for k, v in d.get("standardize", {}).items()},
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise LocalizeError(f"{path}: not a valid inputs record ({type(e).__name__}: {e})") from e
    for role, s in inputs.stores.items():
        missing = [k for k in ("recipe", "options", "grid") if not s.get(k)]
        if missing:
            raise LocalizeError(
                f"{path}: the model's {role} store {s.get('path')} records no "
                f"{', '.join(missing)} (it was not made by avpipe extract, e.g. imported "
                "released features), so its features cannot be remade for new videos"
            )
    return inputs
