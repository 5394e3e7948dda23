"""CoLeaF's Reference branch (paper Eqs. 5-7), one network per modality.

Reference code: faeghehsardari/coleaf ``nets/net_audiovisual.py``.

Unimodal tokens (no activation), C learnable class tokens prepended (Eq. 5; zero
initialised as in the released code), one self-attention layer of HAN's type
without the cross term over the C + T tokens (Eq. 6), then on the T segment outputs
``P_t = σ(FC(Drop(r_t)))``, ``w_t = softmax_T(FC(r_t))``, ``p = Σ_t w_t P_t`` (Eq. 7).
Class-token head: ``c_c = σ(mean_d k_c)``.  The released code computes the audio
w_t on the un-dropped r_t and the visual one on the dropped r_t
(``drop_before_attention``).  Used in training only; inference is the Anchor's.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from avpipe.methods.han.model import Embed, HybridAttention, masked_softmax


class ReferenceNet(nn.Module):
    def __init__(
        self,
        modality: Literal["audio", "visual"],
        dims_audio: int,
        dims_frames: int,
        dims_motion: int,
        n_classes: int,
        d: int = 512,
        heads: int = 1,
        ffn: int = 512,
        dropout: float = 0.1,
        head_dropout: float = 0.5,
        class_tokens: bool = True,
        drop_before_attention: bool | None = None,
    ):
        super().__init__()
        self.modality = modality
        self.embed = Embed(dims_audio, dims_frames, dims_motion, d, "none")
        self.tokens = nn.Parameter(torch.zeros(n_classes, d)) if class_tokens else None
        self.layer = HybridAttention(d, heads, ffn, dropout)
        self.drop = nn.Dropout(head_dropout)
        self.fc_prob = nn.Linear(d, n_classes)
        self.fc_time = nn.Linear(d, n_classes)
        self.drop_before_attention = (
            modality == "visual" if drop_before_attention is None else drop_before_attention
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch``: audio (B,T,Da) or frames (B,T,k,Df) + motion (B,T,Dm); mask (B,T).

        Returns ``seg_prob`` (B,T,C), ``video_prob`` (B,C), ``class_prob`` (B,C) (absent
        without class tokens) and ``embedding`` (B,T,d), L2-normalised r_t."""
        x = (
            self.embed.audio(batch["audio"])
            if self.modality == "audio"
            else self.embed.visual(batch["frames"], batch["motion"])
        )
        mask = batch["mask"]
        B, T, _ = x.shape
        pad = ~mask
        if self.tokens is not None:
            C = self.tokens.shape[0]
            x = torch.cat([self.tokens[None].expand(B, -1, -1), x], dim=1)
            pad = torch.cat([torch.zeros(B, C, dtype=torch.bool, device=x.device), pad], dim=1)
        h = self.layer(x, None, pad)
        r = h[:, -T:]
        dropped = self.drop(r)
        seg = torch.sigmoid(self.fc_prob(dropped))
        w = masked_softmax(
            self.fc_time(dropped if self.drop_before_attention else r), mask[:, :, None], dim=1
        )
        out = {"seg_prob": seg, "video_prob": (w * seg).sum(1), "embedding": F.normalize(r, dim=-1)}
        if self.tokens is not None:
            out["class_prob"] = torch.sigmoid(h[:, : self.tokens.shape[0]].mean(-1))
        return out
