"""A trained model of each method family, run on new videos' features.

Each family loads its checkpoint with the config it carries, reads the new videos'
features through the data contract the family trained with (:mod:`avpipe.training.data`:
the inputs are masked, cut and z-scored exactly as in training, with the statistics of
``inputs.json``), and returns the
per-segment decisions the evaluation scores:

* PSP / CPSP (``model.pt`` of ``avpipe cpsp``): one label per segment, background = C
  (:func:`avpipe.methods.cpsp.experiment.predict`); one audio-visual lane.
* HAN / CoLeaF (``model.pt`` of ``avpipe avvp``): audio and visual segment probabilities
  binarised by :func:`avpipe.metrics.avvp.predict` under the setting the evaluation used.
* CLCL localizer (``localizer.pt`` of an EM round): the video's pseudo-class on its
  foreground segments (:func:`avpipe.methods.clcl.localizer.foreground`); one
  audio-visual lane.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.localize.inputs import Inputs, LocalizeError
from avpipe.training.checkpoint import load_checkpoint
from avpipe.training.data import Loading, Standardizer

log = logging.getLogger(__name__)

AUDIO, VISUAL, AV = "audio", "visual", "audio-visual"
CHECKPOINTS = {"model.pt": ("cpsp", "avvp"), "localizer.pt": ("clcl",)}


@dataclass
class Decisions:
    """What a model decided for each new video (rows in manifest sample order).

    ``lanes``: modality -> (N, T, C) bool, the segments of each class the model marks
    (AVVP: "audio" and "visual"; the others: one "audio-visual" lane); ``scores``: the
    same keys -> (N, T, C) float32 confidences; ``classes``: the C names;
    ``n_segments`` (N,) int; ``arrays``: the prediction arrays in the layout of the
    family's predictions.npz (``sample_id`` first)."""

    lanes: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    classes: list[str]
    n_segments: np.ndarray
    arrays: dict[str, np.ndarray]
    describe: str


def checkpoint_of(model_dir: Path) -> Path:
    """The checkpoint file of a model folder; one clear error when it is not one."""
    if not model_dir.is_dir():
        raise LocalizeError(f"no model: {model_dir} does not exist or is not a folder")
    for name in CHECKPOINTS:
        if (model_dir / name).is_file():
            return model_dir / name
    raise LocalizeError(
        f"not a model folder: {model_dir} holds neither model.pt (PSP/CPSP: results/cpsp/"
        "<dataset>/<experiment>/seed<k>; HAN/CoLeaF: results/avvp/<dataset>/<method>/seed<k>) "
        "nor localizer.pt (CLCL: results/em/<dataset>/seed<k>/round<r>)"
    )


def load(path: Path) -> dict:
    try:
        return load_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as e:
        raise LocalizeError(f"{path}: cannot read the checkpoint ({e})") from e


def _check_dims(where: Path, got: dict[str, int], want: dict[str, int]) -> None:
    bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    if bad:
        raise LocalizeError(
            f"{where}: the new videos' features do not fit the model "
            + ", ".join(f"{k} {g} (model {w})" for k, (g, w) in bad.items())
        )


def _onehot(labels: np.ndarray, C: int) -> np.ndarray:
    """(N, T) labels (C or -1 = none) -> (N, T, C) bool."""
    out = np.zeros((*labels.shape, C), bool)
    n, t = np.nonzero((labels >= 0) & (labels < C))
    out[n, t, labels[n, t]] = True
    return out


def predict_cpsp(
    ckpt: dict,
    ckpt_path: Path,
    inputs: Inputs,
    manifest: Manifest,
    stores: dict[str, Path],
    device: torch.device,
    naming: None = None,
) -> Decisions:
    """``naming``: unused (the checkpoint names the classes)."""
    from avpipe.methods.cpsp.config import CpspStage
    from avpipe.methods.cpsp.experiment import build_model, input_dims, load_splits, predict

    cfg = from_dict(CpspStage, ckpt["config"], where=f"{ckpt_path}: config")
    classes = list(ckpt["classes"])
    C = len(classes)
    manifest = manifest.replace(classes=classes)
    data = load_splits(manifest, stores["visual"], stores["audio"], ("unlabeled",), cfg.data)
    data = data["unlabeled"]
    _check_dims(
        ckpt_path,
        dict(zip(("visual_dim", "audio_dim", "positions"), input_dims(data), strict=True)),
        {k: int(ckpt[k]) for k in ("visual_dim", "audio_dim", "positions")},
    )
    data.norm = _standardizer(inputs, ("visual", "audio"))
    model = build_model(cfg, data, C)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device)
    pred = predict(model, data, C, max(cfg.run.train.batch_size, 64), device)
    seg = pred["segment_pred"]
    lanes = {AV: _onehot(seg, C)}
    # confidence of a segment's class: P(event) x P(class | video), the two factors the
    # CPSP head multiplies in its decision (PSP's head: 1 - P(background) x mean P(class))
    score = pred["event_prob"][:, :, None] * pred["class_prob"][:, None, :C]
    return Decisions(
        lanes,
        {AV: score.astype(np.float32)},
        classes,
        data.n_segments,
        {"sample_id": np.asarray(data.sample_ids), **pred},
        f"{cfg.experiment} ({cfg.run.setting}ly supervised): segment labels as scored",
    )


