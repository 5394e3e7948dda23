"""Networks of Bao et al., AAAI'23 (paper Eqs. 1-5, 9-17).

* :class:`CollaborativeEncoder`: audio-guided spatial attention (Eqs. 1-2), projection
  to d [REC], audio-guided visual and visual-guided audio cross-attention (Eqs. 3-5),
  4 heads, d = 512.  The paper's ``W^Q in R^{2d x T}`` is read as 2d x d.
  Departures, all switchable in :class:`EncoderConfig`: residual + LayerNorm around
  the cross-attention [REC]; ``spatial_attention="tanh"`` adds CMRAN's tanh.
* :class:`Annotator`: two FC layers -> softmax over C pseudo-classes (Eq. 11),
  hidden width 512 [REC].
* :class:`Localizer`: encoder + CMRAN-style audio-visual interaction, event relevance
  gamma = softmax_T (Eq. 14), class scores softmax_C (Eq. 15), MIL pooling y = s^T gamma
  (Eq. 16).

Shapes: B videos, T segments, P = H*W spatial positions, C_v visual channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from avpipe.methods.clcl.config import EncoderConfig


class SpatialAttention(nn.Module):
    """Audio-guided spatial attention: (B,T,P,C_v), (B,T,D_a) -> (B,T,C_v) (Eqs. 1-2)."""

    def __init__(self, visual_dim: int, audio_dim: int, d: int, variant: str):
        super().__init__()
        self.variant = variant
        self.fc_a = nn.Linear(audio_dim, d)
        self.fc_v = nn.Linear(visual_dim, d)
        self.w = nn.Linear(d, 1, bias=False)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if self.variant == "mean":
            return visual.mean(dim=2)
        h = torch.relu(self.fc_a(audio)).unsqueeze(2) * torch.relu(self.fc_v(visual))
        if self.variant == "tanh":
            h = torch.tanh(h)
        weights = torch.softmax(self.w(h).squeeze(-1), dim=2)  # (B, T, P)
        return torch.einsum("btp,btpc->btc", weights, visual)


class GuidedAttention(nn.Module):
    """Multi-head attention with Q, K from a query source and V from one modality (Eqs. 3-5).

    ``query``: (B, T, D_q) (2d for the guided form, d for self-attention);
    ``value``: (B, T, d); ``mask``: (B, T) bool, True = real segment.
    """

    def __init__(self, query_dim: int, d: int, heads: int, residual_norm: bool, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(query_dim, d)
        self.k = nn.Linear(query_dim, d)
        self.v = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d) if residual_norm else None

    def forward(self, query: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, d = value.shape
        h = self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(B, T, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(query)), split(self.k(query)), split(self.v(value))
        # scaled by sqrt(d) as Eq. 3 writes it (not sqrt(d / heads))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d)
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        out = (torch.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(B, T, d)
        if self.norm is None:
            return self.drop(out)
        return self.norm(value + self.drop(out))


class CollaborativeEncoder(nn.Module):
    """(visual (B,T,P,C_v), audio (B,T,D_a), mask) -> v_attn, a_attn, each (B, T, d)."""

    def __init__(self, visual_dim: int, audio_dim: int, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.spatial = SpatialAttention(visual_dim, audio_dim, d, cfg.spatial_attention)
        self.proj_a = nn.Linear(audio_dim, d)
        self.proj_v = nn.Linear(visual_dim, d)
        q_v = 2 * d if cfg.audio2visual else d
        q_a = 2 * d if cfg.visual2audio else d
        self.attn_v = GuidedAttention(q_v, d, cfg.heads, cfg.residual_norm, cfg.dropout)
        self.attn_a = GuidedAttention(q_a, d, cfg.heads, cfg.residual_norm, cfg.dropout)

    def forward(
        self, visual: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a_bar = torch.relu(self.proj_a(audio))
        v_bar = torch.relu(self.proj_v(self.spatial(visual, audio)))
        m = torch.cat([a_bar, v_bar], dim=-1)
        v_attn = self.attn_v(m if self.cfg.audio2visual else v_bar, v_bar, mask)
        a_attn = self.attn_a(m if self.cfg.visual2audio else a_bar, a_bar, mask)
        return v_attn, a_attn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) bool -> (B, D) mean over real segments."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def embed(
    v_attn: torch.Tensor, a_attn: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled, L2-normalised embeddings x^v, x^a (B, d) used by the memory banks (paper Eq. 6)."""
    return F.normalize(masked_mean(v_attn, mask), dim=1), F.normalize(
        masked_mean(a_attn, mask), dim=1
    )


def pooled_representation(
    v_attn: torch.Tensor, a_attn: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """f_i = sum_t gamma_it [a_attn_t ; v_attn_t] -> (B, 2d), the annotator input (paper Eq. 9).

    gamma (B, T) sums to 1.
    """
    return torch.einsum("bt,btd->bd", gamma, torch.cat([a_attn, v_attn], dim=-1))


def uniform_gamma(mask: torch.Tensor) -> torch.Tensor:
    """gamma_t = 1 / T_valid on real segments (first E-step)."""
    w = mask.float()
    return w / w.sum(1, keepdim=True).clamp_min(1.0)


class Annotator(nn.Module):
    """Phi: (B, 2d) -> (B, C) probabilities over pseudo-classes."""

    def __init__(self, in_dim: int, hidden: int, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(f), dim=-1)


class Localizer(nn.Module):
    """MIL localizer: returns gamma (B, T), segment class probs s (B, T, C), y (B, C)."""

    def __init__(self, encoder: CollaborativeEncoder, n_classes: int, heads: int, dropout: float):
        super().__init__()
        d = encoder.cfg.d_model
        self.encoder = encoder
        self.inter = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)
        self.w_gamma = nn.Linear(d, 1)
        self.w_cls = nn.Linear(d, n_classes)

    def forward(
        self, visual: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v_attn, a_attn = self.encoder(visual, audio, mask)
        g = v_attn * a_attn
        memory = torch.cat([a_attn, v_attn], dim=1)
        pad = ~torch.cat([mask, mask], dim=1)
        f_av = self.norm(g + self.drop(self.inter(g, memory, memory, key_padding_mask=pad)[0]))
        logits = self.w_gamma(f_av).squeeze(-1).masked_fill(~mask, float("-inf"))
        gamma = torch.softmax(logits, dim=1)
        s = torch.softmax(self.w_cls(f_av), dim=-1)
        y = torch.einsum("btc,bt->bc", s, gamma)
        return gamma, s, y
