"""HAN training (methods spec §4.1; YapengTian/AVVP-ECCV20 ``main_avvp.py``).

Adam 3e-4, batch 16, 40 epochs, StepLR(10, x0.1); checkpoint = best validation
segment-level Type@AV with HAN's thresholds (global video filter p̄ >= 0.5, segment 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from avpipe.datasets.avvp import Dims
from avpipe.methods.han.losses import han_loss
from avpipe.methods.han.model import HAN
from avpipe.metrics.avvp import Setting
from avpipe.training.avvp import Selection
from avpipe.training.data import Split
from avpipe.training.epochs import shuffled_batches


@dataclass(frozen=True)
class ModelConfig:
    """HAN backbone (§4.1): width, heads, FFN width, dropout, layers, token activation."""

    d_model: int = 512
    heads: int = 1
    ffn: int = 512
    dropout: float = 0.1
    layers: int = 1
    activation: Literal["none", "elu"] = "none"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-4
    lr_step: int = 10
    lr_gamma: float = 0.1
    visual_smoothing: float = 0.1
    guided: bool = True  # BCE on p^a and p^v besides p̄


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    select: Selection = field(
        default_factory=lambda: Selection("segment.Type@AV", Setting(0.5, 0.5, "global"))
    )


def build_han(m: ModelConfig, dims: Dims) -> HAN:
    return HAN(
        dims.audio,
        dims.frames,
        dims.motion,
        dims.n_classes,
        m.d_model,
        m.heads,
        m.ffn,
        m.dropout,
        m.layers,
        m.activation,
    )


def outputs_to_predictions(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HAN outputs -> the arrays of predictions.npz (avpipe.metrics.avvp)."""
    return {
        "seg_prob_audio": out["seg_prob"][:, :, 0],
        "seg_prob_visual": out["seg_prob"][:, :, 1],
        "video_prob_audio": out["audio_prob"],
        "video_prob_visual": out["visual_prob"],
        "video_prob": out["video_prob"],
    }


class Trainer:
    def __init__(self, cfg: Config, dims: Dims, device: torch.device, generator: torch.Generator):
        self.cfg, self.device, self.generator = cfg, device, generator
        self.epochs = cfg.train.epochs
        self.model = build_han(cfg.model, dims).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        self.sched = torch.optim.lr_scheduler.StepLR(
            self.opt, cfg.train.lr_step, cfg.train.lr_gamma
        )

    def train_epoch(self, split: Split, epoch: int) -> dict[str, float]:
        t = self.cfg.train
        self.model.train()
        total, n = 0.0, 0
        order = shuffled_batches(len(split), t.batch_size, self.generator)
        for idx, b in split.batches(order, self.device):
            out = self.model(b["audio"], b["frames"], b["motion"], b["mask"])
            loss = han_loss(out, b["labels"], t.visual_smoothing, t.guided)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        return {"loss": total / max(n, 1), "lr": lr}

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.eval()
        return outputs_to_predictions(
            self.model(batch["audio"], batch["frames"], batch["motion"], batch["mask"])
        )

    def deploy_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_deploy_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
