"""AVE segment accuracy (YapengTian/AVE-ECCV18 ``supervised_main.py``; as in jasongief/CPSP).

Every segment of every evaluated sample counts once; its target is one of C + 1
labels (the C event classes and background = index C).  Accuracy is pooled over
all segments of the split (= the reference code's batch-size-weighted mean).

Predictions file (``predictions.npz``) arrays used here:
    ``sample_id``  (N,) str
    ``segment_pred``  (N, T) int: predicted label per segment, background = C
Segments beyond a sample's ``n_segments`` are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.metrics import EvalResult


def segment_labels(
    manifest: Manifest, samples: list[Sample], n_segments: int | None = None
) -> np.ndarray:
    """Target label per segment ``(N, T)`` int64, background = C (= len(classes)).

    A segment with several positive classes (rows of one video merged) takes the
    last listed class, as the released AVE label tensor does.
    """
    onehot = manifest.segment_targets(samples, ("audio-visual",), n_segments=n_segments)
    C = len(manifest.classes)
    labels = np.full(onehot.shape[:2], C, dtype=np.int64)
    pos = onehot.any(axis=2)
    # the last positive index: argmax over the reversed class axis
    last = C - 1 - np.argmax(onehot[:, :, ::-1], axis=2)
    labels[pos] = last[pos]
    return labels


def segment_accuracy(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> float:
    """Pooled accuracy in percent over segments where ``valid`` is True."""
    n = int(valid.sum())
    if n == 0:
        raise ValueError("no valid segments to score")
    return float((pred[valid] == target[valid]).sum() * 100.0 / n)


def per_class_accuracy(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray, n_labels: int
) -> np.ndarray:
    """Accuracy (%) per target label; NaN for labels with no valid segment."""
    out = np.full(n_labels, np.nan)
    for c in range(n_labels):
        sel = valid & (target == c)
        if sel.any():
            out[c] = (pred[sel] == c).mean() * 100.0
    return out


def evaluate(
    manifest: Manifest, predictions: dict[str, np.ndarray], cfg: dict[str, Any]
) -> EvalResult:
    by_id = {s.sample_id: s for s in manifest.samples}
    ids = [str(s) for s in predictions["sample_id"]]
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise KeyError(
            f"predictions name {len(unknown)} samples not in the manifest, e.g. {unknown[:3]}"
        )
    samples = [by_id[i] for i in ids]
    pred = np.asarray(predictions["segment_pred"])
    T = pred.shape[1]
    target = segment_labels(manifest, samples, n_segments=T)
    valid = np.arange(T)[None, :] < np.asarray([s.n_segments for s in samples])[:, None]
    C = len(manifest.classes)
    names = list(manifest.classes) + ["background"]
    pc = per_class_accuracy(pred, target, valid, C + 1)
    rows = [
        [
            i,
            names[i],
            int((valid & (target == i)).sum()),
            None if np.isnan(a) else round(float(a), 3),
        ]
        for i, a in enumerate(pc)
    ]
    return EvalResult(
        metrics={
            "accuracy": segment_accuracy(pred, target, valid),
            "n_samples": len(samples),
            "n_segments": int(valid.sum()),
        },
        tables={"per_class": (["index", "class", "n_segments", "accuracy"], rows)},
    )
