"""The segment grid on hand-worked examples: how many segments a clip has, and which
segments an event marks (UnAV-100's 0.96-s windows every 0.32 s, and the 1-s grid)."""

from __future__ import annotations

import numpy as np
import pytest

from avpipe.datasets.manifest import Event, Manifest, Sample, segment_count


@pytest.mark.parametrize(
    ("duration", "n"),
    # floor((d - 0.96) / 0.32) + 1 whole windows; 10 s -> 29 as the reference features
    [(0.2, 0), (0.95, 0), (0.96, 1), (1.28, 2), (3.7, 9), (10.0, 29), (25.0, 76), (60.0, 185)],
)
def test_overlapping_windows_count_only_when_whole(duration: float, n: int) -> None:
    assert segment_count(duration, 0.32, 0.96) == n


@pytest.mark.parametrize(
    ("duration", "n"), [(0.2, 1), (9.05, 9), (9.6, 10), (10.0, 10), (10.03, 10), (12.48, 13)]
)
def test_tiling_segments_keep_their_tolerance(duration: float, n: int) -> None:
    assert segment_count(duration) == n == segment_count(duration, 1.0, 1.0)


def _manifest(duration: float, events: list[tuple[float, float]], hop=0.32, win=0.96) -> Manifest:
    n = segment_count(duration, hop, win)
    return Manifest(
        "t",
        "unav100",
        ["a"],
        [Sample("v", "v", "test", "v.mp4", duration, n)],
        [Event("v", "a", "audio-visual", on, off) for on, off in events],
        hop,
        win,
    )


def _positives(m: Manifest) -> list[int]:
    return np.flatnonzero(m.segment_targets(m.samples)[0, :, 0]).tolist()


def test_long_event_needs_half_a_window() -> None:
    # [10.5, 60] in a 60-s clip: window 32 = [10.24, 11.2] holds 0.7 s >= 0.48, window 31
    # = [9.92, 10.88] 0.38 s; the last real window is 184 = [58.88, 59.84]
    assert _positives(_manifest(60.0, [(10.5, 60.0)])) == list(range(32, 185))


def test_short_event_marks_the_windows_that_hold_it() -> None:
    # 0.2 s at [30, 30.2]: wholly inside windows 92 = [29.44, 30.4] and 93 = [29.76, 30.72];
    # 91 holds 0.08 s, 94 = [30.08, 31.04] 0.12 s
    assert _positives(_manifest(60.0, [(30.0, 30.2)])) == [92, 93]


def test_event_in_the_tail_marks_the_last_real_window() -> None:
    # [9.9, 10] of a 10-s clip: only window 28 = [8.96, 9.92] (0.02 s) reaches it
    assert _positives(_manifest(10.0, [(9.9, 10.0)])) == [28]


def test_a_clip_shorter_than_a_window_has_no_segment_but_keeps_its_label() -> None:
    m = _manifest(0.2, [(0.0, 0.2)])
    assert m.samples[0].n_segments == 0
    assert m.segment_targets(m.samples, n_segments=1)[0, :, 0].tolist() == [0.0]
    assert m.video_targets(m.samples).tolist() == [[1.0]]


def test_short_event_on_the_one_second_grid() -> None:
    m = _manifest(10.0, [(2.1, 2.4), (0.0, 1.3)], hop=1.0, win=1.0)
    # [2.1, 2.4] lies in segment 2; [0, 1.3) holds 0.3 of segment 1 (< half): not marked
    assert _positives(m) == [0, 2]
    assert _positives(_manifest(10.0, [(3.0, 3.0)], hop=1.0, win=1.0)) == []
