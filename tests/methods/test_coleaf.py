"""CoLeaF losses against hand computations, and the Reference branch."""

from __future__ import annotations

import math

import pytest
import torch

from avpipe.methods.coleaf.losses import (
    asl,
    cc_teacher,
    class_correlation_loss,
    event_aware_weights,
    smkd_targets,
    smoothed_nce,
)
from avpipe.methods.coleaf.reference import ReferenceNet


def test_asl_by_hand_and_focus_without_gradient() -> None:
    p = torch.tensor([0.8, 0.3, 0.02], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0])
    loss = asl(p, y)
    # positive: -(1-0.8) ln 0.8; negative 0.3: p- = 0.75 -> -(1-0.75) ln 0.75;
    # negative 0.02: p- = min(1.03, 1) -> 0
    assert loss.item() == pytest.approx(-(0.2 * math.log(0.8) + 0.25 * math.log(0.75)), rel=1e-6)
    loss.backward()
    # d/dp of -0.2 ln p at 0.8 = -0.25 (the focusing weight is a constant)
    assert p.grad[0].item() == pytest.approx(-0.25, rel=1e-6)
    assert p.grad[2].item() == 0.0


def test_smoothed_nce_by_hand() -> None:
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    e = math.e
    ell = -math.log(0.9 * e / (e + 1) + 0.1 / (e + 1))
    assert smoothed_nce(q, q, tau=1.0, smoothing=0.1).item() == pytest.approx(ell, rel=1e-6)
    assert smoothed_nce(q, q, tau=1.0, weight=torch.tensor([0.5])).item() == pytest.approx(
        0.5 * ell, rel=1e-6
    )
    # a padded third segment changes nothing; a video with one real segment has no negatives -> 0
    q3 = torch.cat([q, torch.tensor([[[0.6, 0.8]]])], dim=1)
    mask = torch.tensor([[True, True, False]])
    assert smoothed_nce(q3, q3, mask, tau=1.0).item() == pytest.approx(ell, rel=1e-6)
    one = torch.tensor([[True, False, False]])
    assert smoothed_nce(q3, q3, one, tau=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_event_aware_weights_by_hand() -> None:
    pa = torch.tensor([[0.9, 0.9, 0.1, 0.6], [0.1, 0.1, 0.1, 0.1]])
    pv = torch.tensor([[0.9, 0.2, 0.7, 0.1], [0.1, 0.1, 0.1, 0.1]])
    # video 0: pseudo a = 1101, v = 1010 -> N_ao = 2, N_vo = 1, N_av = 1; video 1: no events
    wa, wv = event_aware_weights(pa, pv)
    assert wa.tolist() == pytest.approx([2 / 3, 0.0]) and wv.tolist() == pytest.approx([1 / 2, 0.0])
    wa, wv = event_aware_weights(pa, pv, mode="single")
    assert wa.tolist() == pytest.approx([3 / 4, 0.0]) and torch.equal(wa, wv)
    # restricted to the video's labels (classes 0 and 2 only): N_ao = 0, N_vo = 1, N_av = 1
    wa, wv = event_aware_weights(pa, pv, labels=torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0]]))
    assert wa.tolist() == pytest.approx([0.0, 0.0]) and wv.tolist() == pytest.approx([0.5, 0.0])
    wa, wv = event_aware_weights(pa, pv, mode="none")
    assert wa.tolist() == [1.0, 1.0]


def test_smkd_targets_by_hand() -> None:
    ya, yv = smkd_targets(
        torch.tensor([[0.5, 0.49]]),
        torch.tensor([[0.6, 0.7]]),
        torch.tensor([[1.0, 1.0]]),
        torch.tensor([[0.95, 0.05]]),
    )
    assert ya.tolist() == [[1.0, 0.0]]
    assert yv[0].tolist() == pytest.approx([0.95, 0.05])


def test_cc_teacher_and_correlation_loss_by_hand() -> None:
    t = cc_teacher(
        torch.tensor([[0.85, 0.5, 0.05]]),
        torch.tensor([[0.3, 0.4, 0.6]]),
        torch.tensor([[1.0, 1.0, 0.0]]),
        0.8,
        0.1,
    )
    # gate = [1 (confident, labelled), 0 (unsure), 0 (confident but not labelled)]
    assert t[0].tolist() == pytest.approx([0.85, 0.4, 0.6])
    assert cc_teacher(
        torch.tensor([[0.85]]), torch.tensor([[0.3]]), torch.tensor([[1.0]]), 0.9, 0.1, gated=False
    ).item() == pytest.approx(0.85)
    p = torch.tensor([[0.5, 1.0], [0.5, 1.0]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # per video: (1 - .25)^2 + 2 (0 - .5)^2 + (0 - 1)^2 = 2.0625; sum over B = 2: 4.125; C = 2
    assert class_correlation_loss(p, teacher, "code").item() == pytest.approx(4.125 / 2 * 2)
    assert class_correlation_loss(p, teacher, "mean").item() == pytest.approx(4.125 / 4)
    assert class_correlation_loss(p, teacher, "mse").item() == pytest.approx(4.125 / 8)
    class_correlation_loss(p, teacher).backward()
    assert p.grad is not None and teacher.grad is None


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_reference_tokens_padding_and_outputs(modality: str) -> None:
    torch.manual_seed(0)
    net = ReferenceNet(modality, 5, 6, 4, n_classes=3, d=8, ffn=8).eval()
    B, T, k = 2, 4, 2
    batch = {
        "audio": torch.randn(B, T, 5),
        "frames": torch.randn(B, T, k, 6),
        "motion": torch.randn(B, T, 4),
        "mask": torch.ones(B, T, dtype=torch.bool),
    }
    out = net(batch)
    assert out["seg_prob"].shape == (B, T, 3) and out["video_prob"].shape == (B, 3)
    # zero-initialised class tokens: LayerNorm outputs have zero mean, so c = σ(0) = 0.5 at init
    assert torch.allclose(out["class_prob"], torch.full((B, 3), 0.5), atol=1e-5)
    assert torch.allclose(out["embedding"].norm(dim=-1), torch.ones(B, T), atol=1e-5)
    # two padded segments give the same result as the unpadded T = 4 videos
    pad = {key: torch.cat([v, torch.zeros_like(v[:, :2])], dim=1) for key, v in batch.items()}
    out_pad = net(pad)
    assert torch.allclose(out_pad["video_prob"], out["video_prob"], atol=1e-5)
    assert torch.allclose(out_pad["seg_prob"][:, :T], out["seg_prob"], atol=1e-5)
    assert ReferenceNet(modality, 5, 6, 4, n_classes=3, d=8, ffn=8, class_tokens=False)(
        batch
    ).keys() == {"seg_prob", "video_prob", "embedding"}
