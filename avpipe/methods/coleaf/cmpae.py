"""CMPAE Anchor (Gao et al., CVPR 2023), the released CoLeaF's Anchor (its ``MMIL_Net``).

Facts read in MengyuanChen21/CVPR2023-CMPAE and faeghehsardari/coleaf
``nets/net_audiovisual.py`` (``MMIL_Net``), restated:

* HAN tokens with ELU; a global branch on the pre-attention tokens
  ``o_t = W_c2(LReLU(W_c1 a_t) + LReLU(W_c1 v_t))``, ``p^g = mean_t σ(o_t)``, its
  uncertainty ``u^g = C / Σ_c (exp(clip(mean_t o_t)/0.8) + 1)``;
* the shared HAN layer run with and without cross-attention,
  ``x = 0.8 x_ca + 0.2 x_sa`` (``cross=False``: ``x_sa`` alone);
* dropout 0.5 on the visual stream, evidential heads with a presence and an absence
  logit per class, temporal attention over the (T, 2, C, 2) logits; evidence
  ``e = exp(clip(L, -10, 10)/0.8)``, ``α = e + 1``, ``p = α⁺/(α⁺+α⁻)``, ``u = 2/(α⁺+α⁻)``;
* loss ``w_a BCE(p^a, P_a) + w_v BCE(p^v, P_v) + w_g BCE(p^g, y) + w_nce L_NCE(â, v̂)
  + w_mut L_mut`` (CoLeaF's released weights 2, 1, 2, 1, 1).

Matched to the released ``MutualLearningLoss`` (``mutual_loss.py``) and ``main.py``:
the mutual loss's uncertainty weights (u^g, and u^a/u^v through the max / mean terms)
carry gradient, only the teacher's probabilities are detached; its direction follows
``batch_idx % 2`` with ``batch_idx`` counted from 0 in every epoch (even: the modality
branches learn from p^g; odd: p^g learns from them); the v2a / a2v and W_c1 branches use
LeakyReLU(0.2).  Departure kept as a switch: ``detach_uncertainty`` (an earlier avpipe
choice, off by default) stops the gradient through the uncertainty weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avpipe.methods.coleaf.losses import smoothed_nce
from avpipe.methods.han.losses import bce
from avpipe.methods.han.model import Embed, HybridAttention, masked_softmax

CLIP, TEMP = 10.0, 0.8
SLOPE = 0.2  # LeakyReLU slope of W_c1, v2a and a2v in the released MMIL_Net


def evidence(logits: torch.Tensor) -> torch.Tensor:
    """``exp(clip(L, -10, 10) / 0.8)``."""
    return torch.exp(logits.clamp(-CLIP, CLIP) / TEMP)


def evidential_prob(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Presence probability and uncertainty from (..., 2) presence/absence logits."""
    alpha = evidence(logits) + 1.0
    total = alpha.sum(-1)
    return alpha[..., 0] / total, 2.0 / total


