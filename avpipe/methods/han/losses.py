"""HAN's weakly supervised objective (YapengTian/AVVP-ECCV20 ``main_avvp.py``).

``L = BCE(p̄, y) + BCE(p^a, y) + BCE(p^v, (1-ε) y + ε/2)``: video-level MIL loss,
guided learning of the modality-level predictions, label smoothing ε = 0.1 on the
visual target.  Probabilities are clamped to [1e-7, 1 - 1e-7] as in the reference.
"""

from __future__ import annotations

import torch

EPS = 1e-7


def bce(p: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of probabilities ``p`` (clamped) against targets ``y``, same shape."""
    p = p.clamp(EPS, 1.0 - EPS)
    loss = -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))
    return loss.mean() if reduction == "mean" else loss


def smooth(y: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing towards 0.5: ``(1 - ε) y + ε / 2`` (ε = 0.1: 0.9y + 0.05)."""
    return (1.0 - epsilon) * y + epsilon / 2.0


def han_loss(
    out: dict[str, torch.Tensor],
    y: torch.Tensor,
    visual_smoothing: float = 0.1,
    guided: bool = True,
    targets: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``out``: HAN outputs (``video_prob``, ``audio_prob``, ``visual_prob`` (B,C)); ``y`` (B,C).

    ``targets`` replaces the modality targets ``(y, smooth(y))``, e.g. by denoised ones."""
    loss = bce(out["video_prob"], y)
    if guided:
        t_audio, t_visual = targets if targets is not None else (y, smooth(y, visual_smoothing))
        loss = loss + bce(out["audio_prob"], t_audio) + bce(out["visual_prob"], t_visual)
    return loss
