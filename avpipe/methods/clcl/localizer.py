"""Stage C of CLCL: the MIL localizer (M-step) and the E-step representation (paper Eqs. 14-17).

* :func:`representations`: ``f_i = sum_t gamma_it [a_attn_t; v_attn_t]`` from an encoder
  with uniform gamma (round 1) or with round k-1's localizer's gamma; the pooled
  features are the stage-A encoder's by default (``em.estep_features``).
* :func:`train_localizer`: Adam (lr 5e-4, wd 5e-4), video-level BCE between the MIL
  pooled scores ``y = s^T gamma`` and the pseudo-labels (hard one-hot by default [REC]),
  in :mod:`avpipe.training.loop` (no validation: no labels to select with).
* :func:`orient_gamma` [departure]: MIL pooling does not identify whether gamma selects
  the events or the background once cross-modal attention has spread class evidence
  over all segments; gamma is reversed when its reverse pools more separable inputs
  (on the synthetic toy gamma pointed at the background in ~1 of 4 seeds otherwise).
* :func:`foreground`: gamma is a softmax over time, so a rule decides foreground
  (the paper gives none): ``gamma_t >= 1/T`` [REC] or ``gamma_t / max gamma >= threshold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from avpipe.methods.clcl.config import EMConfig
from avpipe.methods.clcl.data import VideoFeatures
from avpipe.methods.clcl.losses import mil_bce
from avpipe.methods.clcl.model import (
    CollaborativeEncoder,
    Localizer,
    pooled_representation,
    uniform_gamma,
)
from avpipe.training import loop
from avpipe.training.epochs import History, ordered_batches, seed_everything

log = logging.getLogger(__name__)


@dataclass
class Inference:
    """gamma (N, T) float32; scores s (N, T, C); y (N, C); mask (N, T) bool."""

    gamma: np.ndarray
    segment_scores: np.ndarray
    video_scores: np.ndarray
    mask: np.ndarray


@torch.no_grad()
def representations(
    encoder: CollaborativeEncoder,
    features: VideoFeatures,
    batch_size: int,
    device: torch.device,
    localizer: Localizer | None = None,
) -> torch.Tensor:
    """f (N, 2d) on CPU: ``encoder``'s [a_attn; v_attn] pooled over time with the
    localizer's gamma, or with uniform gamma when there is none (first E-step)."""
    encoder.eval()
    if localizer is not None:
        localizer.eval()
    out = []
    for _, b in features.batches(ordered_batches(len(features), batch_size), device):
        v_attn, a_attn = encoder(b.visual, b.audio, b.mask)
        if localizer is None:
            gamma = uniform_gamma(b.mask)
        else:
            gamma = localizer(b.visual, b.audio, b.mask)[0]
        out.append(pooled_representation(v_attn, a_attn, gamma).cpu())
    return torch.cat(out)


def targets_from(z: np.ndarray, kind: str) -> torch.Tensor:
    """Pseudo-label targets (N, C): one-hot argmax (hard) or the distribution (soft)."""
    if kind == "soft":
        return torch.from_numpy(np.asarray(z, np.float32))
    hard = np.zeros_like(z, dtype=np.float32)
    hard[np.arange(len(z)), z.argmax(1)] = 1.0
    return torch.from_numpy(hard)


class LocalizerTrainer(loop.Trainer):
    """Video-level MIL BCE of the localizer against fixed pseudo-label targets (N, C)."""

    def __init__(
        self,
        model: Localizer,
        features: VideoFeatures,
        target: torch.Tensor,
        lc: loop.LoopConfig,
        device: torch.device,
    ):
        self.model, self.features, self.target, self.device = model, features, target, device
        self.opt = loop.Optimisers({"localizer": model.parameters()}, lc, len(features))

    def batch_loss(self, step: loop.Step) -> tuple[torch.Tensor, dict[str, float]]:
        b = step.batch
        _, _, y = self.model(b.visual, b.audio, b.mask)
        return mil_bce(y, self.target[torch.from_numpy(step.idx).to(self.device)]), {}


def train_localizer(
    model: Localizer,
    features: VideoFeatures,
    z: np.ndarray,
    cfg: EMConfig,
    seed: int,
    device: torch.device,
) -> History:
    """M-step: fit ``model`` in place to pseudo-labels ``z`` (N, C)."""
    gen = seed_everything(seed)
    model.to(device)
    target = targets_from(z, cfg.targets).to(device)
    for p in model.encoder.parameters():
        p.requires_grad_(cfg.finetune_encoder)
    lc = loop.LoopConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer=loop.OptimizerConfig("adam", cfg.lr, weight_decay=cfg.weight_decay),
        log_every=cfg.log_every,
    )
    trainer = LocalizerTrainer(model, features, target, lc, device)
    load = partial(features.batches, device=device)
    hist = loop.fit(trainer, len(features), lc, gen, name="em", load=load).history
    log.info(
        "M-step: %d epochs in %.1f s, final loss %.4f",
        cfg.epochs,
        hist.seconds,
        hist.rows[-1]["loss"] if hist.rows else float("nan"),
    )
    return hist


