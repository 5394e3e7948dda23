"""CoLeaF training on the HAN Anchor (Sardari et al., ECCV 2024; paper Table 4 right)
or, with ``anchor_backbone: cmpae``, on the released CMPAE Anchor
(faeghehsardari/coleaf ``nets/net_audiovisual.py``).

Per iteration (faeghehsardari/coleaf ``main.py``, with HAN in place of CMPAE):
1. Anchor forward (no grad) -> Eq. 12 pseudo-labels ỹ^a, ỹ^v;
2. update the audio, then the visual Reference (own Adam each): video-level and
   class-token losses, plus L_smkd after ``reference.warmup_epochs`` (Eqs. 5-7, 12);
3. Reference forward (no grad) -> event-aware weights w^a, w^v (Eqs. 8-11), segment
   embeddings r̂^m and the class-correlation teachers (Eq. 13);
4. Anchor update: HAN loss + from ``contrastive.start_epoch`` the event-aware
   NCE ``λ_a L_EA^a + λ_v L_EA^v`` (query r̂^m, keys = Anchor segment embeddings) and
   from ``correlation.start_epoch`` ``λ_cc (L_cc^a + L_cc^v)``.
Inference: the Anchor alone (optionally fusing a no-cross-attention forward).

Defaults follow the released code, not the paper: ASL for the Reference,
per-modality event-aware weights 0.009 / 1, confidence-gated teacher and the
released ``sum / C * B`` reduction with weight 1e-4, 10 epochs, Adam 5e-4,
StepLR(6, 0.25).  Paper alternatives are config switches: ``reference.loss: bce``,
``contrastive.weighting: single``, ``correlation.teacher: reference``,
``correlation.reduction: mse``, ``train.epochs: 15``.
The CMPAE-only parts of the released Anchor loop (evidential heads, global branch,
mutual learning, the Anchor's own audio-visual NCE) come with ``anchor_backbone: cmpae``
(the HAN Anchor can add that NCE with ``train.anchor_nce_weight``, 0 by default).
JoMoLD label denoising (as in the released CoLeaF and CMPAE loops, with the Anchor's
no-cross-attention forward) is
``denoise.enabled``, off by default because its noise ratios are LLP-specific.
The no-grad forwards (steps 1 and 3, and JoMoLD's) run in train mode, as in the
released loop (dropout on: the pseudo-labels and teachers are dropout samples);
``train.pseudo_label_mode: eval`` is avpipe's earlier departure (deterministic ones).
The CMPAE mutual loss alternates its direction on the batch index within the epoch
(``batch_idx % 2``, from 0 in every epoch), as the released loop does.
The epochs run in :mod:`avpipe.training.loop` (via :func:`avpipe.methods.avvp.train`):
:meth:`Trainer.train_step` makes the three optimiser updates of one batch, and the
epoch with the best val score is kept, the last of equal scores as in the released
``main.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from avpipe.config import ConfigError
from avpipe.datasets.avvp import Dims
from avpipe.methods.avvp import Selection
from avpipe.methods.coleaf.cmpae import CMPAE, cmpae_loss
from avpipe.methods.coleaf.losses import (
    asl,
    cc_teacher,
    class_correlation_loss,
    event_aware_weights,
    jomold_denoise,
    smkd_targets,
    smoothed_nce,
)
from avpipe.methods.coleaf.reference import ReferenceNet
from avpipe.methods.han.losses import bce, han_loss, smooth
from avpipe.methods.han.trainer import (
    ModelConfig,
    build_han,
    loop_config,
    outputs_to_predictions,
)
from avpipe.metrics.avvp import Setting
from avpipe.training import loop
from avpipe.training.data import Split


@dataclass(frozen=True)
class ReferenceConfig:
    d_model: int = 512
    heads: int = 1
    ffn: int = 512
    dropout: float = 0.1
    head_dropout: float = 0.5
    class_tokens: bool = True
    loss: Literal["asl", "bce"] = "asl"
    warmup_epochs: int = 3  # epochs <= this: no L_smkd
    video_weight: tuple[float, float] = (1.0, 0.5)  # (warm-up, after)
    token_weight_audio: tuple[float, float] = (1.2, 0.001)
    token_weight_visual: tuple[float, float] = (1.0, 0.0)
    smkd_weight: float = 0.5
    smkd_thresholds: tuple[float, float] = (0.5, 0.6)  # Anchor p^a, p^v thresholds of Eq. 12
    smkd_mask_with_labels: bool = True


@dataclass(frozen=True)
class ContrastiveConfig:
    start_epoch: int = 2
    weight_audio: float = 0.009
    weight_visual: float = 1.0
    weighting: Literal["per_modality", "single", "none"] = "per_modality"
    pseudo_threshold: float = 0.5
    pseudo_mask_with_labels: bool = False
    temperature: float = 0.2
    smoothing: float = 0.1


@dataclass(frozen=True)
class CorrelationConfig:
    start_epoch: int = 2
    weight: float = 1e-4
    teacher: Literal["gated", "reference"] = "gated"
    reduction: Literal["code", "mean", "mse"] = "code"
    gate_audio: tuple[float, float] = (0.8, 0.1)  # (high, low) confidence of p^{R,a}
    gate_visual: tuple[float, float] = (0.6, 0.4)


@dataclass(frozen=True)
class DenoiseConfig:
    """JoMoLD label denoising, per-class ratios in class order (LLP: noise_ratios.npz)."""

    enabled: bool = False
    ratios_audio: list[float] = field(default_factory=list)
    ratios_visual: list[float] = field(default_factory=list)
    first_epoch_off: bool = True  # the released warm-up leaves epoch 1 undenoised


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-4
    lr_step: int = 6
    lr_gamma: float = 0.25
    visual_smoothing: float = 0.1
    anchor_nce_weight: float = 0.0
    fuse_no_cross: float = 0.0  # inference p = (1-w) p_CA + w p_noCA (released CMPAE Anchor: 0.3)
    # mode of the no-grad forwards that make pseudo-labels / teachers: train = the released
    # loop (dropout on); eval = avpipe's earlier deterministic departure
    pseudo_label_mode: Literal["train", "eval"] = "train"


@dataclass(frozen=True)
class CMPAEConfig:
    """The CMPAE Anchor (``anchor_backbone: cmpae``); width etc. from ``anchor``."""

    cross_mix: float = 0.8  # x = w x_ca + (1 - w) x_sa
    # (w_a, w_v, w_g, w_nce, w_mut): CoLeaF's released values (CMPAE's own: 2, 0.6, 0.6, 1, 1)
    loss_weights: tuple[float, float, float, float, float] = (2.0, 1.0, 2.0, 1.0, 1.0)
    # true: no gradient through the mutual loss's uncertainty weights (avpipe's earlier
    # departure); the released MutualLearningLoss keeps it
    detach_uncertainty: bool = False


@dataclass(frozen=True)
class Config:
    anchor_backbone: Literal["han", "cmpae"] = "han"
    anchor: ModelConfig = field(default_factory=ModelConfig)
    cmpae: CMPAEConfig = field(default_factory=CMPAEConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    select: Selection = field(
        default_factory=lambda: Selection("new_mean", Setting(0.52, 0.25, "modality"))
    )


def build_anchor(cfg: Config, dims: Dims) -> torch.nn.Module:
    if cfg.anchor_backbone == "han":
        return build_han(cfg.anchor, dims)
    a = cfg.anchor
    return CMPAE(
        dims.audio, dims.frames, dims.motion, dims.n_classes,
        a.d_model, a.heads, a.ffn, a.dropout, cfg.cmpae.cross_mix,
    )  # fmt: skip


class Trainer(loop.Trainer):
    """CoLeaF in the training loop; ``train``: the training split (None: :meth:`step` only).

    ``model`` is the Anchor (the deployed network); the two References train beside it
    with their own optimisers (groups ``audio``, ``visual``)."""

    def __init__(self, cfg: Config, dims: Dims, device: torch.device, train: Split | None = None):
        self.cfg, self.device, self.data = cfg, device, train
        self.anchor = build_anchor(cfg, dims).to(device)
        self.model = self.anchor
        # batch index within the epoch (from 0), the released loop's ``batch_idx``
        self.batch_idx, self._epoch = 0, -1
        r = cfg.reference
        self.refs = {
            m: ReferenceNet(
                m,
                dims.audio,
                dims.frames,
                dims.motion,
                dims.n_classes,
                r.d_model,
                r.heads,
                r.ffn,
                r.dropout,
                r.head_dropout,
                r.class_tokens,
            ).to(device)
            for m in ("audio", "visual")
        }
        self.loop = loop_config(cfg.train, cfg.select)
        groups = [("anchor", self.anchor), *self.refs.items()]
        self.opt = loop.Optimisers({k: net.parameters() for k, net in groups}, self.loop)
        dn = cfg.denoise
        if dn.enabled and not len(dn.ratios_audio) == len(dn.ratios_visual) == dims.n_classes:
            raise ConfigError(
                f"avvp.coleaf.denoise: ratios_audio/ratios_visual need {dims.n_classes} values "
                f"(one per class), got {len(dn.ratios_audio)} and {len(dn.ratios_visual)}"
            )
        self.ratios = (
            torch.tensor(dn.ratios_audio, device=device),
            torch.tensor(dn.ratios_visual, device=device),
        )

    # -- Reference ------------------------------------------------------------------
    def reference_loss(
        self,
        out: dict[str, torch.Tensor],
        target: torch.Tensor,
        pseudo: torch.Tensor,
        modality: str,
        epoch: int,
    ) -> torch.Tensor:
        r = self.cfg.reference
        late = int(epoch > r.warmup_epochs)
        crit = asl if r.loss == "asl" else bce
        loss = r.video_weight[late] * crit(out["video_prob"], target)
        token_w = (r.token_weight_audio if modality == "audio" else r.token_weight_visual)[late]
        if "class_prob" in out and token_w:
            loss = loss + token_w * crit(out["class_prob"], target)
        if late:
            loss = loss + r.smkd_weight * crit(out["video_prob"], pseudo)
        return loss

    def _no_grad_forward(
        self, net: torch.nn.Module, *args: torch.Tensor, **kw: bool
    ) -> dict[str, torch.Tensor]:
        was_training = net.training
        net.train(self.cfg.train.pseudo_label_mode == "train")
        with torch.no_grad():
            out = net(*args, **kw)
        net.train(was_training)
        return out

    # -- one batch -------------------------------------------------------------------
    def train_mode(self) -> None:
        for module in (self.anchor, *self.refs.values()):
            module.train()

    def train_step(self, step: loop.Step) -> dict[str, float]:
        if self.data is None:
            raise ValueError("CoLeaF Trainer built without a training split")
        return self.step(step.batch, step.epoch, step.batch_idx)

    def step(
        self, b: dict[str, torch.Tensor], epoch: int, batch_idx: int | None = None
    ) -> dict[str, float]:
        """One iteration (module docstring, steps 1-4); returns the losses for the log.
        ``batch_idx``: the batch's index within the epoch (None: counted here, from 0 at
        each new ``epoch``)."""
        if batch_idx is None:
            batch_idx = self.batch_idx + 1 if epoch == self._epoch else 0
        self.batch_idx, self._epoch = batch_idx, epoch
        args = (b["audio"], b["frames"], b["motion"], b["mask"])
        targets = self.targets(b["labels"], args, epoch)
        a0 = self._no_grad_forward(self.anchor, *args)
        r = self.cfg.reference
        pseudo = smkd_targets(
            a0["audio_prob"], a0["visual_prob"], targets["audio"], targets["visual"],
            r.smkd_thresholds, r.smkd_mask_with_labels,
        )  # fmt: skip
        logs: dict[str, float] = {}
        for (m, net), pseudo_m in zip(self.refs.items(), pseudo, strict=True):
            loss = self.reference_loss(net(b), targets[m], pseudo_m, m, epoch)
            self.opt.update(loss, m)
            logs[f"ref_{m}"] = loss.item()
        ref = {m: self._no_grad_forward(net, b) for m, net in self.refs.items()}
        loss = self.anchor_loss(b, args, targets, ref, epoch, logs)
        self.opt.update(loss, "anchor")
        logs["loss"] = loss.item()
        return logs

    def targets(
        self, y: torch.Tensor, args: tuple[torch.Tensor, ...], epoch: int
    ) -> dict[str, torch.Tensor]:
        """Modality targets P_a = y, P_v = smoothed y, optionally JoMoLD-denoised."""
        targets = {"audio": y, "visual": smooth(y, self.cfg.train.visual_smoothing)}
        dn = self.cfg.denoise
        if dn.enabled and not (dn.first_epoch_off and epoch == 1):
            a_nc = self._no_grad_forward(self.anchor, *args, cross=False)
            p = (a_nc["audio_prob"], a_nc["visual_prob"])
            t_a, t_v = jomold_denoise(*p, targets["audio"], targets["visual"], *self.ratios)
            targets = {"audio": t_a, "visual": t_v}
        return targets

    def anchor_loss(
        self,
        b: dict[str, torch.Tensor],
        args: tuple[torch.Tensor, ...],
        targets: dict[str, torch.Tensor],
        ref: dict[str, dict[str, torch.Tensor]],
        epoch: int,
        logs: dict[str, float],
    ) -> torch.Tensor:
        """HAN loss + event-aware NCE + class-correlation KD of the Anchor (step 4)."""
        c, y, mask = self.cfg, b["labels"], b["mask"]
        out = self.anchor(*args)
        t_mod = (targets["audio"], targets["visual"])
        if c.anchor_backbone == "cmpae":
            odd = self.batch_idx % 2 == 1  # mutual learning alternates its direction
            loss = cmpae_loss(
                out, y, t_mod, mask, c.cmpae.loss_weights, odd, c.cmpae.detach_uncertainty
            )
        else:
            loss = han_loss(out, y, c.train.visual_smoothing, targets=t_mod)
        logs["anchor_mil"] = loss.item()
        keys = {m: F.normalize(out[f"x_{m}"], dim=-1) for m in ("audio", "visual")}
        k = c.contrastive
        if c.train.anchor_nce_weight:
            nce = smoothed_nce(keys["audio"], keys["visual"], mask, k.temperature, k.smoothing)
            loss = loss + c.train.anchor_nce_weight * nce
        if epoch >= k.start_epoch:
            p_ref = (ref["audio"]["video_prob"], ref["visual"]["video_prob"])
            labels = y if k.pseudo_mask_with_labels else None
            weights = event_aware_weights(*p_ref, k.pseudo_threshold, k.weighting, labels)
            for m, lam, w in zip(
                ("audio", "visual"), (k.weight_audio, k.weight_visual), weights, strict=True
            ):
                ea = smoothed_nce(ref[m]["embedding"], keys[m], mask, k.temperature, k.smoothing, w)
                loss = loss + lam * ea
                logs[f"ea_{m}"] = ea.item()
        cc_cfg = c.correlation
        if epoch >= cc_cfg.start_epoch:
            for m, gate in (("audio", cc_cfg.gate_audio), ("visual", cc_cfg.gate_visual)):
                p_anchor = out[f"{m}_prob"]
                gated = cc_cfg.teacher == "gated"
                teacher = cc_teacher(ref[m]["video_prob"], p_anchor, targets[m], *gate, gated)
                cc = class_correlation_loss(p_anchor, teacher, cc_cfg.reduction)
                loss = loss + cc_cfg.weight * cc
                logs[f"cc_{m}"] = cc.item()
        return loss

    # -- inference --------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.anchor.eval()
        args = (batch["audio"], batch["frames"], batch["motion"], batch["mask"])
        pred = outputs_to_predictions(self.anchor(*args))
        w = self.cfg.train.fuse_no_cross
        if w:
            alt = outputs_to_predictions(self.anchor(*args, cross=False))
            pred = {k: (1 - w) * v + w * alt[k] for k, v in pred.items()}
        return pred
