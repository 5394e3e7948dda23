"""UnAV-100 (Geng et al., CVPR 2023): detection mAP at tIoU 0.1:0.1:0.9, the dataset's
official metric, next to the weak audio-visual F-scores of :mod:`avpipe.metrics.avvp`.

**mAP** follows the reference evaluation (``ttgeng233/UnAV`` ``libs/utils/metrics.py``,
``ANETdetection``, itself adapted from ActivityNet's ``eval_detection.py``):

* ground truth: the events of the split's present videos, in seconds, without
  duplicates (same class, onset and offset within 1e-3 s).  Every event counts, also
  those of clips shorter than one window: such a clip has no segment, so nothing can
  find its events, as in the reference, whose features for it are empty;
* per class with at least one ground-truth event in the split (the reference indexes
  only those), the class's predictions in decreasing score order; at each tIoU
  threshold separately, a prediction takes the not yet taken ground-truth event of its
  video with the highest tIoU if that tIoU reaches the threshold (a TP), else it is an
  FP; AP is the area under the interpolated precision-recall curve (VOC 2011: the
  precision made non-increasing, summed over the recall steps), 0 without predictions;
* mAP at a threshold = the mean AP over those classes; ``mAP`` = their mean over the
  thresholds (the paper's "Avg.").

Departures from the reference: equal scores keep the predictions' order (the
reference's ``argsort()[::-1]`` leaves ties unspecified); predictions of a class without
ground truth in the split are dropped (the reference's label remapping files them under
another class); no soft-NMS (the intervals below do not overlap within a class).

**Localisation output** (HAN and CoLeaF predict segments, not intervals): per setting of
``avvp.evaluate``, a segment is audio-visual for class c when both its audio and its
visual prediction are (avpipe.metrics.avvp.predict); each run of consecutive such
segments is one interval, scored by the mean over its segments of
``min(P_audio, P_visual)`` (the audio-visual prediction is their AND).  Segment t stands
for the hop-long slice centred in its window, ``[t*hop + (win-hop)/2, (t+1)*hop +
(win-hop)/2)`` (on the 1-s grid: ``[t, t+1)``), the first real segment from 0 s and the
last to the clip's end.

Metrics (``metrics.json``, percent): ``<setting>.detection@tIoU<t>.mAP`` per threshold
(e.g. ``fixed.detection@tIoU0.5.mAP``) and their mean ``<setting>.detection.mAP``, plus
every metric of the ``avvp`` task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest, Sample
from avpipe.metrics import EvalResult, avvp

DUPLICATE_TOL_S = 1e-3


@dataclass(frozen=True)
class Detection:
    """``avvp.evaluate.detection``: the tIoU thresholds (reference: linspace(0.1, 0.9, 9))."""

    tiou_thresholds: list[float] = field(
        default_factory=lambda: [round(0.1 * k, 1) for k in range(1, 10)]
    )


@dataclass(frozen=True)
class Interval:
    video_id: str
    label: int
    start: float
    end: float
    score: float = 1.0


def threshold_key(t: float) -> str:
    """``detection@tIoU0.5``: the variant part of a per-threshold metric name (the metric
    itself stays ``mAP`` after the last dot, as the report splits names)."""
    return f"detection@tIoU{t:g}"


# -- average precision ---------------------------------------------------------------


def tiou(target: tuple[float, float], candidates: np.ndarray) -> np.ndarray:
    """Temporal IoU of ``target`` (start, end) with each row of ``candidates`` (n, 2)."""
    inter = np.clip(
        np.minimum(target[1], candidates[:, 1]) - np.maximum(target[0], candidates[:, 0]), 0, None
    )
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 interpolated AP of a precision-recall curve (points in score order)."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def class_ap(
    truth: Sequence[Interval], preds: Sequence[Interval], thresholds: Sequence[float]
) -> np.ndarray:
    """AP of one class at each tIoU threshold ``(len(thresholds),)``."""
    ap = np.zeros(len(thresholds))
    if not preds or not truth:
        return ap
    by_video: dict[str, list[int]] = defaultdict(list)
    for j, g in enumerate(truth):
        by_video[g.video_id].append(j)
    bounds = np.asarray([(g.start, g.end) for g in truth], dtype=np.float64)
    order = sorted(range(len(preds)), key=lambda i: -preds[i].score)
    taken = np.zeros((len(thresholds), len(truth)), dtype=bool)
    tp = np.zeros((len(thresholds), len(order)))
    for k, i in enumerate(order):
        cand = by_video.get(preds[i].video_id, [])
        if not cand:
            continue
        ious = tiou((preds[i].start, preds[i].end), bounds[cand])
        ranked = np.argsort(-ious, kind="stable")
        for h, thr in enumerate(thresholds):
            for r in ranked:
                if ious[r] < thr:
                    break
                if not taken[h, cand[r]]:
                    taken[h, cand[r]] = True
                    tp[h, k] = 1.0
                    break
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(1.0 - tp, axis=1)
    for h in range(len(thresholds)):
        ap[h] = interpolated_ap(tp_cum[h] / (tp_cum[h] + fp_cum[h]), tp_cum[h] / len(truth))
    return ap


def dedupe(truth: Sequence[Interval]) -> list[Interval]:
    """``truth`` without repeats of an event (same video and class, ends within 1e-3 s)."""
    kept: list[Interval] = []
    for g in truth:
        if not any(
            k.video_id == g.video_id
            and k.label == g.label
            and abs(k.start - g.start) <= DUPLICATE_TOL_S
            and abs(k.end - g.end) <= DUPLICATE_TOL_S
            for k in kept
        ):
            kept.append(g)
    return kept


def detection_map(
    truth: Sequence[Interval], preds: Sequence[Interval], thresholds: Sequence[float]
) -> tuple[np.ndarray, list[int]]:
    """AP ``(len(thresholds), K)`` of the K classes with ground truth (sorted) and those classes."""
    truth = dedupe(truth)
    classes = sorted({g.label for g in truth})
    ap = np.zeros((len(thresholds), len(classes)))
    for j, c in enumerate(classes):
        ap[:, j] = class_ap(
            [g for g in truth if g.label == c], [p for p in preds if p.label == c], thresholds
        )
    return ap, classes


# -- intervals from segment predictions ----------------------------------------------


def segment_bounds(
    t0: int, t1: int, n: int, hop: float, win: float, duration: float
) -> tuple[float, float]:
    """Seconds covered by the run of segments ``[t0, t1)`` of a clip with ``n`` of them."""
    shift = (win - hop) / 2
    start = 0.0 if t0 == 0 else t0 * hop + shift
    end = duration if t1 == n else t1 * hop + shift
    return max(0.0, start), min(duration, end)


def intervals(
    S: np.ndarray, P: np.ndarray, video_id: str, hop: float, win: float, duration: float
) -> list[Interval]:
    """Scored intervals of one video from its binary predictions ``S`` ``(C, T)`` and
    scores ``P`` ``(C, T)`` (T = its real segments): one per run of positive segments."""
    out = []
    n = S.shape[1]
    for c in np.flatnonzero(S.any(1)):
        for t0, t1 in avvp.runs(S[c]):
            start, end = segment_bounds(t0, t1, n, hop, win, duration)
            out.append(Interval(video_id, int(c), start, end, float(P[c, t0:t1].mean())))
    return out


def ground_truth(manifest: Manifest, samples: Sequence[Sample]) -> list[Interval]:
    """The timed events of ``samples`` as intervals (class index, seconds)."""
    idx = manifest.class_index
    by = manifest.events_by_sample()
    return [
        Interval(s.sample_id, idx[e.label], float(e.onset), float(e.offset))
        for s in samples
        for e in by.get(s.sample_id, ())
        if not e.is_weak and e.onset is not None and e.offset is not None
    ]


def predicted_intervals(
    manifest: Manifest,
    test: dict[str, np.ndarray],
    setting: avvp.Setting,
    thresholds: dict[str, np.ndarray] | None = None,
) -> list[Interval]:
    """Intervals of every video of ``test`` (a split of predictions.npz) under ``setting``."""
    by_id = {s.sample_id: s for s in manifest.samples}
    Sa, Sv = avvp.predict(test, setting, thresholds)
    P = np.minimum(test["seg_prob_audio"], test["seg_prob_visual"])
    out = []
    for i, sid in enumerate(test["sample_id"]):
        n = int(test["n_segments"][i])
        out += intervals(
            Sa[i] & Sv[i],
            P[i, :n].T,
            str(sid),
            manifest.segment_hop,
            manifest.segment_win,
            by_id[str(sid)].duration,
        )
    return out


# -- evaluation entry point ----------------------------------------------------------


def evaluate(
    manifest: Manifest, predictions: dict[str, np.ndarray], cfg: dict[str, Any]
) -> EvalResult:
    """The ``avvp`` task's F-scores plus detection mAP per setting (module docstring)."""
    cfg = dict(cfg)
    det = from_dict(Detection, cfg.pop("detection", {}), where="avvp.evaluate.detection")
    conf = from_dict(avvp.EvalConfig, cfg, where="avvp.evaluate")
    result = avvp.evaluate(manifest, predictions, cfg)
    pred = {k: np.asarray(v) for k, v in predictions.items()}
    pred["sample_id"] = np.asarray([str(s) for s in pred["sample_id"]])
    test = avvp.split_of(manifest, pred, conf.split)
    samples = [s for s in manifest.split(conf.split) if s.present]
    truth = ground_truth(manifest, samples)
    if not truth:
        raise ValueError(f"{manifest.dataset}: split {conf.split!r} has no timed event to detect")
    settings: dict[str, tuple[avvp.Setting, dict[str, np.ndarray] | None]] = {
        name: (s, None) for name, s in conf.settings.items()
    }
    if conf.selected.enabled:
        chosen = result.info.get("selected_thresholds", {})
        settings["selected"] = (
            conf.settings[conf.selected.base],
            {m: np.asarray(v) for m, v in chosen.items()},
        )
    thr = list(det.tiou_thresholds)
    rows = []
    for name, (setting, thresholds) in settings.items():
        ap, classes = detection_map(
            truth, predicted_intervals(manifest, test, setting, thresholds), thr
        )
        per_thr = 100.0 * ap.mean(1)
        for t, v in zip(thr, per_thr, strict=True):
            result.metrics[f"{name}.{threshold_key(t)}.mAP"] = float(v)
        result.metrics[f"{name}.detection.mAP"] = float(per_thr.mean())
        rows.append([name, *[round(float(v), 3) for v in per_thr], round(float(per_thr.mean()), 3)])
    scored = set(test["sample_id"].tolist())
    unscored = [s.sample_id for s in samples if s.sample_id not in scored]
    result.tables["detection"] = (["setting", *[f"mAP@{t:g}" for t in thr], "mAP"], rows)
    result.info.update(
        detection_protocol=(
            "UnAV-100 reference mAP (ttgeng233/UnAV ANETdetection): per class with ground "
            "truth, interpolated AP, averaged over classes; intervals = runs of audio-visual "
            "segments scored by mean min(P_audio, P_visual)"
        ),
        tiou_thresholds=thr,
        n_events=len(dedupe(truth)),
        n_detection_classes=len(classes),
        videos_without_predictions=unscored,
    )
    return result
