"""Metrics, each checked against hand-worked examples in tests/metrics/.

``TASKS`` maps an evaluation task (``avpipe evaluate --task NAME``) to the module
that implements ``evaluate(manifest, predictions, cfg) -> EvalResult``.
Modules are imported only when their task is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from avpipe.datasets.manifest import Manifest

TASKS: dict[str, str] = {
    "ave": "avpipe.metrics.ave",  # AVE segment accuracy (CPSP/PSP; also CLCL after mapping)
    # CLCL: mapping, accuracy, purity per EM round
    "unsupervised": "avpipe.metrics.unsupervised",
    "avvp": "avpipe.metrics.avvp",  # AVVP: segment/event A, V, AV, Type, Event, Ao, Vo
    "unav100": "avpipe.metrics.unav",  # UnAV-100: detection mAP at tIoU 0.1:0.9 + the avvp F
}


@dataclass
class EvalResult:
    """``metrics``: flat name -> number (written to metrics.json).
    ``tables``: name -> (header, rows), each written to ``<name>.tsv`` (e.g. per_class)."""

    metrics: dict[str, float]
    tables: dict[str, tuple[list[str], list[list[Any]]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Evaluator(Protocol):
    def __call__(
        self, manifest: Manifest, predictions: dict[str, np.ndarray], cfg: dict[str, Any]
    ) -> EvalResult: ...


def get_task(name: str) -> Evaluator:
    if name not in TASKS:
        raise KeyError(f"unknown evaluation task {name!r}; known: {', '.join(sorted(TASKS))}")
    return importlib.import_module(TASKS[name]).evaluate
