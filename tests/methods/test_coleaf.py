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
    jomold_denoise,
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


def test_jomold_denoise_by_hand() -> None:
    # 4 videos, one class, all labels positive; visual ratio 0.5 -> n = 2, audio 0.25 -> n = 1
    pa = torch.tensor([[0.9], [0.8], [0.3], [0.2]])
    pv = torch.tensor([[0.1], [0.9], [0.2], [0.95]])
    ta, tv = torch.ones(4, 1), torch.full((4, 1), 0.95)
    new_a, new_v = jomold_denoise(pa, pv, ta, tv, torch.tensor([0.25]), torch.tensor([0.5]))
    # visual: smallest audio loss {0, 1} & largest visual loss {0, 2} -> video 0 loses its label
    assert new_v[:, 0].tolist() == pytest.approx([0.0, 0.95, 0.95, 0.95])
    # audio: largest audio loss {3} & smallest visual loss {3} -> video 3 loses its label
    assert new_a[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert ta.sum() == 4  # inputs untouched


def _toy_trainer(**cfg: dict):
    from avpipe.config import from_dict
    from avpipe.datasets.avvp import Dims
    from avpipe.methods.coleaf import trainer

    conf = from_dict(
        trainer.Config,
        {"anchor": {"d_model": 8, "ffn": 8}, "reference": {"d_model": 8, "ffn": 8}, **cfg},
    )
    dims = Dims(audio=5, frames=6, motion=4, frames_per_segment=2, n_classes=3)
    return trainer.Trainer(conf, dims, torch.device("cpu"))


def _toy_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "audio": torch.randn(4, 5, 5),
        "frames": torch.randn(4, 5, 2, 6),
        "motion": torch.randn(4, 5, 4),
        "mask": torch.ones(4, 5, dtype=torch.bool),
        "labels": torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]]),
    }


def test_anchor_loss_trains_only_the_anchor() -> None:
    tr = _toy_trainer()
    b = _toy_batch()
    args = (b["audio"], b["frames"], b["motion"], b["mask"])
    ref = {m: tr._no_grad_forward(net, b) for m, net in tr.refs.items()}
    logs: dict[str, float] = {}
    loss = tr.anchor_loss(b, args, tr.targets(b["labels"], args, 2), ref, epoch=2, logs=logs)
    loss.backward()
    assert {"anchor_mil", "ea_audio", "ea_visual", "cc_audio", "cc_visual"} <= set(logs)
    assert all(p.grad is None for net in tr.refs.values() for p in net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.anchor.parameters())
    # epoch 1: neither the contrastive nor the correlation term (both start at epoch 2)
    logs1: dict[str, float] = {}
    tr.anchor_loss(b, args, tr.targets(b["labels"], args, 1), ref, epoch=1, logs=logs1)
    assert set(logs1) == {"anchor_mil"}


def test_denoise_config_is_checked_and_runs() -> None:
    from avpipe.config import ConfigError

    with pytest.raises(ConfigError, match="3 values"):
        _toy_trainer(denoise={"enabled": True, "ratios_audio": [0.1], "ratios_visual": [0.1]})
    tr = _toy_trainer(
        denoise={"enabled": True, "ratios_audio": [0.5] * 3, "ratios_visual": [0.5] * 3}
    )
    logs = tr.step(_toy_batch(), epoch=2)
    assert all(math.isfinite(v) for v in logs.values())


def test_cmpae_anchor_evidence_and_step() -> None:
    from avpipe.methods.coleaf.cmpae import evidential_prob

    # presence logit 0.8 ln 3, absence -inf-ish: e+ = 3, e- = exp(-12.5) ~ 0 -> α = (4, 1)
    p, u = evidential_prob(torch.tensor([[0.8 * math.log(3.0), -20.0]]))
    assert p.item() == pytest.approx(4 / (4 + 1 + math.exp(-12.5)), rel=1e-5)
    assert u.item() == pytest.approx(2 / 5, rel=1e-4)
    tr = _toy_trainer(anchor_backbone="cmpae", train={"fuse_no_cross": 0.3})
    b = _toy_batch()
    for _ in range(2):  # both directions of the mutual loss
        logs = tr.step(b, epoch=2)
    assert all(math.isfinite(v) for v in logs.values())
    pred = tr.predict(b)
    assert pred["seg_prob_audio"].shape == (4, 5, 3) and pred["video_prob"].shape == (4, 3)


