"""The --threads option of CLCL's three stages (avpipe pretrain / selflabel / em)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

S = TypeVar("S")


def with_threads(cfg: S, threads: int | None) -> S:
    """``cfg`` (a stage config with a ``data`` section) with data.num_threads = ``threads``."""
    if threads is None:
        return cfg
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_threads=threads))
