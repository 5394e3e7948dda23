"""PSP backbone and the PSP / CPSP heads (jasongief/CPSP ``model/psp_family.py``).

Implements, following the reference code's structure (jasongief/PSP_CVPR_2021 and
jasongief/CPSP ``cpsp_avel``, read for facts only):

* audio projection ``a' = FC(FC(a))`` (no bias, no activation);
* audio-guided visual attention over the H*W positions of the map (AVGA of AVEL, with
  its quirk that the audio term is indexed by spatial position);
* visual projection ``v' = FC(FC(v_att))``, one Bi-LSTM per modality;
* the AV-PSP module: all-pair similarity, row normalisation, pruning below ``tau``,
  re-normalisation, propagation with residual, one LayerNorm shared by both modalities;
* heads: ``cpsp`` (event gate per segment + category logits of the mean fused feature;
  weak: ``p = softmax(max_t sigmoid(e_t) z)``) or ``psp`` (the original per-segment C+1
  classifier; weak: temporally weighted segment scores).

Departures: float32 instead of the reference's float64 (jasongief/CPSP calls
``model.double()``); the number of positions (49 for 7x7) and every input width come
from the feature stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from avpipe.methods.cpsp.config import ModelConfig


def _linear(i: int, o: int, bias: bool = False) -> nn.Linear:
    layer = nn.Linear(i, o, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class AudioGuidedAttention(nn.Module):
    """``z_k = w_h^T tanh(W_v h_{v,k} + g_k)``, ``g = W_g h_a``; ``alpha = softmax_k(z)``.

    visual (B, T, P, C_v), audio (B, T, E) -> attended visual (B, T, C_v).
    """

    def __init__(self, visual_dim: int, audio_dim: int, positions: int, hidden: int):
        super().__init__()
        self.v_in = _linear(visual_dim, hidden, bias=True)
        self.a_in = _linear(audio_dim, hidden, bias=True)
        self.w_v = _linear(hidden, positions)
        self.w_g = _linear(hidden, positions)
        self.w_h = _linear(positions, 1)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        h_v = torch.relu(self.v_in(visual))  # (B, T, P, hidden)
        h_a = torch.relu(self.a_in(audio))  # (B, T, hidden)
        g = self.w_g(h_a)  # (B, T, P): one scalar per spatial position
        z = self.w_h(torch.tanh(self.w_v(h_v) + g.unsqueeze(-1))).squeeze(-1)  # (B, T, P)
        alpha = torch.softmax(z, dim=-1)
        return torch.einsum("btp,btpc->btc", alpha, visual)


def propagation_weights(sim: torch.Tensor, threshold: float) -> torch.Tensor:
    """Row-normalise ``sim`` (B, T, T) >= 0, zero entries <= ``threshold``, re-normalise."""
    beta = sim / (sim.sum(-1, keepdim=True) + 1e-8)
    gamma = beta * (beta > threshold).to(beta.dtype)
    return gamma / (gamma.sum(-1, keepdim=True) + 1e-8)


class PositiveSamplePropagation(nn.Module):
    """AV-PSP (jasongief/CPSP ``psp_family.py``): v^l, a^l (B, T, d) -> v_hat, a_hat (B, T, d)."""

    def __init__(self, dim: int, threshold: float, dropout: float):
        super().__init__()
        self.v1, self.v2, self.a1, self.a2 = (_linear(dim, dim) for _ in range(4))
        self.v_out, self.a_out = _linear(dim, dim), _linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=1e-6)  # shared by both modalities, as released
        self.threshold = threshold
        self.scale = 1.0 / math.sqrt(dim)

    def forward(
        self, v: torch.Tensor, a: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mask (B, T) bool: padded segments neither send nor receive propagation."""
        v1, v2 = self.drop(torch.relu(self.v1(v))), self.drop(torch.relu(self.v2(v)))
        a1, a2 = self.drop(torch.relu(self.a1(a))), self.drop(torch.relu(self.a2(a)))
        beta_va = torch.relu(v2 @ a1.transpose(1, 2) * self.scale)  # rows: visual segments
        beta_va = beta_va * (mask.unsqueeze(2) & mask.unsqueeze(1)).to(beta_va.dtype)
        g_va = propagation_weights(beta_va, self.threshold)
        g_av = propagation_weights(beta_va.transpose(1, 2), self.threshold)
        v_p = v + g_va @ a2
        a_p = a + g_av @ v1
        v_hat = self.norm(self.drop(torch.relu(self.v_out(v_p))))
        a_hat = self.norm(self.drop(torch.relu(self.a_out(a_p))))
        return v_hat, a_hat


