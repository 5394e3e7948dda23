"""The extraction pipeline with small exact extractors: values, masks, batching
invariance, missing modalities, atomicity of a shard killed midway."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from avmedia import make_media  # noqa: E402  (tests/io/avmedia.py)
from extract_fakes import FakeAudio, FakeVisual  # noqa: E402

from avpipe.features.pipeline import extract_shard  # noqa: E402
from avpipe.io.decode import DecodedShard, DecodePlan, decode_shard, pick_frames  # noqa: E402
from avpipe.io.store import FeatureStore  # noqa: E402

PLAN = DecodePlan(frames_per_segment=4, frame_size=(16, 16))


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> DecodedShard:
    d = tmp_path_factory.mktemp("media")
    videos = [
        ("long", make_media(d / "long.mp4", 3.0), 3),
        ("short", make_media(d / "short.mp4", 0.4, fps=10), 1),  # 0.4 s -> one segment
        ("silent", make_media(d / "silent.mp4", 2.0, audio=None), 2),
        ("audio_only", make_media(d / "audio_only.m4a", 2.0, video=False), 2),
    ]
    decode_shard([(v, str(p), n) for v, p, n in sorted(videos)], d / "s.zarr", d / "s.tsv", PLAN)
    return DecodedShard(d / "s.zarr")


def expected_visual(shard: DecodedShard, row: int, f: int) -> np.ndarray:
    frames = shard.frames(row)[:, pick_frames(4, f)].astype(np.float32)  # (n, F, 16, 16, 3)
    return frames.mean(1).reshape(-1, 2, 8, 2, 8, 3).mean((2, 4))


def test_visual_values_masks_and_flags(shard: DecodedShard, tmp_path: Path) -> None:
    stats = extract_shard(shard, FakeVisual(2), tmp_path / "v.zarr", batch_size=3, attrs={"recipe": "fake"})
    s = FeatureStore(tmp_path / "v.zarr")
    assert s.video_ids == ["audio_only", "long", "short", "silent"]
    assert s.n_segments.tolist() == [2, 3, 1, 2]
    assert s.mask.tolist()[2] == [True, False, False]  # the short clip: one real segment
    assert s.group["has_video"][:].tolist() == [False, True, True, True]
    feats = s.load()
    assert not feats[0].any()  # no video stream: zeros, flagged
    for row in (1, 2, 3):
        n = int(shard.n_segments[row])
        np.testing.assert_allclose(feats[row, :n], expected_visual(shard, row, 2), rtol=1e-5)
        assert not feats[row, n:].any()
    frames = s.load(name="frames")
    assert frames.shape == (4, 6, 3)
    np.testing.assert_allclose(frames[2, :2], shard.frames(2)[0, [0, 2]].astype(np.float32).mean((1, 2)), rtol=1e-5)
    assert stats.segments == 6 and stats.items == 12 and s.attrs["recipe"] == "fake"


def test_audio_windows_hop_and_missing_audio(shard: DecodedShard, tmp_path: Path) -> None:
    extract_shard(shard, FakeAudio(window_s=0.96, hop_s=0.96), tmp_path / "a.zarr", batch_size=4)
    s = FeatureStore(tmp_path / "a.zarr")
    assert s.has_audio.tolist() == [True, True, True, False]
    feats = s.load()
    assert not feats[3].any()  # silent video: zeros and has_audio False, never computed
    audio = shard.audio(1)
    for t in range(3):
        start = round(t * 0.96 * 16000)
        win = np.pad(audio[start : start + 15360], (0, max(0, start + 15360 - audio.size)))
        np.testing.assert_allclose(feats[1, t], [np.sqrt((win**2).mean()), win.mean(), win[0]], rtol=1e-4, atol=1e-6)


def test_batch_size_does_not_change_the_result(shard: DecodedShard, tmp_path: Path) -> None:
    extract_shard(shard, FakeVisual(4), tmp_path / "b1.zarr", batch_size=1)
    extract_shard(shard, FakeVisual(4), tmp_path / "b7.zarr", batch_size=7, prefetch=1)
    np.testing.assert_array_equal(FeatureStore(tmp_path / "b1.zarr").load(), FeatureStore(tmp_path / "b7.zarr").load())


def test_shard_killed_midway_leaves_nothing_and_rerun_is_identical(shard: DecodedShard, tmp_path: Path) -> None:
    out = tmp_path / "v.zarr"
    with pytest.raises(RuntimeError, match="injected"):
        extract_shard(shard, FakeVisual(2, fail_after=2), out, batch_size=1)
    assert not out.exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers == [] or all(".tmp-" in p.name for p in leftovers)
    extract_shard(shard, FakeVisual(2), out, batch_size=1)
    extract_shard(shard, FakeVisual(2), tmp_path / "clean.zarr", batch_size=2)
    assert not list(tmp_path.glob("*.tmp-*"))
    a, b = FeatureStore(out), FeatureStore(tmp_path / "clean.zarr")
    np.testing.assert_array_equal(a.load(), b.load())
    np.testing.assert_array_equal(a.load(name="frames"), b.load(name="frames"))
    assert a.video_ids == b.video_ids


def test_recipe_wanting_more_frames_than_decoded_is_an_error(shard: DecodedShard, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frames_per_segment"):
        extract_shard(shard, FakeVisual(8), tmp_path / "v.zarr")
    assert not (tmp_path / "v.zarr").exists()
