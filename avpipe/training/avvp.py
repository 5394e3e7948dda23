"""Training loop shared by the weakly supervised AVVP methods (HAN, CoLeaF).

A method is a module with a frozen ``Config`` dataclass (which has ``select``, a
``Selection``) and a ``Trainer(cfg, dims, device, generator)`` that exposes
``epochs``, ``train_epoch(split, epoch) -> {loss name: value}`` (epochs count from 1),
``predict(batch) -> probabilities`` of the deployed model and ``deploy_state()`` /
``load_deploy_state(state)``.  This loop runs the epochs, scores the validation split
after each one, keeps the best deployed weights (model selection on val only, spec
§5.1/§6 item 9) and writes predictions for val and test.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from avpipe.datasets.avvp import AVVPSplit
from avpipe.metrics import avvp as metrics
from avpipe.training.epochs import History, ordered_batches

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
    num_threads: int = 1
    device: str = "auto"
    eval_batch_size: int = 64


@dataclass(frozen=True)
class Selection:
    """Model selection on the validation split: ``metric`` is ``level.name`` of
    avpipe.metrics.avvp (e.g. ``segment.Type@AV``) or ``new_mean`` (CoLeaF's mean
    of the ten new metrics), computed under ``setting``."""

    metric: str = "segment.Type@AV"
    setting: metrics.Setting = field(default_factory=lambda: metrics.Setting(0.5, 0.5, "global"))
    split: str = "val"


class Trainer(Protocol):
    epochs: int

    def train_epoch(self, split: AVVPSplit, epoch: int) -> dict[str, float]: ...

    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def deploy_state(self) -> dict[str, torch.Tensor]: ...

    def load_deploy_state(self, state: dict[str, torch.Tensor]) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_split(
    trainer: Trainer, split: AVVPSplit, batch_size: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Deployed-model probabilities for every sample of ``split`` (arrays of ``PRED_KEYS``)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in PRED_KEYS}
    for idx in ordered_batches(len(split), batch_size):
        out = trainer.predict(split.batch(idx, device))
        for k in PRED_KEYS:
            parts[k].append(out[k].float().cpu().numpy())
    pred = {k: np.concatenate(v) for k, v in parts.items()}
    pred["sample_id"] = np.asarray(split.sample_ids)
    pred["n_segments"] = split.n_segments
    return pred


def split_scores(
    pred: dict[str, np.ndarray], split: AVVPSplit, setting: metrics.Setting
) -> dict[str, float]:
    """All AVVP metrics of ``pred`` against the split's dense labels."""
    n = split.n_segments
    Ga = [split.dense_audio[i, : n[i]].T > 0 for i in range(len(split))]
    Gv = [split.dense_visual[i, : n[i]].T > 0 for i in range(len(split))]
    return metrics.dataset_scores(*metrics.predict(pred, setting), Ga, Gv)


def selection_score(scores: dict[str, float], metric: str) -> float:
    if metric == "new_mean":
        return metrics.new_metric_mean(scores)
    if metric not in scores:
        raise KeyError(
            f"selection metric {metric!r} unknown; use new_mean or one of {sorted(scores)}"
        )
    return scores[metric]


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: History
    val_scores: dict[str, float]
    seconds: float


def fit(
    trainer: Trainer,
    splits: dict[str, AVVPSplit],
    select: Selection,
    device: torch.device,
    batch_size: int,
) -> FitResult:
    """Train ``trainer.epochs`` epochs; restore and return the best epoch on ``select.split``."""
    t0 = time.perf_counter()
    history = History("avvp", log_every=1)
    val = splits[select.split]
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, float]] | None = None
    for epoch in range(1, trainer.epochs + 1):
        losses = trainer.train_epoch(splits["train"], epoch)
        scores = split_scores(predict_split(trainer, val, batch_size, device), val, select.setting)
        score = selection_score(scores, select.metric)
        history.epoch(
            epoch,
            **losses,
            val_select=score,
            **{f"val.{k}": v for k, v in scores.items() if k.startswith("segment.")},
        )
        log.info(
            "epoch %d %s val %s=%.2f",
            epoch,
            " ".join(f"{k}={v:.4f}" for k, v in losses.items()),
            select.metric,
            score,
        )
        if best is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(trainer.deploy_state()), scores)
    if best is None:
        raise ValueError("no training epoch: set epochs >= 1")
    trainer.load_deploy_state(best[2])
    log.info("best epoch %d (%s = %.2f on %s)", best[1], select.metric, best[0], select.split)
    return FitResult(best[1], best[0], history, best[3], time.perf_counter() - t0)


def collect_predictions(
    trainer: Trainer,
    splits: dict[str, AVVPSplit],
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
