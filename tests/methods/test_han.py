"""HAN (avpipe.methods.han): MMIL pooling by hand, shared attention layer, padding, loss."""

from __future__ import annotations

import math

import pytest
import torch

from avpipe.methods.han.losses import han_loss
from avpipe.methods.han.model import HAN, MMILPool


def test_mmil_uniform_attention_is_a_mean() -> None:
    pool = MMILPool(d=3, n_classes=2)
    for fc in (pool.fc_time, pool.fc_mod):
        torch.nn.init.zeros_(fc.weight)
        torch.nn.init.zeros_(fc.bias)
    x = torch.randn(1, 4, 2, 3)
    out = pool(x)
    P = out["seg_prob"]
    assert torch.allclose(out["video_prob"], P.mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(out["audio_prob"], P[:, :, 0].mean(1), atol=1e-6)
    assert torch.allclose(out["visual_prob"], P[:, :, 1].mean(1), atol=1e-6)
    # masking the last segment: means over the first three only
    masked = pool(x, torch.tensor([[True, True, True, False]]))
    assert torch.allclose(masked["audio_prob"], P[:, :3, 0].mean(1), atol=1e-6)
    assert torch.allclose(masked["video_prob"], P[:, :3].mean(dim=(1, 2)), atol=1e-6)


def test_one_layer_shared_by_both_streams() -> None:
    model = HAN(5, 6, 4, n_classes=3, d=8, ffn=8).eval()
    assert len(model.layers) == 1
    calls = []
    model.layers[0].register_forward_hook(lambda *_: calls.append(1))
    model(torch.randn(2, 4, 5), torch.randn(2, 4, 2, 6), torch.randn(2, 4, 4))
    assert len(calls) == 2  # audio and visual pass through the same parameters


def test_padding_does_not_change_predictions() -> None:
    torch.manual_seed(0)
    model = HAN(5, 6, 4, n_classes=3, d=8, ffn=8).eval()
    a, f, m = torch.randn(1, 4, 5), torch.randn(1, 4, 2, 6), torch.randn(1, 4, 4)
    ref = model(a, f, m, torch.ones(1, 4, dtype=torch.bool))
    pad = model(
        torch.cat([a, torch.randn(1, 3, 5)], 1),
        torch.cat([f, torch.randn(1, 3, 2, 6)], 1),
        torch.cat([m, torch.randn(1, 3, 4)], 1),
        torch.tensor([[True] * 4 + [False] * 3]),
    )
    for k in ("video_prob", "audio_prob", "visual_prob"):
        assert torch.allclose(ref[k], pad[k], atol=1e-5), k
    assert torch.allclose(ref["seg_prob"], pad["seg_prob"][:, :4], atol=1e-5)


def test_han_loss_by_hand() -> None:
    out = {
        "video_prob": torch.tensor([[0.5]]),
        "audio_prob": torch.tensor([[0.8]]),
        "visual_prob": torch.tensor([[0.8]]),
    }
    y = torch.tensor([[1.0]])
    want = -math.log(0.5) - math.log(0.8) - (0.95 * math.log(0.8) + 0.05 * math.log(0.2))
    assert han_loss(out, y).item() == pytest.approx(want, rel=1e-6)
    assert han_loss(out, y, guided=False).item() == pytest.approx(-math.log(0.5), rel=1e-6)
