"""Stage A of CLCL: self-supervised training of the collaborative encoder (paper Eqs. 6-7).

Loss per step: ``w_a L_ins(audio) + w_v L_ins(visual) + w_dec (L_dec(x^a) + L_dec(x^v))``
with SGD (lr 0.05, momentum 0.9, wd 5e-4) and cosine decay (the paper's settings), in
:mod:`avpipe.training.loop` (one update, then the memory banks move, per batch).  No
augmentation is described in the paper; ``feature_dropout`` [REC] optionally drops
input features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from avpipe.methods.clcl.config import PretrainConfig
from avpipe.methods.clcl.data import Batch, VideoFeatures, dims
from avpipe.methods.clcl.losses import decorrelation, instance_nce
from avpipe.methods.clcl.memory import MemoryBank
from avpipe.methods.clcl.model import CollaborativeEncoder, embed
from avpipe.training import loop
from avpipe.training.epochs import History, ordered_batches, seed_everything

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    encoder: CollaborativeEncoder
    history: History
    embed_visual: np.ndarray  # (N, d) float32, unit rows
    embed_audio: np.ndarray  # (N, d)


def build_encoder(features: VideoFeatures, cfg: PretrainConfig) -> CollaborativeEncoder:
    return CollaborativeEncoder(*dims(features), cfg.encoder)


def _augment(batch: Batch, p: float) -> Batch:
    if p <= 0:
        return batch
    return Batch(F.dropout(batch.visual, p), F.dropout(batch.audio, p), batch.mask)


def loop_config(cfg: PretrainConfig) -> loop.LoopConfig:
    """SGD with momentum and per-step cosine decay; no validation (unsupervised)."""
    return loop.LoopConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer=loop.OptimizerConfig("sgd", cfg.lr, cfg.momentum, cfg.weight_decay),
        schedule=loop.ScheduleConfig("cosine"),
        log_every=cfg.log_every,
    )


class EncoderTrainer(loop.Trainer):
    """Instance discrimination against the two memory banks + soft decorrelation."""

    def __init__(
        self,
        features: VideoFeatures,
        cfg: PretrainConfig,
        device: torch.device,
        generator: torch.Generator,
    ):
        self.features, self.cfg, self.device = features, cfg, device
        self.model = build_encoder(features, cfg).to(device)
        d = cfg.encoder.d_model
        self.bank_v = MemoryBank(len(features), d, cfg.memory_momentum, generator).to(device)
        self.bank_a = MemoryBank(len(features), d, cfg.memory_momentum, generator).to(device)
        self.opt = loop.Optimisers(
            {"encoder": self.model.parameters()}, loop_config(cfg), len(features)
        )

    def train_step(self, step: loop.Step) -> dict[str, float]:
        cfg = self.cfg
        b = _augment(step.batch, cfg.feature_dropout)
        x_v, x_a = embed(*self.model(b.visual, b.audio, b.mask), b.mask)
        index = torch.from_numpy(step.idx).to(self.device)
        l_ins_v = instance_nce(x_v, self.bank_v.bank, index, cfg.temperature)
        l_ins_a = instance_nce(x_a, self.bank_a.bank, index, cfg.temperature)
        l_dec = decorrelation(x_v, cfg.decorrelation_temperature) + decorrelation(
            x_a, cfg.decorrelation_temperature
        )
        loss = (
            cfg.weight_instance_visual * l_ins_v
            + cfg.weight_instance_audio * l_ins_a
            + cfg.weight_decorrelation * l_dec
        )
        self.opt.update(loss)
        self.bank_v.update(index, x_v)
        self.bank_a.update(index, x_a)
        return {
            "loss": loss.item(),
            "instance": (l_ins_v + l_ins_a).item(),
            "decorrelation": l_dec.item(),
        }


def train_encoder(
    features: VideoFeatures, cfg: PretrainConfig, seed: int, device: torch.device
) -> PretrainResult:
    gen = seed_everything(seed)
    trainer = EncoderTrainer(features, cfg, device, gen)
    load = partial(features.batches, device=device)
    res = loop.fit(trainer, len(features), loop_config(cfg), gen, name="pretrain", load=load)
    hist = res.history
    emb_v, emb_a = encode_all(trainer.model, features, cfg.batch_size, device)
    log.info(
        "pretrain: %d epochs in %.1f s, final loss %.4f",
        cfg.epochs,
        hist.seconds,
        hist.rows[-1]["loss"] if hist.rows else float("nan"),
    )
    return PretrainResult(trainer.model, hist, emb_v, emb_a)


@torch.no_grad()
def encode_all(
    encoder: CollaborativeEncoder, features: VideoFeatures, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled unit embeddings (x^v, x^a) of every video, each (N, d) float32."""
    encoder.eval()
    out_v, out_a = [], []
    for _, b in features.batches(ordered_batches(len(features), batch_size), device):
        x_v, x_a = embed(*encoder(b.visual, b.audio, b.mask), b.mask)
        out_v.append(x_v.cpu().numpy())
        out_a.append(x_a.cpu().numpy())
    return np.concatenate(out_v), np.concatenate(out_a)
