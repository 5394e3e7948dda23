"""Checkpoints that carry the config that made them (complete-or-absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avpipe.utils.atomic import atomic_path
from avpipe.utils.provenance import provenance


def save_checkpoint(
    path: str | Path, state: dict[str, torch.Tensor], config: Any, **meta: Any
) -> None:
    """Write ``{"state_dict", "config", "config_hash", "versions", **meta}`` atomically to ``path``.

    ``config`` must be JSON-serialisable (use ``avpipe.config.to_dict`` on dataclasses).
    """
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        **provenance(config),
        **meta,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    if "state_dict" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not an avpipe checkpoint (keys {sorted(ckpt)})")
    return ckpt
