"""HAN training (Tian et al., ECCV 2020; YapengTian/AVVP-ECCV20 ``main_avvp.py``).

Adam 3e-4, batch 16, 40 epochs, StepLR(10, x0.1); checkpoint = best validation
segment-level Type@AV with HAN's thresholds (global video filter p̄ >= 0.5, segment 0.5),
the last of equal scores as in the released script.  The loop is
:mod:`avpipe.training.loop` (via :func:`avpipe.methods.avvp.train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from avpipe.datasets.avvp import Dims
from avpipe.methods.avvp import Selection
from avpipe.methods.han.losses import han_loss
from avpipe.methods.han.model import HAN
from avpipe.metrics.avvp import Setting
from avpipe.training import loop
from avpipe.training.data import Split


@dataclass(frozen=True)
class ModelConfig:
    """HAN backbone (YapengTian/AVVP-ECCV20 ``nets/net_audiovisual.py``).

    Width, heads, FFN width, dropout, layers, token activation.
    """

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


class StepSchedule(Protocol):
    """The schedule fields HAN's and CoLeaF's ``TrainConfig`` share."""

    epochs: int
    batch_size: int
    lr: float
    lr_step: int
    lr_gamma: float


def loop_config(t: StepSchedule, select: Selection) -> loop.LoopConfig:
    """Adam + StepLR(``lr_step``, ``lr_gamma``) from ``t``, no clipping, selection by
    ``select`` (HAN and CoLeaF, as their released scripts train)."""
    return loop.LoopConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        optimizer=loop.OptimizerConfig("adam", t.lr),
        schedule=loop.ScheduleConfig("step", step_size=t.lr_step, gamma=t.lr_gamma),
        select=select.metric,
        ties=select.ties,
    )


class Trainer(loop.Trainer):
    """HAN in the training loop; ``train``: the training split (None: no :meth:`batch_loss`)."""

    def __init__(self, cfg: Config, dims: Dims, device: torch.device, train: Split | None = None):
        self.cfg, self.device, self.data = cfg, device, train
        self.loop = loop_config(cfg.train, cfg.select)
        self.model = build_han(cfg.model, dims).to(device)
        self.opt = loop.Optimisers({"model": self.model.parameters()}, self.loop)

    def batch_loss(self, step: loop.Step) -> tuple[torch.Tensor, dict[str, float]]:
        if self.data is None:
            raise ValueError("HAN Trainer built without a training split")
        t = self.cfg.train
        b = step.batch
        out = self.model(b["audio"], b["frames"], b["motion"], b["mask"])
        return han_loss(out, b["labels"], t.visual_smoothing, t.guided), {}

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.eval()
        return outputs_to_predictions(
            self.model(batch["audio"], batch["frames"], batch["motion"], batch["mask"])
        )
