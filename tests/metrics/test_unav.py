"""UnAV-100 detection mAP and its intervals, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from avpipe.datasets.manifest import Event, Manifest, Sample, segment_count
from avpipe.metrics import get_task
from avpipe.metrics.avvp import METRICS, new_metric_mean, scored_metrics
from avpipe.metrics.unav import Interval, class_ap, detection_map, interpolated_ap, segment_bounds

TOL = 1e-9


def test_interpolated_ap_is_voc2011() -> None:
    # precision made non-increasing from the right, summed over recall steps
    assert interpolated_ap(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(
        0.5 * 1.0 + 0.5 * 2 / 3, abs=TOL
    )


def test_class_ap_by_hand() -> None:
    truth = [Interval("a", 0, 0, 10), Interval("b", 0, 2, 4), Interval("b", 0, 6, 8)]
    preds = [
        Interval("a", 0, 0, 9, 0.9),  # tIoU 0.9 with a[0, 10]
        Interval("b", 0, 2, 4, 0.8),  # 1.0 with b[2, 4]
        Interval("b", 0, 5, 8, 0.7),  # 2/3 with b[6, 8]
        Interval("c", 0, 0, 1, 0.6),  # no truth in video c: FP
        Interval("b", 0, 2.5, 4, 0.5),  # 0.75 with b[2, 4], already taken: FP
    ]
    ap = class_ap(truth, preds, [0.5, 0.7, 0.95])
    # 0.5: TP TP TP FP FP -> recall 1/3, 2/3, 1 at precision 1 -> 1
    # 0.7: TP TP FP FP FP -> 2/3
    # 0.95: FP TP FP FP FP -> precision 1/2 at recall 1/3 -> 1/6
    np.testing.assert_allclose(ap, [1.0, 2 / 3, 1 / 6], rtol=0, atol=TOL)


def test_map_averages_the_classes_with_truth_and_drops_duplicates() -> None:
    truth = [Interval("a", 0, 0, 10), Interval("a", 0, 0, 10.0005), Interval("a", 1, 2, 4)]
    preds = [Interval("a", 0, 0, 10, 0.9), Interval("a", 2, 0, 1, 0.9)]  # class 2: no truth
    ap, classes = detection_map(truth, preds, [0.5])
    assert classes == [0, 1]
    # class 0: its duplicate is one event, found -> 1; class 1: no prediction -> 0
    np.testing.assert_allclose(ap, [[1.0, 0.0]], atol=TOL)


def test_segment_bounds() -> None:
    # UnAV-100 grid: segment t stands for [0.32 t + 0.32, 0.32 t + 0.64); ends reach the clip's
    assert segment_bounds(0, 29, 29, 0.32, 0.96, 10.0) == (0.0, 10.0)
    assert segment_bounds(5, 8, 29, 0.32, 0.96, 10.0) == pytest.approx((1.92, 2.88))
    # 1-s grid: [t0, t1), the last segment to the end of a 9.6-s clip
    assert segment_bounds(2, 5, 10, 1.0, 1.0, 9.6) == (2.0, 5.0)
    assert segment_bounds(7, 10, 10, 1.0, 1.0, 9.6) == (7.0, 9.6)


def _manifest() -> Manifest:
    clips = {"s02": 0.2, "v10": 10.0, "v60": 60.0}
    samples = [
        Sample(k, k, "test", f"{k}.mp4", d, segment_count(d, 0.32, 0.96)) for k, d in clips.items()
    ]
    events = [
        Event("s02", "a", "audio-visual", 0.0, 0.2),
        Event("v10", "a", "audio-visual", 0.0, 10.0),
        Event("v10", "b", "audio-visual", 3.0, 3.2),
        Event("v60", "b", "audio-visual", 10.5, 60.0),
    ]
    return Manifest("u", "unav100", ["a", "b"], samples, events, 0.32, 0.96)


def _predictions() -> dict[str, np.ndarray]:
    """v10: a everywhere (0.9), b on segments 8-9 (0.8); v60: b on 32-184 (0.7), a on 0-2
    (0.6, a false alarm).  The 0.2-s clip has no segment, hence no prediction."""
    P = np.zeros((2, 185, 2))
    P[0, :29, 0] = 0.9
    P[0, 8:10, 1] = 0.8
    P[1, 32:185, 1] = 0.7
    P[1, :3, 0] = 0.6
    return {
        "sample_id": np.array(["v10", "v60"]),
        "n_segments": np.array([29, 185]),
        "seg_prob_audio": P,
        "seg_prob_visual": P,
        "video_prob_audio": np.ones((2, 2)),
        "video_prob_visual": np.ones((2, 2)),
    }


def test_unav100_task_by_hand() -> None:
    m = _manifest()
    assert [s.n_segments for s in m.samples] == [0, 29, 185]
    cfg = {
        "settings": {"s": {"video_threshold": 0.5, "segment_threshold": 0.5}},
        "selected": {"enabled": False},
    }
    r = get_task("unav100")(m, _predictions(), cfg)
    # a: truth s02 [0, 0.2] (never found: no segment) and v10 [0, 10]; predictions v10 [0, 10]
    #    (0.9, TP), v60 [0, 1.28] (0.6, FP) -> AP 1/2 at every tIoU
    # b: truth v10 [3, 3.2], v60 [10.5, 60]; predictions v10 [2.88, 3.52] (0.8, tIoU 0.3125),
    #    v60 [10.56, 60] (0.7, tIoU 0.9988) -> AP 1 up to 0.3, 1/4 from 0.4
    for t in (0.1, 0.2, 0.3):
        assert abs(r.metrics[f"s.detection@tIoU{t:g}.mAP"] - 75.0) < TOL
    for t in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        assert abs(r.metrics[f"s.detection@tIoU{t:g}.mAP"] - 37.5) < TOL
    assert abs(r.metrics["s.detection.mAP"] - 50.0) < TOL
    assert r.info["n_events"] == 4 and r.info["videos_without_predictions"] == ["s02"]
    # single ground truth: no Ao/Vo-based metric; the weak F-scores are there
    assert not any(k.endswith((".Ao", ".Vo", "AVo")) for k in r.metrics)
    assert "s.segment.AV" in r.metrics and "s.event.Event@AV" in r.metrics
    assert r.tables["detection"][1][0][0] == "s"


def test_single_truth_data_select_on_meaningful_metrics_only() -> None:
    m = _manifest()
    names = scored_metrics(m)
    assert names == ("A", "V", "AV", "Type@AV", "Event@AV")
    llp = m.replace(events=[*m.events, Event("v10", "a", "audio", 0.0, 1.0)])
    assert scored_metrics(llp) == METRICS
    scores = {"segment.AV": 30.0, "event.AV": 20.0, "segment.A": 90.0}
    assert new_metric_mean(scores) == 25.0  # AV at both levels, not the empty Ao/Vo's 100


def test_metric_names_split_into_variant_and_metric_for_the_report() -> None:
    from avpipe.report.tables import split_metric

    assert split_metric("fixed.detection@tIoU0.5.mAP") == ("fixed.detection@tIoU0.5", "mAP")
    assert split_metric("fixed.detection.mAP") == ("fixed.detection", "mAP")
