"""The one training loop of avpipe: every method's trainer plugs into :func:`fit`.

The loop owns the epochs, the seeded batch order, the optimisers and schedules (built
from a :class:`LoopConfig`, the only optimiser step in avpipe is
:meth:`Optimisers.update`), optional gradient clipping, model selection on a named
validation metric, the best state (kept in memory and restored at the end) and the
history.  A method supplies a :class:`Trainer`: its per-batch loss
(:meth:`Trainer.batch_loss`), or a whole step when it needs several optimiser updates
per batch (:meth:`Trainer.train_step`: CoLeaF's Reference and Anchor, CLCL's memory
banks), and optionally a ``validate()`` returning named metrics.

Conventions, the same for every method:

* epochs count from 1 (``history.tsv`` column ``epoch``, ``best_epoch`` of summaries and
  checkpoints), as the reference training scripts print them;
* one history row per epoch: ``epoch``, ``lr`` (of the first optimiser, in force at the
  epoch's start), ``seconds``, the training losses (means over the epoch's samples), the
  trainer's epoch extras, and with validation ``val_select`` (the selection metric) and
  ``val.<name>`` for every metric ``validate`` returned;
* selection maximises ``LoopConfig.select`` on the validation metrics (never on test);
  ``ties: first`` keeps the earlier of equal scores, ``last`` the later one (the released
  HAN, CMPAE and CoLeaF scripts compare with ``>=``, CPSP's with ``>``).  Without
  validation the last epoch is kept;
* seeding: callers call :func:`seed_everything` before building their networks and
  pass the generator it returns; :func:`fit` draws every epoch's batch order from it,
  so the order of random draws (initialisation, then shuffles and dropout interleaved
  batch by batch) is the same for every method.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from avpipe.training.epochs import History, seed_everything, shuffled_batches

__all__ = [
    "FitResult",
    "LoopConfig",
    "OptimizerConfig",
    "Optimisers",
    "ScheduleConfig",
    "Step",
    "Trainer",
    "fit",
    "is_better",
    "seed_everything",
]

log = logging.getLogger(__name__)

Ties = Literal["first", "last"]


@dataclass(frozen=True)
class OptimizerConfig:
    """``adam`` (Adam with L2 ``weight_decay``) or ``sgd`` (with ``momentum``)."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule.

    ``constant``; ``multistep``: lr *= gamma after each epoch count in ``milestones``;
    ``step``: lr *= gamma every ``step_size`` epochs; ``cosine``: per optimiser step,
    lr(s) = lr0 * (1 + cos(pi s / S)) / 2 over all S = epochs * ceil(N / batch) steps.
    """

    name: Literal["constant", "multistep", "step", "cosine"] = "constant"
    milestones: tuple[int, ...] = ()
    step_size: int = 1
    gamma: float = 0.1


@dataclass(frozen=True)
class LoopConfig:
    """Everything :func:`fit` needs; each method builds one from its own config section."""

    epochs: int
    batch_size: int
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: float | None = None  # max L2 norm of each optimiser's gradients; None = off
    select: str | None = None  # validation metric to maximise; None = keep the last epoch
    ties: Ties = "first"
    log_every: int = 50  # steps between progress log lines


@dataclass(frozen=True)
class Step:
    """One training batch: ``idx`` (B,) training indices, ``epoch`` (from 1),
    ``batch_idx`` (from 0 in every epoch, the reference loops' ``batch_idx``) and the
    global optimiser ``step`` (from 1)."""

    idx: np.ndarray
    epoch: int
    batch_idx: int
    step: int


def _scheduler(
    opt: torch.optim.Optimizer, cfg: LoopConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """(scheduler, stepped per optimiser step rather than per epoch)."""
    s = cfg.schedule
    if s.name == "constant":
        return None, False
    if s.name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, list(s.milestones), gamma=s.gamma), False
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, s.step_size, s.gamma), False
    if s.name == "cosine":
        total = max(1, cfg.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
        ), True
    raise ValueError(f"schedule {s.name!r} unknown; use constant, multistep, step or cosine")


def _optimizer(params: list[torch.nn.Parameter], o: OptimizerConfig) -> torch.optim.Optimizer:
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise ValueError(f"optimizer {o.name!r} unknown; use adam or sgd")


class Optimisers:
    """One optimiser and schedule per named parameter group, all from ``cfg``.

    ``groups``: name -> parameters (those with ``requires_grad`` are optimised), in the
    order their schedules step.  The first group's lr is the one the history records.
    ``n_train`` sizes a per-step schedule (ceil(n_train / batch_size) steps an epoch).
    """

    def __init__(
        self,
        groups: Mapping[str, Iterable[torch.nn.Parameter]],
        cfg: LoopConfig,
        n_train: int = 1,
    ):
        if not groups:
            raise ValueError("Optimisers: no parameter group")
        self.grad_clip = cfg.grad_clip
        self.params = {k: [p for p in ps if p.requires_grad] for k, ps in groups.items()}
        self.opts = {k: _optimizer(ps, cfg.optimizer) for k, ps in self.params.items()}
        steps = max(1, -(-n_train // cfg.batch_size))
        self.scheds = {k: _scheduler(o, cfg, steps) for k, o in self.opts.items()}
        self.main = next(iter(self.opts))

    def update(self, loss: torch.Tensor, group: str | None = None) -> None:
        """Backpropagate ``loss`` into ``group`` (default: the first), clip, step."""
        name = group or self.main
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params[name], self.grad_clip)
        opt.step()
        sched, per_step = self.scheds[name]
        if sched is not None and per_step:
            sched.step()

    def end_epoch(self) -> None:
        for sched, per_step in self.scheds.values():
            if sched is not None and not per_step:
                sched.step()

    @property
    def lr(self) -> float:
        return float(self.opts[self.main].param_groups[0]["lr"])


class Trainer:
    """What a method plugs into :func:`fit` (subclass it).

    Set ``model`` (the module whose state is selected, restored and deployed) and
    ``opt`` (an :class:`Optimisers`), then implement :meth:`batch_loss`, or
    :meth:`train_step` when one batch needs more than one optimiser update.
    """

    model: torch.nn.Module
    opt: Optimisers

    def train_mode(self) -> None:
        """Called at the start of every epoch (validation may have switched to eval)."""
        self.model.train()

    def batch_loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of the batch ``step.idx`` and its named parts (floats, for the history)."""
        name = type(self).__name__
        raise NotImplementedError(f"{name} defines neither batch_loss nor train_step")

    def train_step(self, step: Step) -> dict[str, float]:
        """One batch: losses for the history (``loss`` first).  Default: one update."""
        loss, parts = self.batch_loss(step)
        self.opt.update(loss)
        return {"loss": loss.item(), **parts}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Extra history columns of ``epoch``, computed after its last step."""
        return {}

    def state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def is_better(score: float, best: float | None, ties: Ties) -> bool:
    """``score`` replaces ``best`` (None = nothing kept yet) under the tie rule."""
    if ties not in ("first", "last"):
        raise ValueError(f"ties must be 'first' or 'last', got {ties!r}")
    if best is None:
        return True
    return score > best if ties == "first" else score >= best


@dataclass
class FitResult:
    """``best_state``: the kept weights (already loaded into the trainer).  Without
    validation ``best_epoch`` is the last epoch and ``best_score`` is None."""

    history: History
    best_epoch: int
    best_score: float | None
    best_state: dict[str, torch.Tensor]
    val_scores: dict[str, float] = field(default_factory=dict)  # of the best epoch
    epoch_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit(
    trainer: Trainer,
    n_train: int,
    cfg: LoopConfig,
    generator: torch.Generator,
    validate: Callable[[], dict[str, float]] | None = None,
    name: str = "train",
) -> FitResult:
    """Train ``cfg.epochs`` epochs over ``n_train`` samples; keep and restore the best.

    ``validate`` runs after every epoch under ``torch.no_grad()`` and returns named
    metrics (higher is better), among them ``cfg.select``.
    """
    if n_train < 1:
        raise ValueError(f"{name}: no training samples")
    if validate is not None and (cfg.select is None or cfg.epochs < 1):
        raise ValueError(f"{name}: validation needs a selection metric and epochs >= 1")
    t_start = time.perf_counter()
    hist = History(name, cfg.log_every)
    best: tuple[float | None, int, dict[str, torch.Tensor] | None, dict[str, float]]
    best = (None, cfg.epochs, None, {})
    seconds: list[float] = []
    step = 0
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=name, leave=False, disable=None):
        t0 = time.perf_counter()
        trainer.train_mode()
        lr = trainer.opt.lr
        sums: dict[str, float] = {}
        n = 0
        for batch_idx, idx in enumerate(shuffled_batches(n_train, cfg.batch_size, generator)):
            step += 1
            parts = trainer.train_step(Step(idx, epoch, batch_idx, step))
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            n += len(idx)
            hist.step(step, len(idx), trainer.opt.lr, **parts)
        trainer.opt.end_epoch()
        row = {k: v / max(n, 1) for k, v in sums.items()}
        row.update(trainer.end_epoch(epoch))
        seconds.append(time.perf_counter() - t0)
        if validate is not None:
            with torch.no_grad():
                val = validate()
            if cfg.select not in val:
                raise KeyError(f"{name}: selection metric {cfg.select!r} not in {sorted(val)}")
            score = float(val[cfg.select])
            row.update({"val_select": score, **{f"val.{k}": v for k, v in val.items()}})
            if is_better(score, best[0], cfg.ties):
                best = (score, epoch, copy.deepcopy(trainer.state()), val)
        hist.epoch(epoch, lr=lr, seconds=seconds[-1], **row)
        log.info(
            "%s epoch %d: loss %.4f%s (%.2f s)",
            name,
            epoch,
            row.get("loss", float("nan")),
            f", val {cfg.select} {row['val_select']:.3f}" if validate is not None else "",
            seconds[-1],
        )
    state = best[2]
    if state is None:
        state = trainer.state()
    else:
        trainer.load_state(state)
        log.info(
            "%s: best val %s %.3f at epoch %d of %d (ties: %s)",
            name,
            cfg.select,
            best[0],
            best[1],
            cfg.epochs,
            cfg.ties,
        )
    return FitResult(hist, best[1], best[0], state, best[3], seconds, time.perf_counter() - t_start)