def test_cmpae_v2a_a2v_use_leaky_relu_slope_0_2() -> None:
    from avpipe.methods.coleaf.cmpae import CMPAE

    net = CMPAE(5, 6, 4, n_classes=4, d=4, ffn=4).eval()  # eval: no dropout
    with torch.no_grad():
        for lin in (net.w_v2a, net.w_a2v):
            lin.weight.copy_(-torch.eye(4))
            lin.bias.zero_()
        net.fc_neg.weight.copy_(torch.eye(4))
        net.fc_neg.bias.zero_()
    seen: list[torch.Tensor] = []
    net.fc_neg.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    xa, xv = torch.ones(1, 2, 4), torch.zeros(1, 2, 4)
    net.heads(xa, xv, torch.ones(1, 2, dtype=torch.bool))
    # mix = xa + xv = 1 -> W(mix) = -1 -> LeakyReLU(0.2) = -0.2 (slope 0.01 would give -0.01)
    assert torch.allclose(seen[0], torch.full((1, 2, 4), 0.8))  # absence logit of audio
    assert torch.allclose(seen[1], torch.full((1, 2, 4), -0.2))  # of visual


@pytest.mark.parametrize("global_student", [True, False])
def test_cmpae_mutual_loss_gradient_through_uncertainty(global_student: bool) -> None:
    from avpipe.methods.coleaf.cmpae import mutual_loss

    def leaf(x: float) -> torch.Tensor:
        return torch.tensor([[x]], requires_grad=True)

    out = {
        "audio_prob": leaf(0.8),
        "visual_prob": leaf(0.6),
        "video_prob": leaf(0.5),
        "audio_unc": leaf(0.3),
        "visual_unc": leaf(0.5),
        "global_unc": torch.tensor([0.95], requires_grad=True),
    }
    y = torch.tensor([[1.0]])
    loss = mutual_loss(out, y, global_student)
    # positive class: w (1 - u_a) (p_g - max(p_a, p_v))^2 with w = u_g (odd) or 1 - u_g (even)
    w, dw = (0.95, 1.0) if global_student else (0.05, -1.0)
    assert loss.item() == pytest.approx(w * 0.7 * 0.09, rel=1e-6)
    loss.backward()
    assert out["global_unc"].grad.item() == pytest.approx(dw * 0.7 * 0.09, rel=1e-5)
    assert out["audio_unc"].grad.item() == pytest.approx(-w * 0.09, rel=1e-5)
    # only the student's probability gets gradient
    pair = ("video_prob", "audio_prob")
    student, teacher = pair if global_student else pair[::-1]
    assert out[student].grad.item() != 0.0 and out[teacher].grad is None
    # the old avpipe departure, as a switch: no gradient through the weights
    out = {k: v.detach().requires_grad_() for k, v in out.items()}
    mutual_loss(out, y, global_student, detach_uncertainty=True).backward()
    assert out["global_unc"].grad is None and out["audio_unc"].grad is None


def test_cmpae_mutual_direction_alternates_from_even_in_every_epoch(monkeypatch) -> None:
    from avpipe.methods.coleaf import trainer as coleaf_trainer

    seen: list[bool] = []
    real = coleaf_trainer.cmpae_loss

    def spy(*args, **kw):
        seen.append(bool(args[5]))
        return real(*args, **kw)

    monkeypatch.setattr(coleaf_trainer, "cmpae_loss", spy)
    tr = _toy_trainer(anchor_backbone="cmpae")
    b = _toy_batch()
    for epoch, n_batches in ((1, 3), (2, 3), (3, 2)):
        for _ in range(n_batches):
            tr.step(b, epoch)
    # batch_idx 0, 1, 2 | 0, 1, 2 | 0, 1: odd batch_idx = the global branch is the student
    assert seen == [False, True, False, False, True, False, False, True]
    # in the training loop the direction follows the loop's own batch index (Step.batch_idx)
    from types import SimpleNamespace

    import numpy as np

    from avpipe.training.loop import Step

    seen.clear()
    tr.data = SimpleNamespace(batch=lambda idx, device: b)
    for i, (epoch, batch_idx) in enumerate([(4, 1), (4, 2), (5, 0), (5, 1)]):
        tr.train_step(Step(np.arange(4), epoch, batch_idx, step=i + 1))
    assert seen == [True, False, False, True]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pseudo_label_forwards_mode(mode: str) -> None:
    tr = _toy_trainer(train={"pseudo_label_mode": mode})
    modes: list[bool] = []
    for net in (tr.anchor, *tr.refs.values()):
        net.register_forward_pre_hook(lambda m, _a: modes.append(m.training))
    tr.step(_toy_batch(), epoch=2)
    # anchor (no grad), audio ref, visual ref (trained), both refs (no grad), anchor (trained)
    assert modes == [mode == "train", True, True, mode == "train", mode == "train", True]
    assert all(net.training for net in (tr.anchor, *tr.refs.values()))