@dataclass
class Output:
    """Everything the losses and the predictor need.

    fused (B, T, d); v_hat, a_hat (B, T, d); pair_sim (B, T) = cos(v_hat_t, a_hat_t);
    cpsp head: event_logit (B, T), class_logit (B, C or C+1 with a background column),
    video_prob (B, C or C+1) (weak only);
    psp head: segment_logit (B, T, C+1), video_prob (B, C+1) (weak only).
    """

    fused: torch.Tensor
    v_hat: torch.Tensor
    a_hat: torch.Tensor
    pair_sim: torch.Tensor
    event_logit: torch.Tensor | None = None
    class_logit: torch.Tensor | None = None
    segment_logit: torch.Tensor | None = None
    video_prob: torch.Tensor | None = None


class PSPNet(nn.Module):
    """visual (B, T, P, C_v), audio (B, T, D_a) -> :class:`Output` for ``n_classes`` events."""

    def __init__(
        self,
        visual_dim: int,
        audio_dim: int,
        positions: int,
        n_classes: int,
        cfg: ModelConfig,
        setting: str,
        head: str,
        threshold: float,
        background_column: bool = False,
    ):
        """background_column: the cpsp head's category logits score C+1 classes, the last
        one background (weak labels with a background column, CMRAN weak)."""
        super().__init__()
        if setting not in ("full", "weak") or head not in ("cpsp", "psp"):
            raise ValueError(
                f"setting {setting!r} / head {head!r}: expected full|weak and cpsp|psp"
            )
        self.setting, self.head, self.n_classes = setting, head, n_classes
        self.audio_proj = nn.Sequential(
            _linear(audio_dim, cfg.audio_hidden), _linear(cfg.audio_hidden, cfg.embed)
        )
        self.attention = AudioGuidedAttention(
            visual_dim, cfg.embed, positions, cfg.attention_hidden
        )
        self.visual_proj = nn.Sequential(
            _linear(visual_dim, cfg.visual_hidden), _linear(cfg.visual_hidden, cfg.embed)
        )
        self.lstm_a = nn.LSTM(cfg.embed, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.lstm_v = nn.LSTM(cfg.embed, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        d = 2 * cfg.lstm_hidden
        self.psp = PositiveSamplePropagation(d, threshold, cfg.dropout)
        if head == "cpsp":
            self.event = nn.Linear(d, 1)
            self.category = nn.Linear(d, n_classes + int(background_column))
        else:
            self.segment = nn.Sequential(
                _linear(d, cfg.segment_hidden),
                nn.ReLU(),
                _linear(cfg.segment_hidden, n_classes + 1),
            )
            if setting == "weak":
                self.temporal = nn.Linear(n_classes + 1, 1)

    def _lstm(self, lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if bool(mask.all()):
            return lstm(x)[0]
        # shorter videos: the backward direction must start at the last real segment
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def forward(
        self, visual: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Output:
        """visual (B, T, P, C_v), audio (B, T, D_a), mask (B, T) bool (None = all valid)."""
        if mask is None:
            mask = torch.ones(audio.shape[:2], dtype=torch.bool, device=audio.device)
        a = self.audio_proj(audio)
        v = self.visual_proj(self.attention(visual, a))
        v_hat, a_hat = self.psp(
            self._lstm(self.lstm_v, v, mask), self._lstm(self.lstm_a, a, mask), mask
        )
        fused = 0.5 * (v_hat + a_hat)
        out = Output(fused, v_hat, a_hat, nn.functional.cosine_similarity(v_hat, a_hat, dim=-1))
        m = mask.unsqueeze(-1).to(fused.dtype)
        n_valid = m.sum(1).clamp_min(1.0)
        if self.head == "cpsp":
            out.event_logit = self.event(fused).squeeze(-1)
            out.class_logit = self.category((fused * m).sum(1) / n_valid)
            if self.setting == "weak":
                q = torch.sigmoid(out.event_logit).unsqueeze(-1) * out.class_logit.unsqueeze(1)
                q = q.masked_fill(~mask.unsqueeze(-1), float("-inf"))
                out.video_prob = torch.softmax(q.max(1).values, dim=-1)
        else:
            out.segment_logit = self.segment(fused)
            if self.setting == "weak":
                w = torch.sigmoid(torch.relu(self.temporal(out.segment_logit)))
                pooled = (w * out.segment_logit * m).sum(1) / n_valid
                out.video_prob = torch.softmax(pooled, dim=-1)
        return out


def predict_segments(out: Output, n_classes: int) -> torch.Tensor:
    """Label per segment (B, T) int64, background = ``n_classes`` (jasongief/CPSP inference;
    with a background column, a video whose category is background is background throughout,
    as in FloretCat/CMRAN's weak evaluation)."""
    if out.event_logit is not None:
        cls = out.class_logit.argmax(-1, keepdim=True).expand_as(out.event_logit)
        bg = torch.full_like(cls, n_classes)
        return torch.where(torch.sigmoid(out.event_logit) > 0.5, cls, bg)
    # original PSP: per-segment argmax (weak: the temporal weight w_t > 0 does not move it)
    return out.segment_logit.argmax(-1)
