"""PSP / CPSP objectives against hand-computed values on tiny inputs (jasongief/CPSP losses)."""

from __future__ import annotations

import math

import pytest
import torch

from avpipe.methods.cpsp import losses


def test_full_classification_by_hand() -> None:
    event = torch.tensor([[0.0, math.log(3.0)]])
    fg = torch.tensor([[0.0, 1.0]])
    cls_logit = torch.tensor([[0.0, math.log(2.0)]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    # BCE: (ln 2 + ln 4/3) / 2; CE of class 1 with probabilities (1/3, 2/3): ln 1.5
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2 + math.log(1.5)
    got = losses.full_classification(event, cls_logit, fg, torch.tensor([1]), mask)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # a video without an event has no category term; padded segments do not count
    got = losses.full_classification(
        event, cls_logit, fg, torch.tensor([-1]), torch.tensor([[True, False]])
    )
    assert got.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_psp_segment_ce_by_hand() -> None:
    logit = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    got = losses.psp_segment_ce(logit, torch.tensor([[0, 2]]), torch.ones(1, 2, dtype=torch.bool))
    assert got.item() == pytest.approx((math.log(2.0) + math.log(1.25)) / 2, rel=1e-6)


def test_weak_classification_is_multilabel_soft_margin_on_the_softmax() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1]])
    y = torch.tensor([[1.0, 0.0, 0.0]])

    def ls(x: float) -> float:
        return math.log(1.0 / (1.0 + math.exp(-x)))

    expected = -(ls(0.7) + ls(-0.2) + ls(-0.1)) / 3
    assert losses.weak_classification(p, y).item() == pytest.approx(expected, rel=1e-6)


def test_avpsp_by_hand() -> None:
    sim = torch.tensor([[0.6, 0.2, 0.2]])
    fg = torch.tensor([[1.0, 1.0, 0.0]])
    # c_hat = (.6, .2, .2), g = (.5, .5, 0): squared errors .01, .09, .04
    got = losses.avpsp_loss(sim, fg, torch.ones(1, 3, dtype=torch.bool))
    assert got.item() == pytest.approx(0.14 / 3, rel=1e-4)
    # negative cosines are cut at 0 before normalising
    got = losses.avpsp_loss(
        torch.tensor([[0.5, -0.3, 0.5]]),
        torch.tensor([[1.0, 0.0, 1.0]]),
        torch.ones(1, 3, dtype=torch.bool),
    )
    assert got.item() == pytest.approx(0.0, abs=1e-6)


def _spsa_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # video 0: two identical event segments, one orthogonal background segment;
    # video 1: background only (left out of the mean)
    fused = torch.tensor(
        [[[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], [[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]]
    )
    fg = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    return fused, fg, torch.ones(2, 3, dtype=torch.bool)


def test_spsa_intended_by_hand() -> None:
    fused, fg, mask = _spsa_batch()
    tau = 0.5
    # each event segment: P = 2 e^(1/tau), N = mean over one background = e^0
    pos = 2 * math.exp(1 / tau)
    expected = -math.log(pos / (pos + 1.0))
    got = losses.spsa_loss(fused, fg, mask, temperature=tau, impl="intended")
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_spsa_intended_has_gradient_and_released_is_a_constant_without_one() -> None:
    fused, fg, mask = _spsa_batch()
    x = fused.clone().requires_grad_(True)
    losses.spsa_loss(x, fg, mask, 0.6, "intended").backward()
    assert x.grad[0].abs().sum() > 1e-3
    # the background-only video: no gradient, and no NaN from its empty positive sums
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().max() == 0.0

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, generator=g, requires_grad=True)
    fg1 = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    value = losses.spsa_loss(x, fg1, torch.ones(1, 4, dtype=torch.bool), 0.6, "released_noop")
    value.backward()
    # |G| * (-log 1e-12) / |E| = 1 * 27.631 / 3, whatever the features
    assert value.item() == pytest.approx(-math.log(1e-12) / 3, rel=1e-5)
    # zero up to rounding (d(pos/pos)/dpos evaluates to ~1e-9 in float32)
    assert x.grad.abs().max() < 1e-6


def test_spsa_rejects_unknown_impl() -> None:
    fused, fg, mask = _spsa_batch()
    with pytest.raises(ValueError, match="spsa impl"):
        losses.spsa_loss(fused, fg, mask, impl="paper")


def test_vpsa_by_hand() -> None:
    fused = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.6, 0.8]]])  # T = 1: h = the row
    y = torch.tensor([0, 0, 1])
    mask = torch.ones(3, 1, dtype=torch.bool)
    s2, s08, s04 = math.sqrt(2), math.sqrt(0.8), math.sqrt(0.4)
    # i=0: d+ = sqrt2, d- = sqrt.8; i=1: d+ = sqrt2, d- = sqrt.4; i=2: only itself positive -> 0
    expected = ((s2 - s08 + 0.2) + (s2 - s04 + 0.2) + 0.0) / 3
    got = losses.vpsa_loss(fused, y, mask, margin=0.2, negatives=1)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # fewer real negatives than k: the 1e12 fill enters the mean and the hinge is 0
    assert losses.vpsa_loss(fused, y, mask, margin=0.2, negatives=3).item() == 0.0


def test_ss_infonce_by_hand() -> None:
    eye = torch.eye(2).unsqueeze(0)  # one video, two segments
    got = losses.ss_infonce(eye, eye, torch.ones(1, 2, dtype=torch.bool), temperature=1.0)
    assert got.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
