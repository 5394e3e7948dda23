"""Generic training-loop pieces: seeding, batch order, history (used by avpipe.training.loop).

No method-specific logic here.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avpipe.utils import atomic

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[np.ndarray]:
    """Index batches of one epoch in random order; the last, smaller batch is kept
    unless it has a single element (batch statistics need two)."""
    order = torch.randperm(n, generator=generator).numpy()
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if len(idx) > 1 or n == 1:
            yield idx


def ordered_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, batch_size):
        yield np.arange(start, min(n, start + batch_size))


class History:
    """Per-epoch records, written as ``history.tsv``; logs step, loss, lr, throughput."""

    def __init__(self, name: str, log_every: int):
        self.name = name
        self.log_every = max(1, log_every)
        self.rows: list[dict[str, Any]] = []
        self._t0 = time.perf_counter()
        self._seen = 0

    def step(self, step: int, n_items: int, lr: float, **values: float) -> None:
        self._seen += n_items
        if step % self.log_every == 0:
            rate = self._seen / max(time.perf_counter() - self._t0, 1e-9)
            vals = " ".join(f"{k}={v:.4f}" for k, v in values.items())
            log.info("%s step %d lr=%.3g %s (%.0f videos/s)", self.name, step, lr, vals, rate)

    def epoch(self, epoch: int, **values: float) -> None:
        for k, v in values.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"{self.name}: {k} is {v} at epoch {epoch}")
        self.rows.append({"epoch": epoch, **values})

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._t0

    def write(self, path: str | Path) -> None:
        header = list(dict.fromkeys(k for r in self.rows for k in r))
        atomic.write_tsv(path, header, [[r.get(k) for k in header] for r in self.rows])
