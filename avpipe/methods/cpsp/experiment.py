"""One PSP / CPSP / SSPSP experiment: stores + manifest on disk -> outputs on disk.

:func:`objective` sums the configured losses (jasongief/CPSP ``cpsp_avel/losses.py``):
full ``L_cls + w_avpsp L_avpsp + w_spsa L_spsa + w_vpsa L_vpsa + w_ss L_ss``,
weak ``L_cls + w_vpsa L_vpsa + w_ss L_ss`` (segment labels are never read in the weak
setting).  Weak video labels (``weak_labels``): ``cpsp`` keeps CPSP's C columns
(jasongief/CPSP ``AVE_dataset_weak.py`` drops the background column and has no
background-only videos), so a background-only training video, when the data has one, enters
with an all-zero label, whose MultiLabelSoftMargin loss only asks for a flat softmax;
``background_column`` labels it background in a C+1-th column, as AVE's weak training set
does (``labels_noisy.h5``; AVEL, CMRAN).  On event videos nothing in the cpsp head's
``L_cls`` pushes the event gate down on background segments (negative category logits pull
the smallest gate up), so its weak models tend to mark whole videos as events (on AVE, 2/3
of the videos are events from 0 to 10 s).  The psp head (the original PSP weak recipe)
scores every segment against C+1 classes, background included.

:func:`run_experiment` trains on train in :mod:`avpipe.training.loop`, selects the
epoch on val segment accuracy (never on test, unlike the PSP reference code; equal
accuracies keep the first epoch, as the released scripts compare with ``>``;
``train.ties``) and writes
``model.pt``, ``predictions.npz`` (``sample_id``, ``segment_pred`` (N, T),
background = C; see :mod:`avpipe.metrics.ave`),
``history.tsv`` and ``summary.json``; the summary's ``missing_stream`` names, per split,
the videos left out because a store says they have no video or no audio stream (the
evaluated split then has fewer samples: ``n_<split>``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from avpipe.config import ConfigError, to_dict
from avpipe.datasets.manifest import Manifest
from avpipe.localize.inputs import record_inputs
from avpipe.methods.cpsp import losses
from avpipe.methods.cpsp.config import CpspStage, DataConfig, ExperimentConfig
from avpipe.methods.cpsp.model import Output, PSPNet, predict_segments
from avpipe.metrics.ave import segment_accuracy, segment_labels
from avpipe.training.checkpoint import save_checkpoint
from avpipe.training.data import (
    Input,
    Loading,
    Split,
    Standardizer,
    fit_standardizer,
    open_splits,
)
from avpipe.training.device import resolve_device
from avpipe.training.epochs import ordered_batches, seed_everything
from avpipe.training.loop import Optimisers, Step, Trainer, fit
from avpipe.utils import atomic
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """visual (B, T, P, C_v) float32; audio (B, T, D_a); mask (B, T) bool; labels (B, T)
    int64 (background = C); fg (B, T) float32; video_label (B, C); video_class (B,) int64
    (-1 = no event)."""

    visual: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    fg: torch.Tensor
    video_label: torch.Tensor
    video_class: torch.Tensor


def _collate(b: dict[str, torch.Tensor]) -> Batch:
    """The shared contract's batch -> :class:`Batch` (maps (B, T, H, W, C) -> (B, T, H*W, C))."""
    return Batch(
        b["visual"].flatten(2, 3),
        b["audio"],
        b["mask"],
        b["labels"],
        b["fg"],
        b["video_label"],
        b["video_class"],
    )


def video_classes(
    labels: np.ndarray, video_label: np.ndarray, rule: Literal["largest", "most_frequent"]
) -> np.ndarray:
    """One category per video (N,) int from segment labels (N, T) (background = C) and
    video labels (N, C): among its event segments' classes the largest index (``largest``,
    the released CPSP) or the most frequent, ties to the smaller index (``most_frequent``);
    without event segments its first video-level label (weak-only annotations, as
    ``labels.max(-1)`` of the released weak script); -1 when it has none."""
    if rule not in ("largest", "most_frequent"):
        raise ValueError(f"video_class {rule!r}: expected 'largest' or 'most_frequent'")
    C = video_label.shape[1]
    counts = np.stack([(labels == c).sum(1) for c in range(C)], 1)
    has = counts > 0
    largest = C - 1 - np.argmax(has[:, ::-1], axis=1)
    seg_class = largest if rule == "largest" else counts.argmax(1)
    weak = np.where(video_label.any(1), video_label.argmax(1), -1)
    return np.where(has.any(1), seg_class, weak)


