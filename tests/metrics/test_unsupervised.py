"""Pseudo-class mapping, purity and mapped segment accuracy on a worked example.

Train (6 videos): pseudo-labels z = 0 0 0 1 1 3, classes y = a a b b b c; K = 4
pseudo-classes > 3 classes, pseudo-class 2 empty.
Mapping: 0 -> a (2 of 3), 1 -> b, 2 -> none, 3 -> c.  Purity = (2 + 2 + 1) / 6.
Test (2 videos, T = 4): t0 class a on [1, 3), pseudo 0, foreground 0110 -> 4/4 right;
t1 class b on [0, 2), pseudo 2 (unmapped), foreground 1100 -> 2/4 right (background).
Accuracy = 6 / 8 = 75 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.metrics import get_task
from avpipe.metrics.unsupervised import UNMAPPED, contingency, fit_mapping, purity


def _manifest() -> Manifest:
    train_y = ["a", "a", "b", "b", "b", "c"]
    samples = [Sample(f"r{i}", f"r{i}", "train", "", 4.0, 4) for i in range(6)]
    samples += [Sample("t0", "t0", "test", "", 4.0, 4), Sample("t1", "t1", "test", "", 4.0, 4)]
    events = [Event(f"r{i}", c, "audio-visual", 0.0, 4.0) for i, c in enumerate(train_y)]
    events += [
        Event("t0", "a", "audio-visual", 1.0, 3.0),
        Event("t1", "b", "audio-visual", 0.0, 2.0),
    ]
    return Manifest("toy", "ave", ["a", "b", "c"], samples, events)


def _predictions() -> dict[str, np.ndarray]:
    return {
        "sample_id": np.array(["t0", "t1"]),
        "split": np.array(["test", "test"]),
        "video_pseudo": np.array([0, 2]),
        "foreground": np.array([[0, 1, 1, 0], [1, 1, 0, 0]], dtype=bool),
        "n_pseudo_classes": np.int64(4),
        "train_sample_id": np.array([f"r{i}" for i in range(6)]),
        "train_pseudo_label": np.array([0, 0, 0, 1, 1, 3]),
    }


def test_mapping_and_purity_by_hand() -> None:
    table = contingency(np.array([0, 0, 0, 1, 1, 3]), np.array([0, 0, 1, 1, 1, 2]), 4, 4)
    assert fit_mapping(table).tolist() == [0, 1, UNMAPPED, 2]
    assert purity(table) == pytest.approx(500 / 6)


def test_evaluate_worked_example() -> None:
    res = get_task("unsupervised")(_manifest(), _predictions(), {"split": "test"})
    m = res.metrics
    assert m["purity"] == pytest.approx(500 / 6)
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["nonempty_pseudo_classes"] == 3
    assert m["unmapped_pseudo_classes"] == 1
    assert m["unmapped_videos"] == 1
    mapping = {r[0]: r[2] for r in res.tables["mapping"][1]}
    assert mapping == {0: "a", 1: "b", 2: None, 3: "c"}
    per_class = {r[1]: r[3] for r in res.tables["per_class"][1]}
    assert per_class["a"] == pytest.approx(100.0)  # t0's two event segments
    assert per_class["b"] == pytest.approx(0.0)  # t1's segments: unmapped pseudo-class
    assert per_class["background"] == pytest.approx(100.0)


def test_perfect_clustering_scores_full_nmi_ari() -> None:
    p = _predictions()
    p["train_pseudo_label"] = np.array([3, 3, 1, 1, 1, 0])  # a permutation of the classes
    m = get_task("unsupervised")(_manifest(), p, {"split": "test"}).metrics
    assert m["purity"] == pytest.approx(100.0)
    assert m["nmi"] == pytest.approx(100.0) and m["ari"] == pytest.approx(100.0)


def test_missing_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="val"):
        get_task("unsupervised")(_manifest(), _predictions(), {"split": "val"})
