"""Stage A of CLCL: self-supervised training of the collaborative encoder (spec §2.4).

Loss per step: ``w_a L_ins(audio) + w_v L_ins(visual) + w_dec (L_dec(x^a) + L_dec(x^v))``
with SGD (lr 0.05, momentum 0.9, wd 5e-4) and cosine decay (§2.7).  No augmentation is
described in the paper; ``feature_dropout`` [REC] optionally drops input features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from avpipe.methods.clcl.config import PretrainConfig
from avpipe.methods.clcl.data import Batch, VideoFeatures, dims
from avpipe.methods.clcl.losses import decorrelation, instance_nce
from avpipe.methods.clcl.memory import MemoryBank
from avpipe.methods.clcl.model import CollaborativeEncoder, embed
from avpipe.training.epochs import (
    History,
    cosine_schedule,
    ordered_batches,
    seed_everything,
    shuffled_batches,
)

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


def train_encoder(
    features: VideoFeatures, cfg: PretrainConfig, seed: int, device: torch.device
) -> PretrainResult:
    gen = seed_everything(seed)
    encoder = build_encoder(features, cfg).to(device)
    d = cfg.encoder.d_model
    bank_v = MemoryBank(len(features), d, cfg.memory_momentum, gen).to(device)
    bank_a = MemoryBank(len(features), d, cfg.memory_momentum, gen).to(device)
    opt = torch.optim.SGD(
        encoder.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = max(1, -(-len(features) // cfg.batch_size))
    sched = cosine_schedule(opt, cfg.epochs * steps_per_epoch)
    hist = History("pretrain", cfg.log_every)
    step = 0
    for epoch in tqdm(range(cfg.epochs), desc="pretrain", leave=False, disable=None):
        encoder.train()
        sums = np.zeros(3)
        n_batches = 0
        for idx, b in features.batches(
            shuffled_batches(len(features), cfg.batch_size, gen), device
        ):
            b = _augment(b, cfg.feature_dropout)
            x_v, x_a = embed(*encoder(b.visual, b.audio, b.mask), b.mask)
            index = torch.from_numpy(idx).to(device)
            l_ins_v = instance_nce(x_v, bank_v.bank, index, cfg.temperature)
            l_ins_a = instance_nce(x_a, bank_a.bank, index, cfg.temperature)
            l_dec = decorrelation(x_v, cfg.decorrelation_temperature) + decorrelation(
                x_a, cfg.decorrelation_temperature
            )
            loss = (
                cfg.weight_instance_visual * l_ins_v
                + cfg.weight_instance_audio * l_ins_a
                + cfg.weight_decorrelation * l_dec
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bank_v.update(index, x_v)
            bank_a.update(index, x_a)
            step += 1
            sums += [loss.item(), (l_ins_v + l_ins_a).item(), l_dec.item()]
            n_batches += 1
            hist.step(step, len(idx), sched.get_last_lr()[0], loss=loss.item())
        sums /= max(n_batches, 1)
        hist.epoch(
            epoch, loss=sums[0], instance=sums[1], decorrelation=sums[2], lr=sched.get_last_lr()[0]
        )
    emb_v, emb_a = encode_all(encoder, features, cfg.batch_size, device)
    log.info(
        "pretrain: %d epochs in %.1f s, final loss %.4f",
        cfg.epochs,
        hist.seconds,
        hist.rows[-1]["loss"] if hist.rows else float("nan"),
    )
    return PretrainResult(encoder, hist, emb_v, emb_a)


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
