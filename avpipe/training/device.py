"""The one device resolver of every stage (extraction, training, prediction)."""

from __future__ import annotations

import torch

from avpipe.config import ConfigError


def resolve_device(name: str, key: str = "data.device") -> torch.device:
    """``auto`` = CUDA when available, else CPU.  A CUDA device asked for on a machine
    without CUDA is a :class:`~avpipe.config.ConfigError` naming the setting ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key} is {name!r} but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"{key} is {name!r}, not a torch device (auto, cpu, cuda, cuda:N)") from e
