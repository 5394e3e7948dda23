"""AVVP metrics: segment- and event-level F of A, V, AV, Type@AV, Event@AV and the
CoLeaF audible-only / visible-only metrics Ao, Vo, Type@AVo, Event@AVo.

Semantics follow HAN's ``utils/eval_metrics.py`` (YapengTian/AVVP-ECCV20; unchanged
in CMPAE, CoLeaF and CPSP-AVVP), generalised to any number of classes C and of
segments T per video (the reference code hard-codes C = 25 and T = 10):

* per video and class, TP/FP/FN are counted over segments (segment level) or over
  events = maximal runs of consecutive positive segments (event level);
* a predicted event is a TP when its temporal IoU with **any** ground-truth event of
  the same class is >= 0.5 (inclusive, exact integer test ``2|p∩g| >= |p∪g|``), else
  an FP; a ground-truth event matched by no prediction is an FN.  No one-to-one
  assignment, as in the reference;
* class F = 2TP / (2TP + FP + FN), skipping classes with TP+FP = 0 and TP+FN = 0;
  the video's score is the mean over the remaining classes, or 1.0 when none remain;
* Event@AV (Event@AVo) pools the counts of A and V (Ao and Vo) per class first;
  Type@AV = (A + V + AV) / 3, Type@AVo = (Ao + Vo + AV) / 3 (CoLeaF Eqs. 14-15);
* dataset score = mean over videos, in percent.

Predictions file (``predictions.npz``, written by ``avpipe avvp``):
    ``sample_id``          (N,) str
    ``n_segments``         (N,) int: real segments per sample (the rest is padding)
    ``seg_prob_audio``     (N, T, C) float: segment-level audio probabilities
    ``seg_prob_visual``    (N, T, C)
    ``video_prob_audio``   (N, C) float: video-level audio probabilities
    ``video_prob_visual``  (N, C)
    ``video_prob``         (N, C), optional: modality-agnostic (HAN's global filter)

A segment prediction is ``1[P^m_t >= segment_threshold] * 1[filter_c >= video_threshold_c]``
with ``filter`` = the modality's own video probability (``video_filter: modality``,
CMPAE/CoLeaF) or the modality-agnostic one (``global``, HAN).  Settings with fixed
thresholds are listed in ``cfg["settings"]``; ``cfg["selected"]`` adds CMPAE's per-class
thresholds, chosen on ``selection_split`` (``select_thresholds``): by default CMPAE's
released rule (``main.py``, mode ``select_thresholds``): for each class alone, with every
other class at the base threshold, the grid value with the best dataset-level event F of
the modality, ties to the last grid value; ``rule: class_pooled_f`` is avpipe's earlier
rule (that class's event F from counts pooled over the videos, ties to the first).

UnAV-100 (manifest format ``unav100``) is scored with avpipe's own weak protocol
(CoLeaF's UnAV-100 setting is not published in detail): ground truth G_a = G_v =
the audio-visual events on the manifest's segment grid, variable T; AV is the reported
metric.  With identical A and V truth the Ao/Vo-based metrics mean nothing and are
left out (:func:`scored_metrics`); the dataset's official metric,
detection mAP, is :mod:`avpipe.metrics.unav` (task ``unav100``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.metrics import EvalResult

log = logging.getLogger(__name__)

LEVELS = ("segment", "event")
BASE = ("A", "V", "AV", "Ao", "Vo")
POOLED = {"Event@AV": ("A", "V"), "Event@AVo": ("Ao", "Vo")}
TYPES = {"Type@AV": ("A", "V", "AV"), "Type@AVo": ("Ao", "Vo", "AV")}
METRICS = ("A", "Ao", "V", "Vo", "AV", "Type@AV", "Type@AVo", "Event@AV", "Event@AVo")
NEW_METRICS = ("Ao", "Vo", "AV", "Type@AVo", "Event@AVo")  # CoLeaF's model-selection set
# Metrics whose truth is empty when A and V ground truth are the same (audible-only and
# visible-only events, and the metrics built on them)
SEPARATE_MODALITY_METRICS = ("Ao", "Vo", "Type@AVo", "Event@AVo")


# -- counting ------------------------------------------------------------------------


def runs(x: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array as ``[start, end)`` segment indices."""
    x = np.asarray(x, dtype=bool)
    d = np.diff(np.concatenate([[0], x.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _matches(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Temporal IoU of two ``[start, end)`` intervals >= 0.5, exactly (integers)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return False
    union = max(a[1], b[1]) - min(a[0], b[0])
    return 2 * inter >= union


def segment_counts(S: np.ndarray, G: np.ndarray) -> np.ndarray:
    """TP, FP, FN per class ``(3, C)`` of predictions ``S`` vs truth ``G``, both ``(C, T)`` bool."""
    S, G = np.asarray(S, bool), np.asarray(G, bool)
    return np.stack([(S & G).sum(1), (S & ~G).sum(1), (~S & G).sum(1)])


def event_counts(S: np.ndarray, G: np.ndarray) -> np.ndarray:
    """TP, FP, FN per class ``(3, C)`` int over events (runs) of ``S`` and ``G`` ``(C, T)``."""
    S, G = np.asarray(S, bool), np.asarray(G, bool)
    out = np.zeros((3, S.shape[0]), dtype=np.int64)
    for c in np.flatnonzero(S.any(1) | G.any(1)):
        pred, gt = runs(S[c]), runs(G[c])
        hit = sum(any(_matches(p, g) for g in gt) for p in pred)
        found = sum(any(_matches(g, p) for p in pred) for g in gt)
        out[:, c] = (hit, len(pred) - hit, len(gt) - found)
    return out


def video_f(counts: np.ndarray) -> float:
    """Per-video F from ``(3, C)`` counts: mean over active classes, 1.0 if none is active."""
    tp, fp, fn = counts
    active = (tp + fp > 0) | (tp + fn > 0)
    if not active.any():
        return 1.0
    return float(np.mean(2 * tp[active] / (2 * tp[active] + fp[active] + fn[active])))


def modality_pairs(
    Sa: np.ndarray, Sv: np.ndarray, Ga: np.ndarray, Gv: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(prediction, truth) per base metric; all ``(C, T)`` bool."""
    return {
        "A": (Sa, Ga),
        "V": (Sv, Gv),
        "AV": (Sa & Sv, Ga & Gv),
        "Ao": (Sa & ~Sv, Ga & ~Gv),
        "Vo": (Sv & ~Sa, Gv & ~Ga),
    }


def video_scores(
    Sa: np.ndarray, Sv: np.ndarray, Ga: np.ndarray, Gv: np.ndarray
) -> dict[str, float]:
    """Per-video F (0-1) of every base and pooled metric at both levels, keys ``level.metric``."""
    pairs = modality_pairs(*(np.asarray(x, bool) for x in (Sa, Sv, Ga, Gv)))
    out: dict[str, float] = {}
    for level, count in (("segment", segment_counts), ("event", event_counts)):
        counts = {k: count(s, g) for k, (s, g) in pairs.items()}
        for k, c in counts.items():
            out[f"{level}.{k}"] = video_f(c)
        for k, (m1, m2) in POOLED.items():
            out[f"{level}.{k}"] = video_f(counts[m1] + counts[m2])
    return out


def dataset_scores(
    S_audio: Sequence[np.ndarray],
    S_visual: Sequence[np.ndarray],
    G_audio: Sequence[np.ndarray],
    G_visual: Sequence[np.ndarray],
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Dataset metrics in percent, keys ``level.metric`` for every metric of ``metrics``
    (default: all of ``METRICS``; see :func:`scored_metrics`).

    Each argument holds one ``(C, T_i)`` bool matrix per video (T_i may vary).
    """
    if not len(S_audio):
        raise ValueError("no videos to score")
    per_video = [video_scores(*m) for m in zip(S_audio, S_visual, G_audio, G_visual, strict=True)]
    out = {k: 100.0 * float(np.mean([v[k] for v in per_video])) for k in per_video[0]}
    for level in LEVELS:
        for k, parts in TYPES.items():
            out[f"{level}.{k}"] = float(np.mean([out[f"{level}.{p}"] for p in parts]))
    return {f"{lv}.{m}": out[f"{lv}.{m}"] for lv in LEVELS for m in metrics}


def new_metric_mean(scores: dict[str, float]) -> float:
    """Mean of CoLeaF's ten new metrics (Ao, Vo, AV, Type@AVo, Event@AVo at both levels),
    over those in ``scores`` (on single-truth data: AV only, see :func:`scored_metrics`)."""
    names = [f"{lv}.{m}" for lv in LEVELS for m in NEW_METRICS if f"{lv}.{m}" in scores]
    if not names:
        raise KeyError(f"no metric of CoLeaF's new set {NEW_METRICS} in the scores")
    return float(np.mean([scores[k] for k in names]))


def scored_metrics(manifest: Manifest) -> tuple[str, ...]:
    """The metrics of ``METRICS`` that mean something on ``manifest``'s data.

    All of them when its dense labels say in which modality an event is heard or seen
    (LLP).  When they do not (every dense event audio-visual: UnAV-100, AVE-format data),
    A and V ground truth are identical, so the audible-only and visible-only truth is
    always empty and every video would score their 1.0 of "nothing to score": Ao, Vo,
    Type@AVo and Event@AVo are then left out of the metrics, the report and CoLeaF's
    ``new_mean`` model selection.
    """
    separate = any(e.modality in ("audio", "visual") and not e.is_weak for e in manifest.events)
    return METRICS if separate else tuple(m for m in METRICS if m not in SEPARATE_MODALITY_METRICS)


# -- thresholds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One thresholding protocol; ``video_threshold`` may be overridden per class."""

    video_threshold: float = 0.52
    segment_threshold: float = 0.25
    video_filter: Literal["modality", "global"] = "modality"


@dataclass(frozen=True)
class Selected:
    """CMPAE's per-class thresholds: video-level thresholds of ``modalities`` picked per
    class from ``grid`` on the selection split; the rest as in setting ``base``."""

    enabled: bool = True
    base: str = "fixed"
    # cmpae: the released CMPAE rule; class_pooled_f: avpipe's earlier per-class rule
    rule: Literal["cmpae", "class_pooled_f"] = "cmpae"
    modalities: list[Literal["audio", "visual"]] = field(default_factory=lambda: ["visual"])
    grid: list[float] = field(
        default_factory=lambda: [round(0.25 + 0.05 * i, 2) for i in range(10)]
    )


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"
    selection_split: str = "val"
    settings: dict[str, Setting] = field(
        default_factory=lambda: {"fixed": Setting(), "han": Setting(0.5, 0.5, "global")}
    )
    selected: Selected = field(default_factory=Selected)


def binarize(
    seg_prob: np.ndarray,
    filter_prob: np.ndarray,
    n_segments: np.ndarray,
    video_threshold: np.ndarray | float,
    segment_threshold: float,
) -> list[np.ndarray]:
    """Segment predictions ``(C, T_i)`` bool per video from ``seg_prob`` ``(N, T, C)`` and
    ``filter_prob`` ``(N, C)``; ``video_threshold`` is a scalar or ``(C,)``."""
    keep = (
        filter_prob >= np.asarray(video_threshold)[None]
        if np.ndim(video_threshold)
        else filter_prob >= video_threshold
    )
    S = (seg_prob >= segment_threshold) & keep[:, None, :]
    return [S[i, : int(n)].T for i, n in enumerate(n_segments)]


def ground_truth(
    manifest: Manifest, sample_ids: Sequence[str], n_segments: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Dense truth ``(C, T_i)`` bool per sample for audio and visual.

    Audio-visual events (UnAV-100, AVE-format data) count for both modalities.
    """
    by_id = {s.sample_id: s for s in manifest.samples}
    missing = [i for i in sample_ids if i not in by_id]
    if missing:
        raise KeyError(
            f"predictions name {len(missing)} samples not in manifest {manifest.dataset}, "
            f"e.g. {missing[:3]}"
        )
    samples = [by_id[i] for i in sample_ids]
    T = int(max(n_segments, default=1))
    Ga = manifest.segment_targets(samples, ("audio", "audio-visual"), n_segments=T) > 0
    Gv = manifest.segment_targets(samples, ("visual", "audio-visual"), n_segments=T) > 0
    return [Ga[i, : int(n)].T for i, n in enumerate(n_segments)], [
        Gv[i, : int(n)].T for i, n in enumerate(n_segments)
    ]


def _filters(pred: dict[str, np.ndarray], setting: Setting) -> tuple[np.ndarray, np.ndarray]:
    if setting.video_filter == "global":
        if "video_prob" not in pred:
            raise KeyError("video_filter 'global' needs the 'video_prob' array in predictions.npz")
        return pred["video_prob"], pred["video_prob"]
    return pred["video_prob_audio"], pred["video_prob_visual"]


def predict(
    pred: dict[str, np.ndarray], setting: Setting, thresholds: dict[str, np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Binary segment predictions for audio and visual under ``setting`` (optionally
    per-class video thresholds per modality)."""
    fa, fv = _filters(pred, setting)
    th = thresholds or {}
    n = pred["n_segments"]
    Sa = binarize(
        pred["seg_prob_audio"],
        fa,
        n,
        th.get("audio", setting.video_threshold),
        setting.segment_threshold,
    )
    Sv = binarize(
        pred["seg_prob_visual"],
        fv,
        n,
        th.get("visual", setting.video_threshold),
        setting.segment_threshold,
    )
    return Sa, Sv


def _grid_counts(
    seg_prob: np.ndarray,
    filt: np.ndarray,
    n: np.ndarray,
    truth: list[np.ndarray],
    thetas: Sequence[float],
    segment_threshold: float,
) -> np.ndarray:
    """Event TP/FP/FN ``(K, N, 3, C)`` per grid value, video and class.  A class's
    counts depend on its own video threshold only."""
    return np.stack(
        [
            np.stack(
                [
                    event_counts(s, g)
                    for s, g in zip(
                        binarize(seg_prob, filt, n, theta, segment_threshold), truth, strict=True
                    )
                ]
            )
            for theta in thetas
        ]
    )


def _cmpae_choice(base: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """CMPAE's rule: index into the grid per class.  ``base`` (N, 3, C) counts with every
    class at the base threshold, ``grid`` (K, N, 3, C) per grid value.  Class c at grid
    value k, the others at base: score = mean over videos of the per-video F (mean over
    the active classes, 1 when none is active, as ``video_f``); the best score wins, ties
    to the last k."""

    def f_and_active(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tp, fp, fn = c[..., 0, :], c[..., 1, :], c[..., 2, :]
        active = (tp + fp > 0) | (tp + fn > 0)
        f = np.where(active, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        return f, active

    f0, a0 = f_and_active(base)  # (N, C)
    fk, ak = f_and_active(grid)  # (K, N, C)
    f_rest = (f0 * a0).sum(1)[None, :, None] - f0 * a0  # (1, N, C): other classes
    n_rest = a0.sum(1)[None, :, None] - a0
    tot_f, tot_n = f_rest + fk * ak, n_rest + ak
    per_video = np.where(tot_n > 0, tot_f / np.maximum(tot_n, 1), 1.0)  # (K, N, C)
    score = per_video.mean(1)  # (K, C)
    K = score.shape[0]
    return K - 1 - np.argmax(score[::-1], axis=0)  # last of the maxima


def select_thresholds(
    pred: dict[str, np.ndarray],
    Ga: list[np.ndarray],
    Gv: list[np.ndarray],
    setting: Setting,
    sel: Selected,
) -> dict[str, np.ndarray]:
    """Per-class video thresholds ``(C,)`` for each modality in ``sel.modalities``.

    ``sel.rule == "cmpae"`` (CMPAE's ``select_thresholds`` mode): for class c alone, the
    other classes at ``setting.video_threshold``, the grid value with the highest
    dataset-level event F of the modality (mean over the selection videos); ties keep
    the LAST grid value, so a class never active on the split gets the last one.
    ``"class_pooled_f"`` (avpipe's earlier rule): the grid value with the highest event
    F of class c alone, TP/FP/FN pooled over the videos; ties keep the first grid value,
    a class never active on the split keeps the setting's threshold.
    """
    n = pred["n_segments"]
    filt = dict(zip(("audio", "visual"), _filters(pred, setting), strict=True))
    truth = {"audio": Ga, "visual": Gv}
    grid = np.asarray(sel.grid, dtype=float)
    out: dict[str, np.ndarray] = {}
    for m in sel.modalities:
        args = (pred[f"seg_prob_{m}"], filt[m], n, truth[m])
        counts = _grid_counts(*args, list(grid), setting.segment_threshold)
        if sel.rule == "cmpae":
            base = _grid_counts(*args, [setting.video_threshold], setting.segment_threshold)[0]
            out[m] = grid[_cmpae_choice(base, counts)]
            continue
        tp, fp, fn = counts.sum(1).transpose(1, 0, 2)  # (3, K, C) pooled over videos
        denom = 2 * tp + fp + fn
        f = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), -1.0)
        best = np.argmax(f, axis=0)  # first of the maxima
        never = (f < 0).all(0)
        out[m] = np.where(never, setting.video_threshold, grid[best])
    return out


# -- evaluation entry point ----------------------------------------------------------


def _subset(pred: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {
        k: v[idx]
        for k, v in pred.items()
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == len(pred["sample_id"])
    }


def split_of(manifest: Manifest, pred: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    splits = {s.sample_id: s.split for s in manifest.samples}
    idx = np.asarray(
        [i for i, s in enumerate(pred["sample_id"]) if splits.get(str(s)) == split], dtype=np.int64
    )
    if not len(idx):
        raise ValueError(f"predictions hold no sample of split {split!r} of {manifest.dataset}")
    return _subset(pred, idx)


def evaluate(
    manifest: Manifest, predictions: dict[str, np.ndarray], cfg: dict[str, Any]
) -> EvalResult:
    conf = from_dict(EvalConfig, cfg, where="avvp.evaluate")
    pred = {k: np.asarray(v) for k, v in predictions.items()}
    pred["sample_id"] = np.asarray([str(s) for s in pred["sample_id"]])
    test = split_of(manifest, pred, conf.split)
    Ga, Gv = ground_truth(manifest, list(test["sample_id"]), test["n_segments"])
    names = scored_metrics(manifest)
    metrics: dict[str, float] = {}
    thresholds: dict[str, np.ndarray] = {}
    results: dict[str, dict[str, float]] = {}
    for name, setting in conf.settings.items():
        results[name] = dataset_scores(*predict(test, setting), Ga, Gv, names)
    if conf.selected.enabled:
        if conf.selected.base not in conf.settings:
            raise KeyError(
                f"avvp.evaluate.selected.base {conf.selected.base!r} is not a setting "
                f"({sorted(conf.settings)})"
            )
        base = conf.settings[conf.selected.base]
        val = split_of(manifest, pred, conf.selection_split)
        thresholds = select_thresholds(
            val,
            *ground_truth(manifest, list(val["sample_id"]), val["n_segments"]),
            base,
            conf.selected,
        )
        results["selected"] = dataset_scores(*predict(test, base, thresholds), Ga, Gv, names)
    for name, res in results.items():
        metrics.update({f"{name}.{k}": v for k, v in res.items()})
    metrics["n_videos"] = len(test["sample_id"])
    table_rows = [
        [name, lv] + [round(res[f"{lv}.{m}"], 3) for m in names]
        for name, res in results.items()
        for lv in LEVELS
    ]
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "scores": (["setting", "level", *names], table_rows)
    }
    if thresholds:
        tables["thresholds"] = (
            ["class", *[f"video_threshold_{m}" for m in thresholds]],
            [
                [c, *[float(thresholds[m][i]) for m in thresholds]]
                for i, c in enumerate(manifest.classes)
            ],
        )
    info: dict[str, Any] = {"split": conf.split, "selection_split": conf.selection_split}
    if names != METRICS:
        info["metrics_left_out"] = {
            "metrics": [m for m in METRICS if m not in names],
            "reason": "no audio-only or visual-only dense label: A and V ground truth are "
            "identical, so audible-only and visible-only truth is always empty",
        }
    if thresholds:
        info["selected_thresholds"] = {m: v.tolist() for m, v in thresholds.items()}
    if manifest.format == "unav100":
        info["protocol"] = (
            "avpipe weak UnAV-100 protocol: G_a = G_v = audio-visual events, variable T; report AV"
        )
    return EvalResult(metrics=metrics, tables=tables, info=info)