def _standardizer(inputs: Inputs, names: tuple[str, ...]) -> Standardizer | None:
    """The training statistics of the inputs ``names`` recorded in ``inputs.json``
    (None: the model was trained on raw inputs)."""
    stats = inputs.stats(*(f"{n}_{s}" for n in names for s in ("mean", "std")))
    return None if stats is None else Standardizer.from_flat(names, stats)


def predict_avvp(
    ckpt: dict,
    ckpt_path: Path,
    inputs: Inputs,
    manifest: Manifest,
    stores: dict[str, Path],
    device: torch.device,
    binarisation,
) -> Decisions:
    from avpipe.datasets import avvp as data
    from avpipe.methods import avvp as family
    from avpipe.methods import registry
    from avpipe.metrics import avvp as metrics

    method = ckpt["config"]["method"]
    entry = registry.get(method)
    config_cls, trainer_cls = registry.load(entry.config), registry.load(entry.trainer)
    cfg = from_dict(config_cls, ckpt["config"][method], where=f"{ckpt_path}: config.{method}")
    dcfg = from_dict(family.DataConfig, ckpt["config"]["data"], where=f"{ckpt_path}: config.data")
    dims = data.Dims(**ckpt["dims"])
    classes = list(ckpt["classes"])
    manifest = manifest.replace(classes=classes)
    _, splits, got = data.load(
        manifest,
        *(stores[r] for r in ("audio", "frames", "motion")),
        splits=("unlabeled",),
        use_frames=dcfg.use_frames,
        loading=Loading(dcfg.memory_budget_mb, dcfg.loader_workers, dcfg.eval_batch_size),
    )
    split = splits["unlabeled"]
    keys = ("audio", "frames", "motion", "frames_per_segment")
    _check_dims(ckpt_path, {k: getattr(got, k) for k in keys}, {k: getattr(dims, k) for k in keys})
    split.norm = _standardizer(inputs, ("audio", "frames", "motion"))
    trainer = trainer_cls(cfg, dims, device)
    trainer.model.load_state_dict(ckpt["state_dict"])
    pred = family.predict_split(trainer, split, dcfg.eval_batch_size, device)
    Sa, Sv = metrics.predict(pred, binarisation.setting, binarisation.thresholds)
    N, T, C = pred["seg_prob_audio"].shape
    lanes = {}
    for lane, S in ((AUDIO, Sa), (VISUAL, Sv)):
        x = np.zeros((N, T, C), bool)
        for i, s in enumerate(S):
            x[i, : s.shape[1]] = s.T
        lanes[lane] = x
    scores = {AUDIO: pred["seg_prob_audio"], VISUAL: pred["seg_prob_visual"]}
    return Decisions(
        lanes,
        {k: v.astype(np.float32) for k, v in scores.items()},
        classes,
        pred["n_segments"],
        pred,
        f"{method}, {binarisation.describe()}",
    )


def predict_clcl(
    ckpt: dict,
    ckpt_path: Path,
    inputs: Inputs,
    manifest: Manifest,
    stores: dict[str, Path],
    device: torch.device,
    names: list[str],
) -> Decisions:
    """``names``: one name per pseudo-class (the evaluation's mapped class, or
    ``pseudo<k>``)."""
    from avpipe.methods.clcl.config import EMStage
    from avpipe.methods.clcl.data import dims, open_features
    from avpipe.methods.clcl.localizer import foreground, infer
    from avpipe.methods.clcl.stages import load_localizer

    cfg = from_dict(EMStage, ckpt["config"], where=f"{ckpt_path}: config")
    C = int(ckpt["n_classes"])
    if len(names) != C:
        raise LocalizeError(f"{ckpt_path}: {C} pseudo-classes, but {len(names)} names")
    feats = open_features(
        manifest,
        stores["visual"],
        stores["audio"],
        manifest.samples,
        Loading(cfg.data.memory_budget_mb, cfg.data.loader_workers, 256),
        _standardizer(inputs, ("visual", "audio")),
        name="new videos",
    )
    _check_dims(
        ckpt_path,
        dict(zip(("visual_dim", "audio_dim"), dims(feats), strict=True)),
        {k: int(ckpt[k]) for k in ("visual_dim", "audio_dim")},
    )
    loc = load_localizer(ckpt_path, cfg, C).to(device)
    res = infer(loc, feats, 256, device)
    fg = foreground(res.gamma, res.mask, cfg.em.foreground_rule, cfg.em.relative_threshold)
    pseudo = res.video_scores.argmax(1)
    labels = np.where(fg, pseudo[:, None], -1)
    arrays = {
        "sample_id": np.asarray(feats.video_ids),
        "video_pseudo": pseudo,
        "video_scores": res.video_scores,
        "gamma": res.gamma,
        "foreground": fg,
        "segment_scores": res.segment_scores,
    }
    return Decisions(
        {AV: _onehot(labels, C)},
        {AV: res.segment_scores.astype(np.float32)},
        names,
        feats.n_segments,
        arrays,
        f"CLCL localizer round {ckpt.get('round', '?')}: the video's pseudo-class on its "
        f"foreground segments ({cfg.em.foreground_rule} rule)",
    )


# family -> predict(ckpt, ckpt_path, inputs, manifest, stores, device, naming); naming is
# the AVVP binarisation, the CLCL pseudo-class names, None for PSP/CPSP
PREDICT = {"cpsp": predict_cpsp, "avvp": predict_avvp, "clcl": predict_clcl}