@torch.no_grad()
def infer(
    model: Localizer, features: VideoFeatures, batch_size: int, device: torch.device
) -> Inference:
    model.eval()
    gs, ss, ys = [], [], []
    for _, b in features.batches(ordered_batches(len(features), batch_size), device):
        gamma, s, y = model(b.visual, b.audio, b.mask)
        gs.append(gamma.cpu().numpy())
        ss.append(s.cpu().numpy())
        ys.append(y.cpu().numpy())
    return Inference(
        np.concatenate(gs), np.concatenate(ss), np.concatenate(ys), features.mask.copy()
    )


def foreground(gamma: np.ndarray, mask: np.ndarray, rule: str, threshold: float) -> np.ndarray:
    """(N, T) bool foreground decision from the temporal softmax gamma (N, T)."""
    if rule == "uniform":
        t_valid = mask.sum(1, keepdims=True).clip(1, None)
        fg = gamma >= 1.0 / t_valid - 1e-7
    elif rule == "relative":
        peak = np.where(mask, gamma, 0).max(1, keepdims=True)
        fg = gamma >= threshold * peak
    else:
        raise ValueError(f"foreground_rule must be 'uniform' or 'relative', got {rule!r}")
    return fg & mask


def timelines(
    video_ids: list[str],
    pseudo: np.ndarray,
    fg: np.ndarray,
    segment_scores: np.ndarray,
    hop: float,
    win: float,
) -> list[list[object]]:
    """Rows (video, pseudo_class, onset_s, offset_s, score): one per run of foreground segments.

    score = mean over the run of the segment probability of the video's pseudo-class.
    """
    rows: list[list[object]] = []
    for i, vid in enumerate(video_ids):
        k = int(pseudo[i])
        t, T = 0, fg.shape[1]
        while t < T:
            if not fg[i, t]:
                t += 1
                continue
            start = t
            while t < T and fg[i, t]:
                t += 1
            score = float(segment_scores[i, start:t, k].mean())
            rows.append(
                [vid, k, round(start * hop, 3), round((t - 1) * hop + win, 3), round(score, 4)]
            )
    return rows


def separability(f: torch.Tensor, labels: np.ndarray) -> float:
    """Fisher ratio tr(S_between) / tr(S_within) of unit rows of ``f`` (N, D) under ``labels``."""
    x = torch.nn.functional.normalize(f, dim=1)
    lab = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    mu = x.mean(0)
    between, within = 0.0, 0.0
    for k in lab.unique():
        xk = x[lab == k]
        between += len(xk) * float(((xk.mean(0) - mu) ** 2).sum())
        within += float(((xk - xk.mean(0)) ** 2).sum())
    return between / max(within, 1e-12)


@torch.no_grad()
def input_representations(
    model: Localizer, features: VideoFeatures, batch_size: int, device: torch.device
) -> torch.Tensor:
    """(N, C_v + D_a): the input features pooled over time with the localizer's gamma.

    Per segment, the visual map averaged over space and the audio vector, each L2
    normalised.  Unlike the encoder's outputs, these are not mixed across time.
    """
    model.eval()
    out = []
    for _, b in features.batches(ordered_batches(len(features), batch_size), device):
        gamma = model(b.visual, b.audio, b.mask)[0]
        seg = torch.cat(
            [
                torch.nn.functional.normalize(b.visual.mean(2), dim=-1),
                torch.nn.functional.normalize(b.audio, dim=-1),
            ],
            dim=-1,
        )
        out.append(torch.einsum("bt,btd->bd", gamma, seg).cpu())
    return torch.cat(out)


@torch.no_grad()
def orient_gamma(
    model: Localizer,
    features: VideoFeatures,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> bool:
    """Reverse gamma (negate its logits) when the reversed gamma pools more separable inputs.

    MIL pooling ``y = s^T gamma`` does not identify which segments gamma selects once the
    cross-modal attention has spread the class evidence over every segment: gamma can
    end up on the background.  The event segments are the ones whose features separate
    the pseudo-classes, so gamma and its reverse ``softmax(-logits)`` are compared by
    :func:`separability` under ``labels`` (N,) of the input features they pool
    (:func:`input_representations`: not mixed across time, unlike the encoder's).
    Returns True when the localizer's gamma head was negated.
    """
    keep = separability(input_representations(model, features, batch_size, device), labels)
    w = model.w_gamma
    w.weight.neg_()
    w.bias.neg_()
    flip = separability(input_representations(model, features, batch_size, device), labels)
    log.info("gamma orientation: separability %.4f as trained, %.4f reversed", keep, flip)
    if flip > keep:
        return True
    w.weight.neg_()
    w.bias.neg_()
    return False
