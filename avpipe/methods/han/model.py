"""HAN: hybrid attention network + MMIL pooling (Tian et al., ECCV 2020).

HAN paper Eqs. 1-4 as restated in the CoLeaF paper (facts read in YapengTian/AVVP-ECCV20
``nets/net_audiovisual.py``).  Shapes: B videos, T segments, C classes, d width.

* Tokens: ``a_t = FC(f^a_t)``; ``s_t = mean_k FC(f^2D_{t,k})`` over the k frames of a
  segment; ``m_t = FC(f^3D_t)``; ``v_t = FC([s_t; m_t])``.  HAN has no activation
  here (``activation: none``); CMPAE/CoLeaF-Anchor put ELU after each FC (``elu``).
* One hybrid attention layer, **shared by the audio and the visual stream**:
  ``x' = LN(x + Drop(SelfAtt(x)) + Drop(CrossAtt(x, other)))``, then an FFN with
  residual and LN (post-norm).  ``cross=False`` drops the cross term (CMPAE's "no CA").
* MMIL pooling on (B, T, 2, d): segment probabilities ``P = σ(FC_p(x))``, temporal
  and modality attention ``softmax_T(FC_t(x))``, ``softmax_m(FC_m(x))``; video-level
  ``p̄ = Σ_t Σ_m W^t W^m P``, modality-level ``p^m = Σ_t W^t[:, m] P[:, m]``.

Departure: padded segments (variable-length videos, e.g. UnAV-100) are masked out of
the attention keys and of the temporal softmax; with T fixed this changes nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Softmax over ``dim``; where ``mask`` (broadcastable, True = real) is False: weight 0."""
    if mask is None:
        return torch.softmax(logits, dim=dim)
    return torch.softmax(logits.masked_fill(~mask, torch.finfo(logits.dtype).min), dim=dim) * mask


class Embed(nn.Module):
    """LLP-recipe input tokens (B,T,d) from audio (B,T,Da), frames (B,T,k,Df) + motion (B,T,Dm)."""

    def __init__(
        self,
        dims_audio: int,
        dims_frames: int,
        dims_motion: int,
        d: int,
        activation: Literal["none", "elu"] = "none",
    ):
        super().__init__()
        self.fc_a = nn.Linear(dims_audio, d)
        self.fc_s = nn.Linear(dims_frames, d)
        self.fc_m = nn.Linear(dims_motion, d)
        self.fc_v = nn.Linear(2 * d, d)
        self.act: nn.Module = nn.ELU() if activation == "elu" else nn.Identity()

    def audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc_a(audio))

    def visual(self, frames: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        s = self.act(self.fc_s(frames)).mean(dim=2)
        m = self.act(self.fc_m(motion))
        return self.act(self.fc_v(torch.cat([s, m], dim=-1)))


class HybridAttention(nn.Module):
    """One post-norm self(+cross)-attention layer with FFN; 1 head, FFN width ``ffn``."""

    def __init__(self, d: int, heads: int = 1, ffn: int = 512, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d)
        )
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2, self.drop3 = (
            nn.Dropout(dropout),
            nn.Dropout(dropout),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, other: torch.Tensor | None = None, pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` (B,L,d) attends to itself and, if given, to ``other`` (B,L',d).
        ``pad`` (B,L) True = padding key (applies to both, so L' == L when given)."""
        h = x + self.drop1(self.self_attn(x, x, x, key_padding_mask=pad, need_weights=False)[0])
        if other is not None:
            h = h + self.drop2(
                self.cross_attn(x, other, other, key_padding_mask=pad, need_weights=False)[0]
            )
        h = self.norm1(h)
        return self.norm2(h + self.drop3(self.ffn(h)))


class MMILPool(nn.Module):
    """Multimodal multiple-instance pooling over time and modality (Eqs. 3-4)."""

    def __init__(self, d: int, n_classes: int):
        super().__init__()
        self.fc_prob = nn.Linear(d, n_classes)
        self.fc_time = nn.Linear(d, n_classes)
        self.fc_mod = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``x`` (B,T,2,d), modality 0 = audio, 1 = visual; ``mask`` (B,T) True = real segment.

        Returns ``seg_prob`` (B,T,2,C), ``video_prob`` (B,C), ``audio_prob``, ``visual_prob`` (B,C).
        """
        P = torch.sigmoid(self.fc_prob(x))
        m = None if mask is None else mask[:, :, None, None]
        w_t = masked_softmax(self.fc_time(x), m, dim=1)
        w_m = torch.softmax(self.fc_mod(x), dim=2)
        video = (w_t * w_m * P).sum(dim=(1, 2))
        per_mod = (w_t * P).sum(dim=1)
        return {
            "seg_prob": P,
            "video_prob": video,
            "audio_prob": per_mod[:, 0],
            "visual_prob": per_mod[:, 1],
        }


class HAN(nn.Module):
    """Embedding -> shared hybrid attention -> MMIL.  ``forward`` returns MMIL outputs
    plus the post-attention segment embeddings ``x_audio``, ``x_visual`` (B,T,d)."""

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
        layers: int = 1,
        activation: Literal["none", "elu"] = "none",
    ):
        super().__init__()
        self.embed = Embed(dims_audio, dims_frames, dims_motion, d, activation)
        self.layers = nn.ModuleList(
            [HybridAttention(d, heads, ffn, dropout) for _ in range(layers)]
        )
        self.pool = MMILPool(d, n_classes)

    def forward(
        self,
        audio: torch.Tensor,
        frames: torch.Tensor,
        motion: torch.Tensor,
        mask: torch.Tensor | None = None,
        cross: bool = True,
    ) -> dict[str, torch.Tensor]:
        a, v = self.embed.audio(audio), self.embed.visual(frames, motion)
        pad = None if mask is None else ~mask
        for layer in self.layers:
            # the same layer for both streams (as in YapengTian/AVVP-ECCV20, CMPAE, CoLeaF);
            # layers chain outputs
            a, v = layer(a, v if cross else None, pad), layer(v, a if cross else None, pad)
        out = self.pool(torch.stack([a, v], dim=2), mask)
        out["x_audio"], out["x_visual"] = a, v
        return out
