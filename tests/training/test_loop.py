"""The one training loop (avpipe.training.loop): epochs, selection, ties, clipping, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from avpipe.training import loop
from avpipe.training.loop import LoopConfig, OptimizerConfig, ScheduleConfig


class Toy(loop.Trainer):
    """Linear regression on 8 fixed points; records every Step it is given."""

    def __init__(self, cfg: LoopConfig):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.x, self.y = torch.randn(8, 2), torch.randn(8, 1) * 100
        self.opt = loop.Optimisers({"model": self.model.parameters()}, cfg, 8)
        self.steps: list[loop.Step] = []

    def batch_loss(self, step: loop.Step) -> tuple[torch.Tensor, dict[str, float]]:
        self.steps.append(step)
        err = self.model(self.x[step.idx]) - self.y[step.idx]
        return (err**2).mean(), {"abs": err.abs().mean().item()}


def _cfg(**kw: object) -> LoopConfig:
    base = {"epochs": 4, "batch_size": 4, "optimizer": OptimizerConfig("sgd", 0.01)}
    return LoopConfig(**{**base, **kw})


def _fit_with_scores(scores: list[float], ties: str) -> tuple[loop.FitResult, Toy, list]:
    tr = Toy(_cfg(select="score", ties=ties))
    it, snapshots = iter(scores), []

    def validate() -> dict[str, float]:
        snapshots.append(tr.model.weight.detach().clone())
        return {"score": next(it)}

    cfg = _cfg(select="score", ties=ties)
    res = loop.fit(tr, 8, cfg, torch.Generator().manual_seed(0), validate)
    return res, tr, snapshots


@pytest.mark.parametrize("ties,best", [("first", 2), ("last", 4)])
def test_tie_rule_picks_and_restores_the_kept_epoch(ties: str, best: int) -> None:
    res, tr, snapshots = _fit_with_scores([1.0, 3.0, 2.0, 3.0], ties)
    assert res.best_epoch == best and res.best_score == 3.0
    assert torch.equal(tr.model.weight, snapshots[best - 1])  # restored, not the last weights
    assert torch.equal(res.best_state["weight"], snapshots[best - 1])
    assert not torch.equal(snapshots[1], snapshots[3])
    assert res.val_scores == {"score": 3.0}


def test_selection_uses_the_named_metric_and_records_all() -> None:
    tr = Toy(_cfg())
    vals = iter([{"a": 9.0, "b": 1.0}, {"a": 1.0, "b": 5.0}, {"a": 8.0, "b": 2.0}])
    cfg = _cfg(epochs=3, select="b")
    res = loop.fit(tr, 8, cfg, torch.Generator().manual_seed(0), lambda: next(vals))
    assert res.best_epoch == 2 and res.best_score == 5.0
    rows = res.history.rows
    assert [r["val_select"] for r in rows] == [1.0, 5.0, 2.0]
    assert [r["val.a"] for r in rows] == [9.0, 1.0, 8.0]
    with pytest.raises(KeyError, match="'c' not in"):
        loop.fit(Toy(cfg), 8, _cfg(select="c"), torch.Generator(), lambda: {"a": 1.0})
    with pytest.raises(ValueError, match="selection metric"):
        loop.fit(Toy(cfg), 8, _cfg(), torch.Generator(), lambda: {"a": 1.0})


def test_epochs_count_from_one_and_batches_restart_each_epoch() -> None:
    cfg = _cfg(schedule=ScheduleConfig("multistep", (2,), gamma=0.5))
    tr = Toy(cfg)
    res = loop.fit(tr, 8, cfg, torch.Generator().manual_seed(0))
    rows = res.history.rows
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    assert [(s.epoch, s.batch_idx, s.step) for s in tr.steps] == [
        (e, b, 2 * (e - 1) + b + 1) for e in range(1, 5) for b in range(2)
    ]
    # no validation: the last epoch is kept, and the loss columns are sample means
    assert res.best_epoch == 4 and res.best_score is None
    assert {"loss", "abs", "seconds"} <= set(rows[0]) and "val_select" not in rows[0]
    assert len(res.epoch_seconds) == 4


def test_same_seed_same_weights_other_seed_other_order() -> None:
    def run(seed: int) -> torch.Tensor:
        tr = Toy(_cfg())
        loop.fit(tr, 8, _cfg(), torch.Generator().manual_seed(seed))
        return tr.model.weight.detach().clone()

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_the_update(clip: float | None) -> None:
    cfg = _cfg(epochs=1, batch_size=8, optimizer=OptimizerConfig("sgd", 1.0), grad_clip=clip)
    tr = Toy(cfg)
    before = torch.cat([p.detach().flatten().clone() for p in tr.model.parameters()])
    loop.fit(tr, 8, cfg, torch.Generator().manual_seed(0))
    after = torch.cat([p.detach().flatten() for p in tr.model.parameters()])
    step = (after - before).norm().item()  # lr 1: the (clipped) gradient norm
    if clip is None:
        assert step > 1.0  # targets scaled by 100: a large gradient
    else:
        assert step == pytest.approx(clip, rel=1e-4)


def test_cosine_schedule_steps_per_batch() -> None:
    cfg = _cfg(schedule=ScheduleConfig("cosine"))
    tr = Toy(cfg)
    res = loop.fit(tr, 8, cfg, torch.Generator().manual_seed(0))
    total = 4 * 2  # epochs * ceil(8 / 4)
    expect = [0.01 * 0.5 * (1 + math.cos(math.pi * 2 * e / total)) for e in range(4)]
    assert [r["lr"] for r in res.history.rows] == pytest.approx(expect)
    assert tr.opt.lr == pytest.approx(0.0, abs=1e-12)


def test_update_steps_only_the_named_group() -> None:
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    opt = loop.Optimisers({"a": a.parameters(), "b": b.parameters()}, _cfg())
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    opt.update((a(torch.ones(1, 2)) + b(torch.ones(1, 2))).sum(), "b")
    assert torch.equal(a.weight, wa) and not torch.equal(b.weight, wb)
    assert opt.lr == 0.01  # the first group's


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="ties must be"):
        loop.is_better(1.0, 0.0, "middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer 'lbfgs' unknown"):
        Toy(_cfg(optimizer=OptimizerConfig("lbfgs")))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no training samples"):
        loop.fit(Toy(_cfg()), 0, _cfg(), torch.Generator())
