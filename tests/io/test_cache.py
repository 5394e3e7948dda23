"""The per-video feature cache (avpipe/io/cache.py) inside extract_shard: a rerun computes
only uncached videos, the store equals an uncached run exactly, entries made with other
options / weights / code are not reused, and corrupt entries are recomputed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from avmedia import make_media

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from extract_fakes import FakeAudio, FakeVisual  # noqa: E402

from avpipe.features.pipeline import extract_shard  # noqa: E402
from avpipe.io.cache import FeatureCache  # noqa: E402
from avpipe.io.decode import DecodedShard, DecodePlan, decode_shard  # noqa: E402

PLAN = DecodePlan(frames_per_segment=4, frame_size=(16, 16))
MATERIAL = {"recipe": "fake", "options": {"frames_per_segment": 2}, "weights": "none", "code": "x"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, int]]:
    d = tmp_path_factory.mktemp("media")
    videos = [
        ("long", make_media(d / "long.mp4", 3.0), 3),
        ("short", make_media(d / "short.mp4", 0.4, fps=10), 1),
        ("silent", make_media(d / "silent.mp4", 2.0, audio=None), 2),
        ("audio_only", make_media(d / "audio_only.m4a", 2.0, video=False), 2),
        ("new", make_media(d / "new.mp4", 2.0, fps=8), 2),  # other frames than "long"
    ]
    return sorted((v, str(p), n) for v, p, n in videos)


def _decode(videos: list[tuple[str, str, int]], d: Path) -> DecodedShard:
    d.mkdir(parents=True, exist_ok=True)
    decode_shard(videos, d / "s.zarr", d / "s.tsv", PLAN)
    return DecodedShard(d / "s.zarr")


@pytest.fixture(scope="module")
def shards(
    media: list[tuple[str, str, int]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[DecodedShard, DecodedShard]:
    """(four videos, the same four plus "new"), like a manifest before and after adding one."""
    d = tmp_path_factory.mktemp("decoded")
    before = _decode([v for v in media if v[0] != "new"], d / "before")
    return before, _decode(media, d / "after")


def assert_same_store(a: Path, b: Path) -> None:
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    names = sorted(k for k, _ in ga.arrays())
    assert names == sorted(k for k, _ in gb.arrays())
    for k in names:
        x, y = ga[k][:], gb[k][:]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k  # byte-identical content


def test_rerun_with_added_video_computes_only_it(shards, tmp_path: Path) -> None:
    before, after = shards
    cache = FeatureCache(tmp_path / "cache", MATERIAL)
    first = extract_shard(before, FakeVisual(2), tmp_path / "1.zarr", batch_size=3, cache=cache)
    assert (first.cached, first.computed) == (0, 3)  # audio_only has no video: not computed
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3

    fake = FakeVisual(2)
    again = extract_shard(before, fake, tmp_path / "2.zarr", batch_size=3, cache=cache)
    assert (again.cached, again.computed, fake.calls) == (3, 0, 0)
    assert_same_store(tmp_path / "1.zarr", tmp_path / "2.zarr")

    fake = FakeVisual(2)
    ext = extract_shard(after, fake, tmp_path / "3.zarr", batch_size=3, cache=cache)
    assert (ext.cached, ext.computed, ext.segments) == (3, 1, 2)  # only "new" went through
    extract_shard(after, FakeVisual(2), tmp_path / "plain.zarr", batch_size=2)  # no cache
    assert_same_store(tmp_path / "3.zarr", tmp_path / "plain.zarr")


def test_audio_store_from_cache_equals_uncached(shards, tmp_path: Path) -> None:
    before, _ = shards
    cache = FeatureCache(tmp_path / "cache", {**MATERIAL, "recipe": "fake_audio"})
    extract_shard(before, FakeAudio(), tmp_path / "1.zarr", batch_size=2, cache=cache)
    stats = extract_shard(before, FakeAudio(), tmp_path / "2.zarr", batch_size=2, cache=cache)
    assert (stats.cached, stats.computed) == (3, 0)  # silent has no audio
    extract_shard(before, FakeAudio(), tmp_path / "plain.zarr", batch_size=4)
    assert_same_store(tmp_path / "2.zarr", tmp_path / "plain.zarr")


@pytest.mark.parametrize(
    "change",
    [
        {"options": {"frames_per_segment": 2, "input_size": 8}},
        {"weights": "random(seed=1)"},
        {"code": "y"},
    ],
    ids=["option", "weights", "code"],
)
def test_other_options_weights_or_code_are_not_reused(shards, tmp_path: Path, change) -> None:
    before, _ = shards
    extract_shard(
        before, FakeVisual(2), tmp_path / "1.zarr", cache=FeatureCache(tmp_path / "c", MATERIAL)
    )
    other = FeatureCache(tmp_path / "c", {**MATERIAL, **change})
    stats = extract_shard(before, FakeVisual(2), tmp_path / "2.zarr", cache=other)
    assert (stats.cached, stats.computed) == (0, 3)
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 6


def test_other_decoded_input_is_not_reused(shards, tmp_path: Path) -> None:
    before, _ = shards
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    extract_shard(before, FakeVisual(2), tmp_path / "1.zarr", cache=cache)
    # picking one frame per segment instead of two: other input, other key
    stats = extract_shard(before, FakeVisual(1), tmp_path / "2.zarr", cache=cache)
    assert stats.cached == 0
    frames = before.frames(1)[:, [0, 2]]
    assert cache.key(frames, 3) != cache.key(frames[::-1].copy(), 3)
    assert cache.key(frames, 3) != FeatureCache(tmp_path / "c", {**MATERIAL, "x": 1}).key(frames, 3)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_corrupt_entries_are_recomputed(shards, tmp_path: Path, damage: str) -> None:
    before, _ = shards
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    extract_shard(before, FakeVisual(2), tmp_path / "1.zarr", cache=cache)
    entries = sorted((tmp_path / "c").rglob("*.npz"))
    for p in entries:
        if damage == "truncate":
            p.write_bytes(p.read_bytes()[:100])
        elif damage == "garbage":
            p.write_bytes(b"\0" * 64)
        else:
            with p.open("wb") as fh:
                np.savez(fh, __n_segments__=np.int64(1), features=np.zeros((1, 2, 2, 3)))
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    fake = FakeVisual(2)
    stats = extract_shard(before, fake, tmp_path / "2.zarr", cache=cache)
    assert (stats.cached, stats.computed, cache.ignored) == (0, 3, 3) and fake.calls > 0
    assert_same_store(tmp_path / "1.zarr", tmp_path / "2.zarr")
    again = extract_shard(before, FakeVisual(2), tmp_path / "3.zarr", cache=cache)
    assert again.cached == 3  # the entries were rewritten


def test_failed_shard_keeps_the_entries_it_finished(shards, tmp_path: Path) -> None:
    before, _ = shards
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    with pytest.raises(RuntimeError, match="injected"):
        extract_shard(
            before, FakeVisual(2, fail_after=2), tmp_path / "1.zarr", batch_size=1, cache=cache
        )
    assert not (tmp_path / "1.zarr").exists()
    assert not list((tmp_path / "c").rglob("*.tmp-*"))
    stats = extract_shard(before, FakeVisual(2), tmp_path / "2.zarr", batch_size=1, cache=cache)
    assert stats.cached + stats.computed == 3
