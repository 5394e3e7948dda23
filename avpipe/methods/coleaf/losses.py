"""CoLeaF losses (Sardari et al., ECCV 2024, Eqs. 5-13; faeghehsardari/coleaf).

Facts from the paper (seed 002, equations lost) and faeghehsardari/coleaf
(``utils/eval_metrics.py``, ``main.py``), restated:

* ``asl``: asymmetric loss of the released Reference training (γ⁺ = γ⁻ = 1, negative
  clip 0.05, summed); the focusing weight carries no gradient
  (faeghehsardari/coleaf ``utils/eval_metrics.py``).
* ``smoothed_nce``: per-video segment NCE with soft targets (π_tt = 1 - s,
  π_tj = s / (T - 1)); ℓ_t = -log Σ_j π_tj softmax_j(q_t·k_j / τ) (CMPAE / CoLeaF
  code; CoLeaF Eq. 8), optionally weighted per video; generalised to per-video T with
  a key mask (the released code fixes T = 10).
* ``event_aware_weights``: the weight of Eq. 11 from the Reference pseudo-labels:
  per modality (code) ``w^a = N_ao/(N_ao+N_av)``, ``w^v = N_vo/(N_vo+N_av)``, or one
  weight (paper) ``(N_ao+N_vo)/(N_ao+N_vo+N_av)``; a zero denominator counts as 1.
* ``smkd_targets``: Anchor-derived modality-aware pseudo-labels of Eq. 12.
* ``cc_teacher`` / ``class_correlation_loss``: Eq. 13, ``M(p) = p pᵀ`` per video;
  the teacher is the Reference (paper) or the released confidence-gated mix (code),
  and the reduction is the released ``sum / C * B`` (an operator-precedence slip),
  ``sum / (C B)`` (avpipe's choice) or the paper's MSE (mean over B, C, C).
"""

from __future__ import annotations

from typing import Literal

import torch

from avpipe.methods.han.losses import bce

EPS_ASL = 1e-8


def asl(
    p: torch.Tensor,
    y: torch.Tensor,
    gamma_pos: float = 1.0,
    gamma_neg: float = 1.0,
    clip: float = 0.05,
) -> torch.Tensor:
    """Summed asymmetric loss of probabilities ``p`` against (soft) targets ``y``, same shape."""
    p_neg = (1.0 - p + clip).clamp(max=1.0) if clip > 0 else 1.0 - p
    loss = y * torch.log(p.clamp(min=EPS_ASL)) + (1.0 - y) * torch.log(p_neg.clamp(min=EPS_ASL))
    with torch.no_grad():
        pt = p * y + p_neg * (1.0 - y)
        focus = (1.0 - pt).pow(gamma_pos * y + gamma_neg * (1.0 - y))
    return -(loss * focus).sum()


