"""Dataset formats by name; each module is imported only when its format is used.

Every module exposes ``load(cfg, name) -> Manifest`` (see ``avpipe.datasets.manifest``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from avpipe.datasets.manifest import Manifest

FORMATS: dict[str, str] = {
    "ave": "avpipe.datasets.ave",
    "llp": "avpipe.datasets.llp",
    "unav100": "avpipe.datasets.unav100",
    "vggsound_avel": "avpipe.datasets.vggsound_avel",
    "folder": "avpipe.datasets.folder",
}


def get_format(name: str) -> ModuleType:
    """The adapter module of format ``name``; an unknown name lists the known ones."""
    if name not in FORMATS:
        raise KeyError(
            f"unknown dataset format {name!r}; known formats: {', '.join(sorted(FORMATS))}"
        )
    return importlib.import_module(FORMATS[name])


def load(cfg: dict[str, Any], name: str) -> Manifest:
    """Build the manifest of dataset ``name`` from its config entry (``datasets.<name>``)."""
    fmt = cfg.get("format")
    if not isinstance(fmt, str):
        raise KeyError(f"datasets.{name}: missing 'format' (one of {', '.join(sorted(FORMATS))})")
    return get_format(fmt).load(cfg, name)