def load_splits(
    manifest: Manifest,
    visual: Path,
    audio: Path,
    names: tuple[str, ...],
    data: DataConfig,
    batch_size: int = 64,
    video_class: Literal["largest", "most_frequent"] = "largest",
) -> dict[str, Split]:
    """Present samples of each split with visual maps, audio and targets (jasongief/CPSP
    ``cpsp_avel/dataset/``) through the shared contract (:mod:`avpipe.training.data`):
    segment ``labels``
    (N, T) with background = C, the foreground indicator ``fg``, multi-hot
    ``video_label`` (N, C) and ``video_class`` (:func:`video_classes` under the rule
    ``video_class``).  PSP's fusion
    has no way to mask a modality: videos without a stream are left out of every split."""
    samples = {}
    for name in names:
        samples[name] = [s for s in manifest.split(name) if s.present]
        if not samples[name]:
            raise ValueError(
                f"manifest {manifest.dataset!r} has no present samples in split {name!r}"
            )
    splits = open_splits(
        manifest,
        {"visual": Input(visual), "audio": Input(audio)},
        samples,
        Loading(data.memory_budget_mb, data.loader_workers, batch_size),
        collate=_collate,
    )
    by_id = {s.sample_id: s for s in manifest.samples}
    C = len(manifest.classes)
    for split in splits.values():
        if len(split.shape("visual")) != 4:
            raise ValueError(
                f"{visual}: features have shape (N, {split.shape('visual')}), "
                "expected (N, T, H, W, C) maps"
            )
        if len(split.shape("audio")) != 2:
            raise ValueError(f"{audio}: features have shape (N, {split.shape('audio')}), "
                             "expected (N, T, D)")  # fmt: skip
        kept = [by_id[i] for i in split.sample_ids]
        labels = segment_labels(manifest, kept, n_segments=split.T)
        video_label = manifest.video_targets(kept)
        split.set_targets(
            labels=labels,
            fg=((labels < C) & split.mask).astype(np.float32),
            video_label=video_label,
            video_class=video_classes(labels, video_label, video_class).astype(np.int64),
        )
    return splits


def input_dims(split: Split) -> tuple[int, int, int]:
    """(C_v, D_a, P = H * W) of a split's inputs."""
    T, H, W, C_v = split.shape("visual")
    return C_v, split.shape("audio")[-1], H * W


def check_experiment(exp: ExperimentConfig) -> None:
    """Weak supervision has no segment labels: the label-based segment losses cannot run."""
    if exp.setting == "weak" and (exp.weights.avpsp > 0 or exp.weights.spsa > 0):
        raise ConfigError(
            f"weak setting with weights.avpsp={exp.weights.avpsp}, "
            f"weights.spsa={exp.weights.spsa}: "
            "L_avpsp and L_spsa need segment labels (fully supervised only); set them to 0"
        )


def _weak_class(video_label: torch.Tensor) -> torch.Tensor:
    has = video_label.sum(1) > 0
    return torch.where(has, video_label.argmax(1), torch.full_like(has, -1, dtype=torch.long))


def with_background_column(video_label: torch.Tensor) -> torch.Tensor:
    """Video labels (B, C) -> (B, C+1) with a background column that is 1 only for a video
    without any event, like the background-only videos of AVE's weak training set
    (``labels_noisy.h5``; the event videos' ``mil_labels.h5`` rows have it at 0)."""
    return torch.cat([video_label, (video_label.sum(1, keepdim=True) == 0).to(video_label)], 1)


def psp_weak_target(video_label: torch.Tensor) -> torch.Tensor:
    """The original PSP's weak target (B, C+1): :func:`with_background_column`, normalised
    to sum 1 (jasongief/PSP_CVPR_2021 ``prob_label``)."""
    y = with_background_column(video_label)
    return y / y.sum(1, keepdim=True)