class CMPAE(nn.Module):
    def __init__(
        self,
        dims_audio: int,
        dims_frames: int,
        dims_motion: int,
        n_classes: int,
        d: int = 512,
        heads: int = 1,
        ffn: int = 512,
        dropout: float = 0.1,
        cross_mix: float = 0.8,
    ):
        super().__init__()
        self.n_classes, self.cross_mix = n_classes, cross_mix
        self.embed = Embed(dims_audio, dims_frames, dims_motion, d, "elu")
        self.w_c1, self.w_c2 = nn.Linear(d, d), nn.Linear(d, n_classes)
        self.layer = HybridAttention(d, heads, ffn, dropout)
        self.drop_v, self.drop_mix = nn.Dropout(0.5), nn.Dropout(0.2)
        self.fc_pos, self.fc_neg = nn.Linear(d, n_classes), nn.Linear(d, n_classes)
        self.w_v2a, self.w_a2v = nn.Linear(d, d), nn.Linear(d, d)
        self.fc_att = nn.Linear(d, 2 * n_classes)

    def forward(
        self,
        audio: torch.Tensor,
        frames: torch.Tensor,
        motion: torch.Tensor,
        mask: torch.Tensor | None = None,
        cross: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Same outputs as HAN (``video_prob`` = the global branch p^g) plus
        ``audio_unc``, ``visual_unc``, ``global_unc`` for the mutual loss."""
        a, v = self.embed.audio(audio), self.embed.visual(frames, motion)
        B, T, _ = a.shape
        mask = torch.ones(B, T, dtype=torch.bool, device=a.device) if mask is None else mask
        o = self.w_c2(F.leaky_relu(self.w_c1(a), SLOPE) + F.leaky_relu(self.w_c1(v), SLOPE))
        m = mask[:, :, None].to(o.dtype)
        p_g = (torch.sigmoid(o) * m).sum(1) / m.sum(1)
        o_mean = (o * m).sum(1) / m.sum(1)
        u_g = self.n_classes / (evidence(o_mean) + 1.0).sum(-1)
        pad = ~mask
        xa, xv = self.layer(a, None, pad), self.layer(v, None, pad)
        if cross:
            w = self.cross_mix
            xa, xv = (
                w * self.layer(a, v, pad) + (1 - w) * xa,
                w * self.layer(v, a, pad) + (1 - w) * xv,
            )
        out = self.heads(xa, xv, mask)
        out.update(video_prob=p_g, global_unc=u_g, x_audio=xa, x_visual=xv)
        return out

    def heads(
        self, xa: torch.Tensor, xv: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Evidential heads + temporal attention pooling on (B,T,d) streams."""
        xv = self.drop_v(xv)
        mix = xa + xv
        neg_a = self.fc_neg(xa + F.leaky_relu(self.drop_mix(self.w_v2a(mix)), SLOPE))
        neg_v = self.fc_neg(xv + F.leaky_relu(self.drop_mix(self.w_a2v(mix)), SLOPE))
        pos = torch.stack([self.fc_pos(xa), self.fc_pos(xv)], dim=2)  # (B,T,2,C)
        logits = torch.stack([pos, torch.stack([neg_a, neg_v], dim=2)], dim=-1)  # (B,T,2,C,2)
        x = torch.stack([xa, xv], dim=2)
        att = self.fc_att(x).view(*logits.shape)
        att = masked_softmax(att, mask[:, :, None, None, None], dim=1)
        seg_prob, _ = evidential_prob(logits)
        mod_prob, mod_unc = evidential_prob((att * logits).sum(1))  # (B,2,C)
        return {
            "seg_prob": seg_prob,
            "audio_prob": mod_prob[:, 0],
            "visual_prob": mod_prob[:, 1],
            "audio_unc": mod_unc[:, 0],
            "visual_unc": mod_unc[:, 1],
        }


def mutual_loss(
    out: dict[str, torch.Tensor],
    y: torch.Tensor,
    global_student: bool,
    detach_uncertainty: bool = False,
) -> torch.Tensor:
    """CMPAE's mutual learning between the global branch and the modality branches.

    ``global_student`` (odd ``batch_idx``): p^g learns from sg(max / mean of p^a, p^v),
    weighted by u^g; otherwise (even) the modality branches learn from sg(p^g), weighted
    by 1 - u^g.  The uncertainty weights keep their gradient unless ``detach_uncertainty``.
    Mean over B x C."""
    pa, pv, pg = out["audio_prob"], out["visual_prob"], out["video_prob"]
    ua, uv, ug = out["audio_unc"], out["visual_unc"], out["global_unc"]
    if detach_uncertainty:
        ua, uv, ug = ua.detach(), uv.detach(), ug.detach()
    ug = ug.clamp(min=0.9)[:, None]
    p_max = torch.maximum(pa, pv)
    u_max = torch.where(pa >= pv, ua, uv)
    p_mean, u_mean = (pa + pv) / 2, (ua + uv) / 2
    if global_student:
        w = ug
        pos = (pg - p_max.detach()).pow(2)
        neg = (pg - p_mean.detach()).pow(2)
    else:
        w = 1 - ug
        pos = (pg.detach() - p_max).pow(2)
        neg = (pg.detach() - p_mean).pow(2)
    return (w * ((1 - u_max) * pos * y + (1 - u_mean) * neg * (1 - y))).mean()


def cmpae_loss(
    out: dict[str, torch.Tensor],
    y: torch.Tensor,
    targets: tuple[torch.Tensor, torch.Tensor],
    mask: torch.Tensor,
    weights: tuple[float, float, float, float, float],
    global_student: bool,
    detach_uncertainty: bool = False,
) -> torch.Tensor:
    """``weights`` = (w_a, w_v, w_g, w_nce, w_mut); ``targets`` = (P_a, P_v)."""
    w_a, w_v, w_g, w_nce, w_mut = weights
    loss = w_a * bce(out["audio_prob"], targets[0]) + w_v * bce(out["visual_prob"], targets[1])
    loss = loss + w_g * bce(out["video_prob"], y)
    if w_nce:
        qa, kv = F.normalize(out["x_audio"], dim=-1), F.normalize(out["x_visual"], dim=-1)
        loss = loss + w_nce * smoothed_nce(qa, kv, mask)
    if w_mut:
        loss = loss + w_mut * mutual_loss(out, y, global_student, detach_uncertainty)
    return loss
