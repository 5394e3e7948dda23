"""The per-video feature cache (avpipe/io/cache.py) inside extract_shard: a rerun computes
only uncached videos, the store equals an uncached run exactly, entries made with other
options / weights / code or of another file are not reused, corrupt entries are recomputed."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from avmedia import make_media

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from extract_fakes import FakeAudio, FakeVisual  # noqa: E402

from avpipe.features.pipeline import RecipeRun, Settings, extract_shard  # noqa: E402
from avpipe.io.cache import DecodeCache, FeatureCache, file_digest  # noqa: E402
from avpipe.utils import atomic  # noqa: E402

MATERIAL = {"recipe": "fake", "options": {"frames_per_segment": 2}, "weights": "none", "code": "x"}
SETTINGS = Settings(batch_size=3, workers=0)
CAPTURE = {"capture_output": True, "text": True, "check": True}
RACE_KEY = "ab" * 32


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    d = tmp_path_factory.mktemp("media")
    videos = [
        ("long", make_media(d / "long.mp4", 3.0)),
        ("short", make_media(d / "short.mp4", 0.4, fps=10)),
        ("silent", make_media(d / "silent.mp4", 2.0, audio=None)),
        ("audio_only", make_media(d / "audio_only.m4a", 2.0, video=False)),
        ("new", make_media(d / "new.mp4", 2.0, fps=8)),  # other frames than "long"
    ]
    return sorted((v, str(p)) for v, p in videos)


def before(media):
    return [v for v in media if v[0] != "new"]


def extract(videos, out: Path, cache: FeatureCache, fake=None, settings=SETTINGS, dcache=None):
    fake = fake or FakeVisual(2)
    res = extract_shard(videos, [RecipeRun(fake.spec.name, fake, cache)], out, settings, dcache)
    return res.stats[fake.spec.name], out / f"{fake.spec.name}.zarr"


def assert_same_store(a: Path, b: Path) -> None:
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    names = sorted(k for k, _ in ga.arrays())
    assert names == sorted(k for k, _ in gb.arrays())
    for k in names:
        x, y = ga[k][:], gb[k][:]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k  # byte-identical content


def test_rerun_with_added_video_computes_only_it(media, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    first, _ = extract(before(media), tmp_path / "1", cache)
    assert (first.cached, first.computed) == (0, 3)  # audio_only has no video
    fake = FakeVisual(2)
    second, store = extract(media, tmp_path / "2", FeatureCache(tmp_path / "c", MATERIAL), fake)
    assert (second.cached, second.computed) == (3, 1) and fake.calls == 1
    _, plain = extract(media, tmp_path / "3", None)
    assert_same_store(plain, store)


def test_audio_store_from_cache_equals_uncached(media, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", {**MATERIAL, "recipe": "fake_audio"})
    extract(media, tmp_path / "1", cache, FakeAudio())
    stats, cached = extract(media, tmp_path / "2", cache, FakeAudio())
    assert (stats.cached, stats.computed) == (4, 0)  # silent.mp4 has no audio: never cached
    _, plain = extract(media, tmp_path / "3", None, FakeAudio())
    assert_same_store(plain, cached)


@pytest.mark.parametrize(
    "change",
    [{"options": {"frames_per_segment": 4}}, {"weights": "other"}, {"code": "y"}],
    ids=["option", "weights", "code"],
)
def test_other_options_weights_or_code_are_not_reused(media, tmp_path: Path, change) -> None:
    extract(before(media), tmp_path / "1", FeatureCache(tmp_path / "c", MATERIAL))
    stats, _ = extract(
        before(media), tmp_path / "2", FeatureCache(tmp_path / "c", {**MATERIAL, **change})
    )
    assert (stats.cached, stats.computed) == (0, 3)
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 6


def test_the_key_is_the_file_content_not_its_path(media, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    extract(before(media), tmp_path / "1", cache)
    moved = []
    for vid, path in before(media):  # same files under other names: still cached
        dst = tmp_path / "moved" / f"x_{Path(path).name}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(path, dst)
        moved.append((vid, str(dst)))
    stats, _ = extract(moved, tmp_path / "2", cache)
    assert (stats.cached, stats.computed) == (3, 0)
    long_path = dict(moved)["long"]
    digest = file_digest(long_path)
    with open(long_path, "ab") as fh:  # one byte more: another file, another key
        fh.write(b"\0")
    assert file_digest(long_path) != digest
    assert cache.key(digest) != FeatureCache(tmp_path / "c", {**MATERIAL, "x": 1}).key(digest)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_corrupt_entries_are_recomputed(media, tmp_path: Path, damage: str) -> None:
    dcache = DecodeCache(tmp_path / "d", {})
    extract(before(media), tmp_path / "1", FeatureCache(tmp_path / "c", MATERIAL), dcache=dcache)
    for p in sorted((tmp_path / "c").rglob("*.npz")):
        if damage == "truncate":
            p.write_bytes(p.read_bytes()[:100])
        elif damage == "garbage":
            p.write_bytes(b"\0" * 64)
        else:
            with p.open("wb") as fh:
                np.savez(fh, __n_segments__=np.int64(1), features=np.zeros((1, 2, 2, 3)))
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    fake = FakeVisual(2)
    stats, store = extract(before(media), tmp_path / "2", cache, fake, dcache=dcache)
    assert (stats.cached, stats.computed) == (0, 3) and fake.calls > 0
    assert_same_store(tmp_path / "1" / "fake_visual.zarr", store)
    again, _ = extract(before(media), tmp_path / "3", cache, dcache=dcache)
    assert again.cached == 3  # the entries were rewritten


def test_failed_shard_keeps_the_entries_it_finished(media, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", MATERIAL)
    one = Settings(batch_size=1, workers=0)
    with pytest.raises(RuntimeError, match="injected"):
        extract(before(media), tmp_path / "1", cache, FakeVisual(2, fail_after=4), one)
    assert not (tmp_path / "1").exists()
    assert not list((tmp_path / "c").rglob("*.tmp-*"))
    # long (3 segments) and short (1) went through the model before the failure
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 2
    stats, _ = extract(before(media), tmp_path / "2", cache, settings=one)
    assert (stats.cached, stats.computed) == (2, 1)


def _put_many(root: str, n: int, value: float) -> list[str]:
    """``n`` puts of one key (in a process of its own); the errors, as text."""
    cache = FeatureCache(root, MATERIAL)
    errors = []
    for _ in range(n):
        try:
            cache.put(RACE_KEY, 2, {"features": np.full((2, 3), value, np.float32)})
        except OSError as e:
            errors.append(repr(e))
    return errors


def test_concurrent_writers_of_one_key_never_fail(tmp_path: Path) -> None:
    """Two processes x 150 puts of the same entry: none fails (a writer's temporary file is
    never taken for a stale one), and the entry reads back whole, from one writer or the other.
    """
    with multiprocessing.get_context("fork").Pool(2) as pool:
        errors = pool.starmap(_put_many, [(str(tmp_path), 150, 1.0), (str(tmp_path), 150, 2.0)])
    assert [len(e) for e in errors] == [0, 0], errors[0][:1] + errors[1][:1]
    data = FeatureCache(tmp_path, MATERIAL).get(RACE_KEY, 2, {"features": (2, 3)})
    assert data is not None and np.unique(data["features"]).tolist() in ([1.0], [2.0])
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_only_leftovers_of_gone_writers_are_removed(tmp_path: Path) -> None:
    """Before a write, temporary siblings are removed only when their writer is gone: a
    process of this host that has exited, or an old name without a pid untouched for a day."""
    final = tmp_path / "entry.npz"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **CAPTURE)
    live = atomic._tmp_sibling(final)  # this process: a write in progress
    dead = live.with_name(live.name.replace(f"-{os.getpid()}-", f"-{int(gone.stdout)}-"))
    old, young = (final.with_name(f"entry.npz.tmp-{x}") for x in ("0123abcd", "4567cdef"))
    for p in (live, dead, old, young):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - atomic.STALE_AFTER_S - 60,) * 2)
    with atomic.atomic_path(final) as tmp:
        tmp.write_bytes(b"done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, live.name, young.name])
    assert final.read_bytes() == b"done"
