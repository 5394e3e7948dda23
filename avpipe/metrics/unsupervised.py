"""Unsupervised evaluation of CLCL (Bao et al., AAAI 2023).

Pseudo-class mapping and purity as in the paper; AVE segment accuracy as in
YapengTian/AVE-ECCV18.

1. Mapping pseudo-class -> class, fitted on TRAINING samples only and then frozen:
   ``map(k) = argmax_c |{i : z_i = k, class_i = c}|`` (many-to-one; ties -> lowest class
   index).  Pseudo-classes without training samples map to nothing; test predictions
   of such a pseudo-class count as wrong on their foreground segments (logged).
2. Purity on the training samples: ``(1/N) sum_k max_c |{i : z_i = k, class_i = c}|``
   x 100 (paper Table 5), plus NMI, ARI and the number of non-empty pseudo-classes.
3. AVE segment accuracy (:mod:`avpipe.metrics.ave`) on the evaluated split: foreground
   segments take the
   mapped class of the video's pseudo-class, the others background (index C).

A sample's class is its most frequent event class over segments (AVE: its one
event); a training sample without any event has class "background" (index C).

Predictions (``predictions.npz`` of an EM round) arrays used here:
    ``sample_id`` (N,) str, ``split`` (N,) str, ``video_pseudo`` (N,) int,
    ``foreground`` (N, T) bool, ``n_pseudo_classes`` () int,
    ``train_sample_id`` (M,) str, ``train_pseudo_label`` (M,) int (E-step labels),
    optionally ``train_localizer_label`` (M,) int (the M-step model's labels).
cfg: ``split`` (default "test"): which split's accuracy to report.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.metrics import EvalResult
from avpipe.metrics.ave import per_class_accuracy, segment_accuracy, segment_labels

log = logging.getLogger(__name__)
UNMAPPED = -1


def sample_classes(manifest: Manifest, samples: list[Sample]) -> np.ndarray:
    """Video-level class per sample (N,) int: most frequent segment class, background = C."""
    labels = segment_labels(manifest, samples)
    C = len(manifest.classes)
    out = np.full(len(samples), C, dtype=np.int64)
    for i, row in enumerate(labels):
        ev = row[row < C]
        if ev.size:
            out[i] = np.bincount(ev, minlength=C).argmax()
    return out


def contingency(
    pseudo: np.ndarray, classes: np.ndarray, n_pseudo: int, n_classes: int
) -> np.ndarray:
    """(n_pseudo, n_classes) counts of samples with pseudo-label k and class c."""
    table = np.zeros((n_pseudo, n_classes), dtype=np.int64)
    np.add.at(table, (pseudo, classes), 1)
    return table


def fit_mapping(table: np.ndarray) -> np.ndarray:
    """map(k) (n_pseudo,) int: majority class of pseudo-class k; UNMAPPED when empty."""
    mapping = table.argmax(1)
    mapping[table.sum(1) == 0] = UNMAPPED
    return mapping


def purity(table: np.ndarray) -> float:
    """Percent of samples whose pseudo-class's majority class is their own class."""
    n = table.sum()
    if n == 0:
        raise ValueError("purity of an empty contingency table")
    return float(table.max(1).sum() * 100.0 / n)


def segment_predictions(
    video_pseudo: np.ndarray, fg: np.ndarray, mapping: np.ndarray, background: int
) -> np.ndarray:
    """(N, T) labels: mapped class on foreground, ``background`` elsewhere, UNMAPPED for
    foreground segments of a pseudo-class that has no mapping (always wrong)."""
    mapped = mapping[video_pseudo]
    return np.where(fg, mapped[:, None], background)


def _samples(manifest: Manifest, ids: np.ndarray) -> list[Sample]:
    by_id = {s.sample_id: s for s in manifest.samples}
    unknown = [str(i) for i in ids if str(i) not in by_id]
    if unknown:
        raise KeyError(
            f"predictions name {len(unknown)} samples not in the manifest, e.g. {unknown[:3]}"
        )
    return [by_id[str(i)] for i in ids]


def _cluster_metrics(
    prefix: str, table: np.ndarray, z: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    return {
        f"{prefix}purity": purity(table),
        f"{prefix}nmi": float(normalized_mutual_info_score(y, z) * 100.0),
        f"{prefix}ari": float(adjusted_rand_score(y, z) * 100.0),
        f"{prefix}nonempty_pseudo_classes": int((table.sum(1) > 0).sum()),
    }


def evaluate(
    manifest: Manifest, predictions: dict[str, np.ndarray], cfg: dict[str, Any]
) -> EvalResult:
    if not manifest.classes:
        raise ValueError(
            f"dataset {manifest.dataset!r} has no classes: nothing to evaluate against"
        )
    split = cfg.get("split", "test")
    C = len(manifest.classes)
    K = int(predictions["n_pseudo_classes"])
    names = [*manifest.classes, "background"]
    train = _samples(manifest, predictions["train_sample_id"])
    y_train = sample_classes(manifest, train)
    z_train = np.asarray(predictions["train_pseudo_label"], dtype=np.int64)
    table = contingency(z_train, y_train, K, C + 1)
    mapping = fit_mapping(table)
    metrics: dict[str, float] = _cluster_metrics("", table, z_train, y_train)
    if "train_localizer_label" in predictions:
        z_loc = np.asarray(predictions["train_localizer_label"], dtype=np.int64)
        metrics.update(
            _cluster_metrics("localizer_", contingency(z_loc, y_train, K, C + 1), z_loc, y_train)
        )
    metrics["unmapped_pseudo_classes"] = int((mapping == UNMAPPED).sum())

    sel = np.asarray(predictions["split"]) == split
    if not sel.any():
        raise ValueError(f"predictions hold no sample of split {split!r}")
    samples = _samples(manifest, np.asarray(predictions["sample_id"])[sel])
    fg = np.asarray(predictions["foreground"])[sel].astype(bool)
    vp = np.asarray(predictions["video_pseudo"], dtype=np.int64)[sel]
    T = fg.shape[1]
    target = segment_labels(manifest, samples, n_segments=T)
    valid = np.arange(T)[None, :] < np.asarray([s.n_segments for s in samples])[:, None]
    pred = segment_predictions(vp, fg, mapping, C)
    n_unmapped = int((mapping[vp] == UNMAPPED).sum())
    if n_unmapped:
        log.warning(
            "%d %s videos predicted an unmapped pseudo-class: their foreground counts as wrong",
            n_unmapped,
            split,
        )
    metrics.update(
        accuracy=segment_accuracy(pred, target, valid),
        unmapped_videos=n_unmapped,
        n_samples=len(samples),
        n_segments=int(valid.sum()),
        n_train_samples=len(train),
    )
    pc = per_class_accuracy(pred, target, valid, C + 1)
    per_class = [
        [
            i,
            names[i],
            int((valid & (target == i)).sum()),
            None if np.isnan(a) else round(float(a), 3),
        ]
        for i, a in enumerate(pc)
    ]
    map_rows = [
        [
            k,
            int(table[k].sum()),
            None if mapping[k] == UNMAPPED else names[mapping[k]],
            int(table[k].max()),
            None if table[k].sum() == 0 else round(100.0 * table[k].max() / table[k].sum(), 3),
        ]
        for k in range(K)
    ]
    return EvalResult(
        metrics=metrics,
        tables={
            "per_class": (["index", "class", "n_segments", "accuracy"], per_class),
            "mapping": (["pseudo_class", "n_train", "class", "n_majority", "purity"], map_rows),
        },
        info={"split": split, "mapping_fitted_on": "train", "n_pseudo_classes": K, "n_classes": C},
    )
