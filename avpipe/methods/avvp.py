"""The weakly supervised AVVP method family (HAN, CoLeaF): data config, model selection
and predictions, around the one training loop (:mod:`avpipe.training.loop`).

A method is an entry of stage ``avvp`` in avpipe/methods/registry.py naming a frozen
``Config`` dataclass (which has
``select``, a :class:`Selection`) and a ``Trainer(cfg, dims, device, train)``, an
:class:`avpipe.training.loop.Trainer` over the ``train`` split that also has ``loop``
(its :class:`~avpipe.training.loop.LoopConfig`) and ``predict(batch) -> probabilities``
of the deployed model (``Trainer.model``).  :func:`train` runs the loop, scores the
validation split after each epoch, keeps the best deployed weights (model selection on
val only, as in YapengTian/AVVP-ECCV20 ``main_avvp.py``) and
:func:`collect_predictions` writes val and test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np
import torch

from avpipe.metrics import avvp as metrics
from avpipe.training.data import Split
from avpipe.training.epochs import ordered_batches
from avpipe.training.loop import FitResult, LoopConfig, fit

log = logging.getLogger(__name__)

PRED_KEYS = (
    "seg_prob_audio",
    "seg_prob_visual",
    "video_prob_audio",
    "video_prob_visual",
    "video_prob",
)


@dataclass(frozen=True)
class DataConfig:
    """Feature stores and runtime of an AVVP job (``avvp.data``)."""

    audio_recipe: str = "vggish"
    frames_recipe: str = "resnet152_llp"
    motion_recipe: str = "r2plus1d18"
    use_frames: bool = True
    standardize: bool = False  # z-score inputs with train statistics (not in the reference codes)
    memory_budget_mb: int = 4096  # one budget for the job's splits; the rest streams from Zarr
    loader_workers: int = 2  # processes that read streamed batches ahead
    num_threads: int = 1
    device: str = "auto"
    eval_batch_size: int = 64


@dataclass(frozen=True)
class Selection:
    """Model selection on the validation split: ``metric`` is ``level.name`` of
    avpipe.metrics.avvp (e.g. ``segment.Type@AV``) or ``new_mean`` (CoLeaF's mean
    of the ten new metrics), computed under ``setting``.  ``ties``: equal scores keep
    the ``last`` epoch, as the released HAN (AVVP-ECCV20 ``main_avvp.py``), CMPAE and
    CoLeaF scripts do (``>=``), or the ``first``."""

    metric: str = "segment.Type@AV"
    setting: metrics.Setting = field(default_factory=lambda: metrics.Setting(0.5, 0.5, "global"))
    split: str = "val"
    ties: Literal["first", "last"] = "last"


class Trainer(Protocol):
    """An AVVP method's trainer: an :class:`avpipe.training.loop.Trainer` (``model`` is
    the deployed network) with its loop settings and the deployed model's predictions."""

    model: torch.nn.Module
    loop: LoopConfig

    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


@torch.no_grad()
def predict_split(
    trainer: Trainer, split: Split, batch_size: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Deployed-model probabilities for every sample of ``split`` (arrays of ``PRED_KEYS``)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in PRED_KEYS}
    for _, b in split.batches(ordered_batches(len(split), batch_size), device):
        out = trainer.predict(b)
        for k in PRED_KEYS:
            parts[k].append(out[k].float().cpu().numpy())
    pred = {k: np.concatenate(v) for k, v in parts.items()}
    pred["sample_id"] = np.asarray(split.sample_ids)
    pred["n_segments"] = split.n_segments
    return pred


def split_scores(
    pred: dict[str, np.ndarray],
    split: Split,
    setting: metrics.Setting,
    names: tuple[str, ...] = metrics.METRICS,
) -> dict[str, float]:
    """The AVVP metrics ``names`` of ``pred`` against the split's dense labels."""
    n, dense = split.n_segments, split.targets
    Ga = [dense["dense_audio"][i, : n[i]].T > 0 for i in range(len(split))]
    Gv = [dense["dense_visual"][i, : n[i]].T > 0 for i in range(len(split))]
    return metrics.dataset_scores(*metrics.predict(pred, setting), Ga, Gv, names)


def selection_score(scores: dict[str, float], metric: str) -> float:
    if metric == "new_mean":
        return metrics.new_metric_mean(scores)
    if metric not in scores:
        raise KeyError(
            f"selection metric {metric!r} unknown; use new_mean or one of {sorted(scores)}"
        )
    return scores[metric]


def train(
    trainer: Trainer,
    splits: dict[str, Split],
    select: Selection,
    device: torch.device,
    batch_size: int,
    generator: torch.Generator,
    names: tuple[str, ...] = metrics.METRICS,
) -> FitResult:
    """Train with the loop, selecting ``select.metric`` on ``select.split`` after each
    epoch; the history keeps the segment-level metrics (``val.segment.*``) and the
    selection metric.  The best deployed weights are loaded into ``trainer``.
    ``names``: the metrics that mean something on the data
    (avpipe.metrics.avvp ``scored_metrics``); ``new_mean`` averages CoLeaF's new metrics
    among them only."""
    val = splits[select.split]

    def validate() -> dict[str, float]:
        pred = predict_split(trainer, val, batch_size, device)
        scores = split_scores(pred, val, select.setting, names)
        kept = {k: v for k, v in scores.items() if k.startswith("segment.")}
        return {**kept, select.metric: selection_score(scores, select.metric)}

    train = splits["train"]
    return fit(
        trainer,
        len(train),
        trainer.loop,
        generator,
        validate,
        name="avvp",
        load=partial(train.batches, device=device),
    )


def collect_predictions(
    trainer: Trainer,
    splits: dict[str, Split],
    names: tuple[str, ...],
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """One predictions.npz payload over the splits ``names`` (``split`` array says which)."""
    per = [predict_split(trainer, splits[n], batch_size, device) for n in names]
    T = max(p["seg_prob_audio"].shape[1] for p in per)
    out: dict[str, Any] = {}
    for k in per[0]:
        arrs = [p[k] for p in per]
        if k.startswith("seg_prob"):
            arrs = [np.pad(a, ((0, 0), (0, T - a.shape[1]), (0, 0))) for a in arrs]
        out[k] = np.concatenate(arrs)
    out["split"] = np.concatenate([np.full(len(splits[n]), n) for n in names])
    return out
