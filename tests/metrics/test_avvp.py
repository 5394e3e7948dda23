"""AVVP metrics (avpipe.metrics.avvp) on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.metrics import avvp
from avpipe.metrics.avvp import (
    dataset_scores,
    event_counts,
    runs,
    segment_counts,
    video_f,
    video_scores,
)


def m(*rows: str) -> np.ndarray:
    """(C, T) bool from strings like '0110'."""
    return np.array([[ch == "1" for ch in r] for r in rows])


def test_runs_touching_boundaries() -> None:
    assert runs(np.array([1, 1, 0, 0, 1, 0, 1, 1], bool)) == [(0, 2), (4, 5), (6, 8)]
    assert runs(np.ones(5, bool)) == [(0, 5)]
    assert runs(np.zeros(3, bool)) == []


def test_segment_counts_and_f() -> None:
    S = m("1100000000", "0000000000", "0011110000")
    G = m("1110000000", "0000000000", "0000000000")
    c = segment_counts(S, G)
    assert c.T.tolist() == [[2, 0, 1], [0, 0, 0], [0, 4, 0]]  # per class: TP, FP, FN
    # class 0: F = 4/5; class 1 skipped (nothing anywhere); class 2: F = 0
    assert video_f(c) == pytest.approx((0.8 + 0.0) / 2)


def test_empty_video_scores_one_everywhere() -> None:
    z = m("0000", "0000")
    scores = video_scores(z, z, z, z)
    assert set(scores.values()) == {1.0}
    assert len(scores) == 2 * 7


def test_event_iou_exactly_half_is_tp() -> None:
    # 2-segment prediction inside a 4-segment truth: IoU = 2/4 -> TP, nothing missed
    assert event_counts(m("0011000000"), m("0011110000")).ravel().tolist() == [1, 0, 0]
    # 1 of 3 overlapping: IoU = 1/3 -> FP and FN
    assert event_counts(m("0010000000"), m("0011100000")).ravel().tolist() == [0, 1, 1]
    # shifted overlap [2,6) vs [4,8): inter 2, union 6 -> miss
    assert event_counts(m("0011110000"), m("0000111100")).ravel().tolist() == [0, 1, 1]
    # shifted overlap [2,5) vs [3,6): inter 2, union 4 -> exactly 0.5 -> hit
    assert event_counts(m("0011100000"), m("0001110000")).ravel().tolist() == [1, 0, 0]


def test_event_no_one_to_one_and_touching_clip_boundaries() -> None:
    # two predictions [0,2) and [3,5) inside truth [0,5): IoU 2/5 and 2/5 -> both FP, truth FN
    assert event_counts(m("1101100000"), m("1111100000")).ravel().tolist() == [0, 2, 1]
    # events touching both clip ends: truth [0,3) and [7,10), prediction [0,2) and [8,10): both hits
    c = event_counts(m("1100000011"), m("1110000111"))
    assert c.ravel().tolist() == [2, 0, 0]
    # the same truth run matched by two predictions: [0,2) and [3,4) vs truth [0,4):
    # [0,2): 2/4 hit; [3,4): 1/4 miss -> TP 1, FP 1, truth found -> FN 0
    assert event_counts(m("1101000000"), m("1111000000")).ravel().tolist() == [1, 1, 0]


def test_video_scores_ao_vo_and_pooled() -> None:
    # one class, T = 4.  Truth: audio on 0-1, visual on 1-2 -> AV at 1, Ao at 0, Vo at 2.
    Ga, Gv = m("1100"), m("0110")
    # prediction: audio on 0-2, visual on 2-3 -> AV at 2, Ao at 0-1, Vo at 3
    Sa, Sv = m("1110"), m("0011")
    s = video_scores(Sa, Sv, Ga, Gv)
    # segment A: TP 2, FP 1, FN 0 -> 4/5; V: TP 1, FP 1, FN 1 -> 2/4
    assert s["segment.A"] == pytest.approx(0.8)
    assert s["segment.V"] == pytest.approx(0.5)
    # AV: S {2}, G {1} -> TP 0 -> 0; Ao: S {0,1}, G {0} -> 2/3; Vo: S {3}, G {2} -> 0
    assert s["segment.AV"] == 0.0
    assert s["segment.Ao"] == pytest.approx(2 / 3)
    assert s["segment.Vo"] == 0.0
    # Event@AV pools counts: TP 3, FP 2, FN 1 -> 6/9
    assert s["segment.Event@AV"] == pytest.approx(6 / 9)
    # Event@AVo: Ao (1,1,0) + Vo (0,1,1) -> 2/(2+2+1)
    assert s["segment.Event@AVo"] == pytest.approx(2 / 5)
    # events: A pred [0,3) vs gt [0,2): IoU 2/3 hit -> F 1; V pred [2,4) vs gt [1,3): 1/3 -> 0
    assert s["event.A"] == 1.0
    assert s["event.V"] == 0.0
    # Ao pred [0,2) vs gt [0,1): IoU 1/2 -> hit -> 1.0
    assert s["event.Ao"] == 1.0


def test_dataset_type_metrics_and_variable_length() -> None:
    # video 1 (T=3): perfect audio, no visual at all; video 2 (T=5): empty truth, empty prediction
    Ga1, Gv1 = m("111"), m("000")
    Z5 = m("00000")
    scores = dataset_scores([Ga1, Z5], [Gv1, Z5], [Ga1, Z5], [Gv1, Z5])
    assert all(v == pytest.approx(100.0) for v in scores.values())
    # now predict visual on video 1 as well: V = 0 (FP only), AV = 0, Ao: S empty vs G full -> 0
    scores = dataset_scores([Ga1, Z5], [Ga1, Z5], [Ga1, Z5], [Gv1, Z5])
    assert scores["segment.A"] == pytest.approx(100.0)
    assert scores["segment.V"] == pytest.approx(50.0)
    assert scores["segment.AV"] == pytest.approx(50.0)
    assert scores["segment.Type@AV"] == pytest.approx((100 + 50 + 50) / 3)
    assert scores["segment.Ao"] == pytest.approx(50.0)
    assert scores["segment.Vo"] == pytest.approx(100.0)  # nothing visible-only anywhere
    assert scores["segment.Type@AVo"] == pytest.approx((50 + 100 + 50) / 3)


def _toy_manifest() -> Manifest:
    classes = ["dog", "car"]
    samples = [
        Sample(f"s{i}", f"s{i}", split, "", 4.0, 4)
        for i, split in enumerate(["val", "val", "test"])
    ]
    events = [
        Event("s0", "dog", "unspecified"),
        Event("s0", "dog", "visual", 0.0, 4.0),
        Event("s1", "dog", "visual", 1.0, 3.0),
        Event("s2", "dog", "audio", 0.0, 2.0),
        Event("s2", "car", "visual", 2.0, 4.0),
    ]
    return Manifest("toy", "llp", classes, samples, events)


def test_evaluate_settings_and_selected_thresholds() -> None:
    man = _toy_manifest()
    C, T = 2, 4
    seg_a = np.zeros((3, T, C))
    seg_v = np.zeros((3, T, C))
    seg_a[2, :2, 0] = 0.9  # test: audio dog right
    seg_v[2, 2:, 1] = 0.9  # test: visual car right
    seg_v[:2, :, 0] = 0.9  # val: visual dog everywhere (s1 only 1-3)
    vid_a = np.array([[0.1, 0.1], [0.1, 0.1], [0.8, 0.1]])
    # visual "car" on test has video prob 0.4: below 0.52, so the fixed setting misses it;
    # the selected threshold for car stays 0.52 (never active on val); dog's is picked on val
    vid_v = np.array([[0.9, 0.1], [0.3, 0.1], [0.1, 0.4]])
    pred = {
        "sample_id": np.array(["s0", "s1", "s2"]),
        "n_segments": np.array([4, 4, 4]),
        "seg_prob_audio": seg_a,
        "seg_prob_visual": seg_v,
        "video_prob_audio": vid_a,
        "video_prob_visual": vid_v,
        "video_prob": np.maximum(vid_a, vid_v),
    }
    res = avvp.evaluate(man, pred, {})
    mt = res.metrics
    assert mt["n_videos"] == 1
    assert mt["fixed.segment.A"] == pytest.approx(100.0)
    assert mt["fixed.segment.V"] == pytest.approx(0.0)  # car missed
    # han setting: global filter max(a, v) = 0.4 for car -> missed too; dog visual filter
    # 0.8 passes but the visual dog probability is 0 on the test video
    assert mt["han.segment.V"] == pytest.approx(0.0)
    # selection on val: dog visual thresholds: s0 (p 0.9) is a hit at any theta <= 0.9;
    # s1 (p 0.3, prediction [0,4) vs truth [1,3): IoU 2/4 hit) counts only for theta <= 0.3.
    # CMPAE's rule: mean event V over s0, s1 = 1 at 0.25 and 0.3, 0.5 above -> the last
    # best, 0.3; car is never active on val: every grid value ties -> the last, 0.7
    th = dict((row[0], row[1]) for row in res.tables["thresholds"][1])
    assert th == {"dog": 0.3, "car": 0.7}
    assert ("selected", "segment") in {(r[0], r[1]) for r in res.tables["scores"][1]}
    # avpipe's earlier rule: the first best grid value; car keeps the base 0.52
    res = avvp.evaluate(man, pred, {"selected": {"rule": "class_pooled_f"}})
    th = dict((row[0], row[1]) for row in res.tables["thresholds"][1])
    assert th == {"dog": 0.25, "car": 0.52}


def _runs(row: str) -> np.ndarray:
    return np.array([c == "1" for c in row])


def test_select_thresholds_cmpae_rule_vs_pooled_rule_by_hand() -> None:
    # two val videos, 6 segments, classes dog (0) and car (1), visual only
    # A (dog video prob 0.6): dog truth 3 events, predicted exactly -> TP 3
    # B (dog video prob 0.4): dog truth [0,2), predicted [0,2) + [3,4) + [5,6) -> TP 1, FP 2;
    #   car truth and prediction over all of B (video prob 0.9) -> always a hit
    G_dog = [_runs("101010"), _runs("110000")]
    P_dog = [_runs("101010"), _runs("110101")]
    Gv = [np.stack([G_dog[0], _runs("000000")]), np.stack([G_dog[1], _runs("111111")])]
    seg_v = np.zeros((2, 6, 2))
    seg_v[0, :, 0], seg_v[1, :, 0], seg_v[1, :, 1] = 0.9 * P_dog[0], 0.9 * P_dog[1], 0.9
    pred = {
        "n_segments": np.array([6, 6]),
        "seg_prob_audio": np.zeros((2, 6, 2)),
        "seg_prob_visual": seg_v,
        "video_prob_audio": np.zeros((2, 2)),
        "video_prob_visual": np.array([[0.6, 0.1], [0.4, 0.9]]),
    }
    Ga = [np.zeros((2, 6), bool)] * 2
    setting = avvp.Setting(0.52, 0.25, "modality")
    grid = [0.3, 0.5, 0.7]
    # pooled dog F: 0.3 -> TP 4, FP 2: 8/10; 0.5 -> TP 3, FN 1: 6/7; 0.7 -> 0  => 0.5
    # car: a hit at every grid value (F 1 each) -> first = 0.3
    old = avvp.select_thresholds(
        pred, Ga, Gv, setting, avvp.Selected(grid=grid, rule="class_pooled_f")
    )
    assert old["visual"].tolist() == [0.5, 0.3]
    # CMPAE (car at base 0.52, active in B with F 1): mean over videos of the per-video V
    # dog 0.3: A 1, B (2/4 + 1)/2 = 0.75 -> 0.875; 0.5: A 1, B (0 + 1)/2 -> 0.75;
    # 0.7: A 0, B 0.5 -> 0.25  => 0.3.  car: every value gives the same score -> last, 0.7
    new = avvp.select_thresholds(pred, Ga, Gv, setting, avvp.Selected(grid=grid))
    assert new["visual"].tolist() == [0.3, 0.7]


def test_unav100_weak_protocol_variable_length() -> None:
    # UnAV-100 (avpipe's weak protocol): audio-visual events count for both modalities;
    # videos of 3 and 6 segments; an event over [0.4, 2.6) s covers >= 0.5 s of segments 0, 1 and 2
    samples = [Sample("u0", "u0", "test", "", 2.6, 3), Sample("u1", "u1", "test", "", 5.8, 6)]
    samples += [Sample("u2", "u2", "val", "", 3.0, 3)]
    events = [
        Event("u0", "dog", "audio-visual", 0.4, 2.6),
        Event("u1", "car", "audio-visual", 3.0, 6.0),
    ]
    man = Manifest("unav", "unav100", ["dog", "car"], samples, events)
    seg = np.zeros((3, 6, 2))
    seg[0, :3, 0] = 0.9  # u0: dog on its 3 segments (the padding 3..5 is ignored)
    seg[0, 3:, 0] = 0.9
    seg[1, 3:, 1] = 0.9  # u1: car on 3..5
    vid = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.1]])
    pred = {
        "sample_id": np.array(["u0", "u1", "u2"]),
        "n_segments": np.array([3, 6, 3]),
        "seg_prob_audio": seg,
        "seg_prob_visual": seg,
        "video_prob_audio": vid,
        "video_prob_visual": vid,
    }
    res = avvp.evaluate(man, pred, {"settings": {"fixed": {}}})
    assert res.metrics["fixed.segment.AV"] == pytest.approx(100.0)
    assert res.metrics["fixed.event.AV"] == pytest.approx(100.0)
    # A and V truth are identical: nothing is audible-only anywhere, so Ao/Vo and what is
    # built on them would be the 100 of "nothing to score" and are left out
    assert not [k for k in res.metrics if k.endswith(("Ao", "Vo", "AVo"))]
    assert res.info["metrics_left_out"]["metrics"] == ["Ao", "Vo", "Type@AVo", "Event@AVo"]
    assert "UnAV-100" in res.info["protocol"]
