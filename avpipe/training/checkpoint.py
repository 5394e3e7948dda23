"""Checkpoints that carry the config that made them (complete-or-absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avpipe.utils.atomic import atomic_path
from avpipe.utils.provenance import provenance


def save_checkpoint(path: str | Path, model: torch.nn.Module, cfg: Any, **extra: Any) -> Path:
    """``{"state_dict", "config", "config_hash", "versions", **extra}`` written atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, **provenance(cfg), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not an avpipe checkpoint (no 'state_dict')")
    return ckpt