def objective(
    out: Output, b: Batch, exp: ExperimentConfig, n_classes: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch and its parts (floats, for the history)."""
    w = exp.weights
    if exp.setting == "full":
        cls = b.video_class
        if out.event_logit is not None:
            l_cls = losses.full_classification(out.event_logit, out.class_logit, b.fg, cls, b.mask)
        else:
            l_cls = losses.psp_segment_ce(out.segment_logit, b.labels, b.mask)
    else:
        cls = _weak_class(b.video_label)
        if out.event_logit is not None:
            y = b.video_label
            if exp.weak_labels == "background_column":
                y = with_background_column(y)
            l_cls = losses.weak_classification(out.video_prob, y)
        else:  # original PSP weak: BCE against the label with a background column
            y = psp_weak_target(b.video_label)
            l_cls = F.binary_cross_entropy(out.video_prob.clamp(1e-7, 1 - 1e-7), y)
    parts = {"cls": l_cls}
    if w.avpsp > 0:
        parts["avpsp"] = losses.avpsp_loss(out.pair_sim, b.fg, b.mask)
    if w.spsa > 0:
        parts["spsa"] = losses.spsa_loss(
            out.fused, b.fg, b.mask, exp.spsa_temperature, exp.spsa_impl
        )
    if w.vpsa > 0:
        parts["vpsa"] = losses.vpsa_loss(out.fused, cls, b.mask, exp.margin, exp.negatives)
    if w.ss > 0:
        parts["ss"] = losses.ss_infonce(out.a_hat, out.v_hat, b.mask, exp.ss_temperature)
    weight = {"cls": 1.0, "avpsp": w.avpsp, "spsa": w.spsa, "vpsa": w.vpsa, "ss": w.ss}
    total = sum(weight[k] * v for k, v in parts.items())
    return total, {k: v.item() for k, v in parts.items()}


@torch.no_grad()
def predict(
    model: PSPNet, data: Split, n_classes: int, batch_size: int, device: torch.device
) -> dict[str, np.ndarray]:
    """segment_pred (N, T) int64 (background = C), event_prob (N, T), class_prob (N, C or C+1)."""
    model.eval()
    preds, events, classes = [], [], []
    for _, b in data.batches(ordered_batches(len(data), batch_size), device):
        out = model(b.visual, b.audio, b.mask)
        preds.append(predict_segments(out, n_classes).cpu().numpy())
        if out.event_logit is not None:
            events.append(torch.sigmoid(out.event_logit).cpu().numpy())
            classes.append(torch.softmax(out.class_logit, -1).cpu().numpy())
        else:
            p = torch.softmax(out.segment_logit, -1)
            events.append((1 - p[..., -1]).cpu().numpy())
            classes.append(p.mean(1).cpu().numpy())
    return {
        "segment_pred": np.concatenate(preds),
        "event_prob": np.concatenate(events).astype(np.float32),
        "class_prob": np.concatenate(classes).astype(np.float32),
    }


def accuracy(
    model: PSPNet, data: Split, n_classes: int, batch_size: int, device: torch.device
) -> float:
    pred = predict(model, data, n_classes, batch_size, device)["segment_pred"]
    return segment_accuracy(pred, data.targets["labels"], data.mask)


def build_model(cfg: CpspStage, data: Split, n_classes: int) -> PSPNet:
    exp = cfg.run
    return PSPNet(
        *input_dims(data),
        n_classes,
        cfg.model,
        exp.setting,
        exp.head,
        exp.threshold,
        background_column=exp.setting == "weak" and exp.weak_labels == "background_column",
    )


def _normalizer(norm: Standardizer | None, train: Split) -> dict[str, list[float]]:
    """The z-scoring recorded in model.pt: v_mean, v_std, a_mean, a_std (identity when off)."""
    C_v, D_a, _ = input_dims(train)
    mean = {"visual": np.zeros(C_v), "audio": np.zeros(D_a)} if norm is None else norm.mean
    std = {"visual": np.ones(C_v), "audio": np.ones(D_a)} if norm is None else norm.std
    return {
        f"{m}_{s}": np.asarray(d[k], np.float32).tolist()
        for m, k in (("v", "visual"), ("a", "audio"))
        for s, d in (("mean", mean), ("std", std))
    }


class PSPTrainer(Trainer):
    """PSP / CPSP / SSPSP in the training loop: :func:`objective` on a training batch
    (read ahead by the data contract: ``step.batch``)."""

    def __init__(self, model: PSPNet, train: Split, exp: ExperimentConfig, n_classes: int):
        self.model, self.exp, self.n_classes = model, exp, n_classes
        self.opt = Optimisers({"model": model.parameters()}, exp.train.loop(), len(train))

    def batch_loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        b = step.batch
        out = self.model(b.visual, b.audio, b.mask)
        return objective(out, b, self.exp, self.n_classes)


def run_experiment(
    manifest: Manifest, visual: Path, audio: Path, cfg: CpspStage, seed: int, out_dir: Path
) -> dict:
    """Train, select on val, predict ``cfg.data.evaluate_split``, write the outputs."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    exp = cfg.run
    check_experiment(exp)
    torch.set_num_threads(cfg.data.num_threads)
    device = resolve_device(cfg.data.device)
    names = tuple(dict.fromkeys(("train", "val", cfg.data.evaluate_split)))
    eval_bs = max(exp.train.batch_size, 64)
    splits = load_splits(manifest, visual, audio, names, cfg.data, eval_bs, exp.video_class)
    train, val = splits["train"], splits["val"]
    C = len(manifest.classes)
    norm = fit_standardizer(train) if cfg.data.standardize else None
    for s in splits.values():
        s.norm = norm
    torch.manual_seed(seed)
    model = build_model(cfg, train, C).to(device)
    generator = seed_everything(seed)  # batch order and dropout, after the initialisation
    trainer = PSPTrainer(model, train, exp, C)

    def validate() -> dict[str, float]:
        return {"accuracy": accuracy(model, val, C, eval_bs, device)}

    res = fit(
        trainer,
        len(train),
        exp.train.loop(),
        generator,
        validate,
        name=cfg.experiment,
        load=lambda order: train.batches(order, device),
    )
    test = splits[cfg.data.evaluate_split]
    pred = predict(model, test, C, eval_bs, device)
    eval_acc = segment_accuracy(pred["segment_pred"], test.targets["labels"], test.mask)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out_dir / "model.pt",
        model.state_dict(),
        to_dict(cfg),
        seed=seed,
        best_epoch=res.best_epoch,
        **dict(zip(("visual_dim", "audio_dim", "positions"), input_dims(train), strict=True)),
        classes=list(manifest.classes),
        normalizer=_normalizer(norm, train),
    )
    record_inputs(
        out_dir,
        "cpsp",
        manifest.dataset,
        (manifest.segment_hop, manifest.segment_win),
        {"visual": visual, "audio": audio},
        norm.flat() if norm is not None else None,
    )
    with atomic.atomic_path(out_dir / "predictions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            sample_id=np.asarray(test.sample_ids),
            split=np.asarray(cfg.data.evaluate_split),
            **pred,
        )
    res.history.write(out_dir / "history.tsv")
    secs = res.epoch_seconds
    summary = {
        "experiment": cfg.experiment,
        "dataset": manifest.dataset,
        "seed": seed,
        "best_epoch": res.best_epoch,
        "best_val_accuracy": res.best_score,
        f"{cfg.data.evaluate_split}_accuracy": eval_acc,
        "epoch_seconds_mean": float(np.mean(secs)) if secs else 0.0,
        "seconds": time.perf_counter() - t_start,
        "cpu_seconds": time.process_time() - cpu_start,
        "n_train": len(train),
        "n_val": len(val),
        f"n_{cfg.data.evaluate_split}": len(test),
        "missing_stream": {name: s.missing for name, s in splits.items()},
        "n_parameters": sum(p.numel() for p in model.parameters()),
        **provenance(to_dict(cfg)),
    }
    atomic.write_json(out_dir / "summary.json", summary)
    log.info(
        "%s on %s seed %d: val %.2f (epoch %d), %s %.2f, %.3f s/epoch",
        cfg.experiment,
        manifest.dataset,
        seed,
        res.best_score,
        res.best_epoch,
        cfg.data.evaluate_split,
        eval_acc,
        summary["epoch_seconds_mean"],
    )
    return summary
