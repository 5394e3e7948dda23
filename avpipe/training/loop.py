"""A plain supervised training loop: Adam, multi-step decay, gradient clipping, and
model selection on a validation score (never on the test split).

The method supplies ``load(index_batches) -> (idx, batch) pairs`` (the data contract's
:meth:`~avpipe.training.data.Split.batches`, which reads ahead), ``batch_loss(batch) ->
(loss, parts)`` and ``validate() -> {"score": ..., ...}`` (higher is better).  The loop
owns the optimiser, the schedule, the shuffling (seeded) and the history.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from avpipe.training.epochs import History, seed_everything, shuffled_batches

__all__ = ["FitResult", "TrainConfig", "fit", "seed_everything"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: the CPSP fully supervised script, spec §3.4)."""

    epochs: int = 45
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (10, 20, 30)  # epochs at which lr *= lr_gamma
    lr_gamma: float = 0.5
    grad_clip: float | None = 0.1  # max L2 norm of all gradients; null = no clipping
    log_every: int = 50  # steps between progress log lines


@dataclass
class FitResult:
    """``best_state``: the weights of the best validation epoch (already loaded)."""

    history: History
    best_epoch: int
    best_score: float
    best_state: dict[str, torch.Tensor]
    epoch_seconds: list[float] = field(default_factory=list)


def fit(
    model: torch.nn.Module,
    n_train: int,
    batch_loss: Callable[[Any], tuple[torch.Tensor, dict[str, float]]],
    validate: Callable[[], dict[str, float]],
    cfg: TrainConfig,
    seed: int,
    name: str = "train",
    load: Callable[[Iterable[np.ndarray]], Iterator[tuple[np.ndarray, Any]]] | None = None,
) -> FitResult:
    """Train ``model`` in place and load the weights of the best validation epoch.

    ``validate`` runs after every epoch under ``torch.no_grad()`` with the model in
    eval mode; its ``score`` picks the epoch (ties keep the earlier one).  Without
    ``load``, ``batch_loss`` receives the index batches themselves.
    """
    if n_train < 1:
        raise ValueError(f"{name}: no training samples")
    gen = seed_everything(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=cfg.lr_gamma)
    hist = History(name, cfg.log_every)
    best = (-float("inf"), -1, copy.deepcopy(model.state_dict()))
    seconds: list[float] = []
    step = 0
    for epoch in tqdm(range(cfg.epochs), desc=name, leave=False, disable=None):
        t0 = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        n = 0
        lr = opt.param_groups[0]["lr"]
        order = shuffled_batches(n_train, cfg.batch_size, gen)
        for idx, batch in load(order) if load else ((i, i) for i in order):
            loss, parts = batch_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            parts = {"loss": loss.item(), **parts}
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            n += len(idx)
            hist.step(step, len(idx), lr, **parts)
        sched.step()
        seconds.append(time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            val = validate()
        if val["score"] > best[0]:
            best = (val["score"], epoch, copy.deepcopy(model.state_dict()))
        train_means = {k: v / max(n, 1) for k, v in sums.items()}
        hist.epoch(
            epoch,
            lr=lr,
            seconds=seconds[-1],
            **train_means,
            **{f"val_{k}": v for k, v in val.items()},
        )
        log.info(
            "%s epoch %d: loss %.4f, val score %.3f (%.2f s)",
            name,
            epoch,
            train_means.get("loss", float("nan")),
            val["score"],
            seconds[-1],
        )
    model.load_state_dict(best[2])
    log.info("%s: best val score %.3f at epoch %d of %d", name, best[0], best[1], cfg.epochs)
    return FitResult(hist, best[1], best[0], best[2], seconds)