def smoothed_nce(
    q: torch.Tensor,
    k: torch.Tensor,
    mask: torch.Tensor | None = None,
    tau: float = 0.2,
    smoothing: float = 0.1,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Segment-correspondence NCE.  ``q``, ``k`` (B,T,d) L2-normalised; query t's positive
    is key t of the same video, the other segments of that video are negatives.
    ``mask`` (B,T) True = real segment; ``weight`` (B,) multiplies each video's terms.
    Returns the mean of (weighted) ℓ_t over real segments."""
    B, T, _ = q.shape
    mask = torch.ones(B, T, dtype=torch.bool, device=q.device) if mask is None else mask
    sim = torch.einsum("btd,bsd->bts", q, k) / tau
    sim = sim.masked_fill(~mask[:, None, :], torch.finfo(sim.dtype).min)
    prob = torch.softmax(sim, dim=2)
    n_neg = (mask.sum(1) - 1).clamp(min=1).to(q.dtype)  # (B,)
    eye = torch.eye(T, dtype=q.dtype, device=q.device)[None]
    off = (smoothing / n_neg)[:, None, None] * (1.0 - eye) * mask[:, None, :]
    single = (mask.sum(1) == 1)[:, None, None]
    pi = torch.where(single, eye, (1.0 - smoothing) * eye + off)
    ell = -torch.log((pi * prob).sum(2).clamp(min=1e-12))  # (B,T)
    if weight is not None:
        ell = ell * weight[:, None]
    return ell[mask].mean()


def event_aware_weights(
    p_audio: torch.Tensor,
    p_visual: torch.Tensor,
    threshold: float = 0.5,
    mode: Literal["per_modality", "single", "none"] = "per_modality",
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video weights ``(w^a, w^v)`` (B,) from Reference video-level probabilities (B,C).

    ``labels`` (B,C), if given, restricts the pseudo-labels to the video's classes
    (one reading of the paper; the released code does not)."""
    ya, yv = (p_audio >= threshold).float(), (p_visual >= threshold).float()
    if labels is not None:
        ya, yv = ya * (labels > 0.5), yv * (labels > 0.5)
    n_ao, n_vo, n_av = (ya * (1 - yv)).sum(1), (yv * (1 - ya)).sum(1), (ya * yv).sum(1)

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return num / torch.where(den > 0, den, torch.ones_like(den))

    if mode == "none":
        one = torch.ones_like(n_ao)
        return one, one
    if mode == "single":
        w = ratio(n_ao + n_vo, n_ao + n_vo + n_av)
        return w, w
    return ratio(n_ao, n_ao + n_av), ratio(n_vo, n_vo + n_av)


def smkd_targets(
    p_audio: torch.Tensor,
    p_visual: torch.Tensor,
    t_audio: torch.Tensor,
    t_visual: torch.Tensor,
    thresholds: tuple[float, float] = (0.5, 0.6),
    mask_with_labels: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 12 targets ``ỹ^a = 1[p^a >= θ_a] ⊙ P_a``, ``ỹ^v = 1[p^v >= θ_v] ⊙ P_v`` (B,C)
    from the Anchor's modality probabilities and the video targets ``P_a``, ``P_v``."""
    ya, yv = (
        (p_audio >= thresholds[0]).to(p_audio.dtype),
        (p_visual >= thresholds[1]).to(p_visual.dtype),
    )
    if mask_with_labels:
        ya, yv = ya * t_audio, yv * t_visual
    return ya, yv


def cc_teacher(
    p_ref: torch.Tensor,
    p_anchor: torch.Tensor,
    targets: torch.Tensor,
    high: float,
    low: float,
    gated: bool = True,
) -> torch.Tensor:
    """Teacher video probabilities (B,C): ``G ⊙ p^R + (1 - G) ⊙ sg(p^A)`` with the gate
    ``G = 1[(p^R >= high) ∨ (p^R <= low)] ⊙ targets`` (code), or ``p^R`` (paper)."""
    p_ref = p_ref.detach()
    if not gated:
        return p_ref
    gate = ((p_ref >= high) | (p_ref <= low)).to(p_ref.dtype) * targets
    return gate * p_ref + (1.0 - gate) * p_anchor.detach()


def class_correlation_loss(
    p: torch.Tensor, teacher: torch.Tensor, reduction: Literal["code", "mean", "mse"] = "code"
) -> torch.Tensor:
    """Distance of the class-correlation matrices ``M(x) = x xᵀ`` (B,C,C) of the student
    ``p`` and the (detached) ``teacher``, both (B,C)."""
    B, C = p.shape
    m_s = p[:, :, None] * p[:, None, :]
    m_t = teacher.detach()[:, :, None] * teacher.detach()[:, None, :]
    total = (m_t - m_s).pow(2).sum()
    if reduction == "code":
        return total / C * B
    if reduction == "mean":
        return total / (C * B)
    return total / (B * C * C)


def jomold_denoise(
    p_audio: torch.Tensor,
    p_visual: torch.Tensor,
    t_audio: torch.Tensor,
    t_visual: torch.Tensor,
    ratio_audio: torch.Tensor,
    ratio_visual: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """JoMoLD-style modality label denoising of the released CoLeaF/CMPAE loops (``main.py``).

    ``p_*`` (B,C): Anchor modality probabilities (no cross-attention, no grad); ``t_*``
    (B,C): modality targets; ``ratio_*`` (C,): per-class noise ratios.  For class c with
    n = floor(r_c * #positives): a visual label is dropped when the sample is among the n
    positives with the smallest audio loss and among the n with the largest visual loss;
    an audio label symmetrically.  Returns new targets."""
    loss_a = bce(p_audio, t_audio, reduction="none")
    loss_v = bce(p_visual, t_visual, reduction="none")
    out_a, out_v = t_audio.clone(), t_visual.clone()
    for c in range(t_audio.shape[1]):
        for target, out, ratio, keep_small, drop_large in (
            (t_visual, out_v, ratio_visual, loss_a, loss_v),
            (t_audio, out_a, ratio_audio, loss_v, loss_a),
        ):
            pos = torch.nonzero(target[:, c] > 0.5).flatten()
            n = int(float(ratio[c]) * len(pos))
            if n == 0:
                continue
            confident_other = set(pos[torch.argsort(keep_small[pos, c])[:n]].tolist())
            unsure_own = set(pos[torch.argsort(drop_large[pos, c], descending=True)[:n]].tolist())
            for b in confident_other & unsure_own:
                out[b, c] = 0.0
    return out_a, out_v
