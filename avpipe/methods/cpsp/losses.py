"""PSP / CPSP objectives (jasongief/CPSP ``cpsp_avel/losses.py``), all float32, batch-first.

* :func:`full_classification`: BCE on the event gate + CE on the video category (CPSP);
  :func:`psp_segment_ce`: per-segment C+1 cross-entropy (original PSP fully).
* :func:`weak_classification`: MultiLabelSoftMargin on the softmax video prediction
  (the sigmoid on top of the softmax is kept, as in the reference code).
* :func:`avpsp_loss`: pair level, MSE between normalised AV cosines and the normalised
  foreground indicator (PSP's AVPS loss).
* :func:`spsa_loss`: segment level, event vs background segments of one video.  The
  ``intended`` form is the InfoNCE the CPSP README describes; ``released_noop``
  reproduces the released function, which is a constant with exactly zero gradient
  (its negative mask sums over the same axis as the positives): kept so that runs
  can match the released numbers.
* :func:`vpsa_loss`: video level, batch-hard triplet over mean-of-normalised features.
* :func:`ss_infonce`: SSPSP's label-free audio->visual InfoNCE over all segments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def full_classification(
    event_logit: torch.Tensor,
    class_logit: torch.Tensor,
    fg: torch.Tensor,
    video_class: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """event_logit (B, T); class_logit (B, C); fg (B, T) {0,1}; video_class (B,) int, -1 = no
    event (no category term); mask (B, T) bool valid segments."""
    bce = F.binary_cross_entropy_with_logits(
        event_logit, fg.to(event_logit.dtype), reduction="none"
    )
    loss = _masked_mean(bce, mask)
    has = video_class >= 0
    if has.any():
        loss = loss + F.cross_entropy(class_logit[has], video_class[has])
    return loss


def psp_segment_ce(
    segment_logit: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """segment_logit (B, T, C+1); labels (B, T) int in [0, C] (background = C)."""
    ce = F.cross_entropy(segment_logit.flatten(0, 1), labels.flatten(), reduction="none")
    return _masked_mean(ce, mask.flatten())


def weak_classification(video_prob: torch.Tensor, video_label: torch.Tensor) -> torch.Tensor:
    """MultiLabelSoftMargin(p, y) = mean_c -[y log s(p) + (1 - y) log(1 - s(p))]."""
    return F.multilabel_soft_margin_loss(video_prob, video_label.to(video_prob.dtype))


def avpsp_loss(pair_sim: torch.Tensor, fg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pair_sim (B, T) = cos(v_hat_t, a_hat_t); fg (B, T) {0,1}.

    ``c_hat = relu(c) / (sum relu(c) + 1e-8)``, ``g = fg / (sum fg + 1e-6)``, MSE mean over B*T.
    """
    m = mask.to(pair_sim.dtype)
    c = torch.relu(pair_sim) * m
    c_hat = c / (c.sum(1, keepdim=True) + 1e-8)
    g = fg.to(pair_sim.dtype) * m
    g = g / (g.sum(1, keepdim=True) + 1e-6)
    return _masked_mean((c_hat - g) ** 2, mask)


def spsa_loss(
    fused: torch.Tensor,
    fg: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 0.6,
    impl: str = "intended",
) -> torch.Tensor:
    """Segment-level contrast within each video; fused (B, T, d), fg (B, T) {0,1}.

    intended: for event segment i, ``l_i = -log(P_i / (P_i + N_i))`` with
    ``P_i = sum_{j in E} exp(S_ij / tau)`` (j = i included) and ``N_i`` the *mean* of
    ``exp(S_ij / tau)`` over background segments j; mean over i in E, then over videos
    with at least one event segment.  S = cosine similarities.
    released_noop: the released masks (positives ``e_i e_j``, negatives ``e_i (1 - e_j)``)
    both summed over i, so each column j holds only positives or only negatives:
    ``sum_j -log(ratio_j + 1e-12) / |E|`` = |G| * 27.63 / |E| per video, zero gradient.
    """
    f = F.normalize(fused, dim=-1)
    expo = torch.exp(f @ f.transpose(1, 2) / temperature)  # (B, T, T)
    e = (fg.bool() & mask).to(fused.dtype)
    b = ((~fg.bool()) & mask).to(fused.dtype)
    n_e = e.sum(1)
    if impl == "intended":
        # sum over event j; + 1 on rows outside E (masked out below), whose sum is 0 in a
        # background-only video: log(0) there would send NaN through the mask's gradient
        pos = (expo * e.unsqueeze(1)).sum(-1) + (1.0 - e)  # (B, T)
        neg = (expo * b.unsqueeze(1)).sum(-1) / b.sum(1, keepdim=True).clamp_min(1.0)
        per_seg = -torch.log(pos / (pos + neg))
        per_video = (per_seg * e).sum(1) / n_e.clamp_min(1.0)
    elif impl == "released_noop":
        pos_mask = e.unsqueeze(2) * e.unsqueeze(1)  # [i, j] = e_i e_j
        neg_mask = e.unsqueeze(2) * (1 - e).unsqueeze(1) * mask.unsqueeze(1).to(fused.dtype)
        pos = (expo * pos_mask).sum(1)  # summed over i: (B, T) per column j
        neg = (expo * neg_mask).sum(1)
        ratio = pos / (pos + neg + 1e-12 * (pos + neg == 0))
        per_video = (-torch.log(ratio + 1e-12) * mask).sum(1) / n_e.clamp_min(1.0)
    else:
        raise ValueError(f"spsa impl must be 'intended' or 'released_noop', got {impl!r}")
    has = n_e > 0
    if not has.any():
        return fused.sum() * 0.0
    return per_video[has].mean()


def vpsa_loss(
    fused: torch.Tensor,
    video_class: torch.Tensor,
    mask: torch.Tensor,
    margin: float,
    negatives: int,
) -> torch.Tensor:
    """Batch-hard triplet on ``h_b = mean_t norm(f_bt)`` (B, d), classes ``video_class`` (B,).

    ``d+_i = max_{y_j = y_i} D_ij`` (j = i included), ``d-_i`` = mean of the ``negatives``
    smallest D_ij over y_j != y_i (missing negatives enter as 1e12, as released),
    ``L = mean_i relu(d+_i - d-_i + margin)``.  Videos with class -1 are left out.
    """
    keep = video_class >= 0
    f = F.normalize(fused, dim=-1) * mask.unsqueeze(-1).to(fused.dtype)
    h = f.sum(1) / mask.sum(1, keepdim=True).clamp_min(1).to(fused.dtype)
    h, y = h[keep], video_class[keep]
    if len(y) < 2:
        return fused.sum() * 0.0
    sq = (h * h).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * h @ h.T).clamp_min(1e-12).sqrt()
    same = y[:, None] == y[None, :]
    d_pos = torch.where(same, dist, torch.zeros_like(dist)).max(1).values
    neg = torch.where(same, torch.full_like(dist, 1e12), dist)
    k = min(negatives, len(y))
    d_neg = neg.topk(k, dim=1, largest=False).values.mean(1)
    return torch.relu(d_pos - d_neg + margin).mean()


def ss_infonce(
    a_hat: torch.Tensor, v_hat: torch.Tensor, mask: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """``-1/N sum_n log softmax_m(a_n . v_m / tau)[n]`` over the N valid segments of the batch."""
    a = F.normalize(a_hat[mask], dim=-1)
    v = F.normalize(v_hat[mask], dim=-1)
    logits = a @ v.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))
