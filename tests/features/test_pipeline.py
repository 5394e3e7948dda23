"""The extraction pipeline with small exact extractors: values, masks, one decode per video
for every recipe, batching invariance, missing modalities, the cache, atomicity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from avmedia import make_media  # noqa: E402  (tests/io/avmedia.py)
from extract_fakes import FakeAudio, FakeVisual  # noqa: E402

from avpipe.features import pipeline  # noqa: E402
from avpipe.features.pipeline import RecipeRun, Settings, extract_shard  # noqa: E402
from avpipe.io.cache import DecodeCache, FeatureCache  # noqa: E402
from avpipe.io.decode import VisualNeed, decode_video  # noqa: E402
from avpipe.io.grid import Grid  # noqa: E402
from avpipe.io.store import FeatureStore  # noqa: E402

SETTINGS = Settings(batch_size=3, workers=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    d = tmp_path_factory.mktemp("media")
    made = [
        ("audio_only", make_media(d / "audio_only.m4a", 2.0, video=False)),
        ("long", make_media(d / "long.mp4", 3.0)),
        ("short", make_media(d / "short.mp4", 0.4, fps=10)),  # 0.4 s -> one segment
        ("silent", make_media(d / "silent.mp4", 2.0, audio=None)),
    ]
    return [(v, str(p)) for v, p in made]


def run(videos, out: Path, *recipes, settings: Settings = SETTINGS, cache: Path | None = None):
    runs = [
        RecipeRun(
            e.spec.name,
            e,
            FeatureCache(cache / e.spec.name, {"r": e.spec.name}) if cache else None,
            {"recipe": e.spec.name},
        )
        for e in recipes
    ]
    dcache = DecodeCache(cache / "_decode", {}) if cache else None
    return extract_shard(videos, runs, out, settings, dcache)


def expected_visual(path: str, f: int) -> np.ndarray:
    frames = decode_video(path, Grid(), (VisualNeed("fake_visual", f),)).frames("fake_visual")
    n, _, h, w, c = frames.shape
    return frames.astype(np.float32).mean(1).reshape(n, 2, h // 2, 2, w // 2, c).mean((2, 4))


def test_visual_values_masks_and_flags(videos, tmp_path: Path) -> None:
    res = run(videos, tmp_path / "out", FakeVisual(2))
    s = FeatureStore(tmp_path / "out" / "fake_visual.zarr")
    assert s.video_ids == ["audio_only", "long", "short", "silent"]
    assert s.n_segments.tolist() == [2, 3, 1, 2]
    assert s.mask.tolist()[2] == [True, False, False]  # the short clip: one real segment
    assert s.group["has_video"][:].tolist() == [False, True, True, True]
    feats = s.load()
    assert not feats[0].any()  # no video stream: zeros, flagged
    for row in (1, 2, 3):
        n = int(s.n_segments[row])
        np.testing.assert_allclose(feats[row, :n], expected_visual(videos[row][1], 2), rtol=1e-5)
        assert not feats[row, n:].any()
    frames = s.load(name="frames")  # (video, segment, frame, channel)
    assert frames.shape == (4, 3, 2, 3)
    np.testing.assert_allclose(frames.mean(2), feats.mean((2, 3)), rtol=1e-4, atol=1e-4)
    st = res.stats["fake_visual"]
    assert (st.computed, st.cached, st.segments, st.items) == (3, 0, 6, 12)
    assert (
        s.attrs["recipe"] == "fake" + "_visual"
        and "repeat last decoded frame" in s.attrs["padding"]
    )
    status = (tmp_path / "out" / "status.tsv").read_text().splitlines()
    assert [r.split("\t")[2] for r in status[1:]] == ["no_video", "ok", "ok", "no_audio"]


def test_audio_windows_start_at_each_segment(videos, tmp_path: Path) -> None:
    run(videos, tmp_path / "out", FakeAudio(window_s=0.96, hop_s=1.0))
    s = FeatureStore(tmp_path / "out" / "fake_audio.zarr")
    assert s.has_audio.tolist() == [True, True, True, False]
    feats = s.load()
    assert not feats[3].any()  # silent video: zeros and has_audio False, never computed
    audio = decode_video(videos[1][1], Grid()).audio
    for t in range(3):
        win = audio[t * 16000 : t * 16000 + 15360]
        np.testing.assert_allclose(
            feats[1, t], [np.sqrt((win**2).mean()), win.mean(), win[0]], rtol=1e-4, atol=1e-6
        )


def test_every_recipe_from_one_decode_per_video(videos, tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []

    def counting(path, *a, **kw):
        calls.append(path)
        return decode_video(path, *a, **kw)

    monkeypatch.setattr(pipeline, "decode_video", counting)
    res = run(videos, tmp_path / "out", FakeVisual(2), FakeAudio())
    assert sorted(calls) == sorted(p for _, p in videos) and res.decoded == 4
    assert res.stats["fake_visual"].computed == 3 and res.stats["fake_audio"].computed == 3
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "fake_visual.zarr",
        "fake_audio.zarr",
        "status.tsv",
    }  # no decoded frames, no spill folder


def test_batch_size_and_workers_do_not_change_the_result(videos, tmp_path: Path) -> None:
    run(videos, tmp_path / "b1", FakeVisual(4), settings=Settings(batch_size=1, workers=0))
    run(videos, tmp_path / "b7", FakeVisual(4), settings=Settings(batch_size=7, workers=2))
    a = FeatureStore(tmp_path / "b1" / "fake_visual.zarr")
    b = FeatureStore(tmp_path / "b7" / "fake_visual.zarr")
    np.testing.assert_array_equal(a.load(), b.load())
    assert a.video_ids == b.video_ids


def test_frames_resized_on_the_device_match_the_workers(videos, tmp_path: Path) -> None:
    """prepare: device (native frames, resized by torch) against swscale in the workers."""
    from avpipe.features.registry import spec_for

    spec = spec_for("r2plus1d18", {"weights": "random", "frames_per_segment": 2, "input_size": 32})
    fake = FakeVisual(2)
    fake.spec = type(spec)(
        **{
            **spec.__dict__,
            "name": "fake_visual",
            "output_shape": (2, 2, 3),
            "extra_outputs": {"frames": (2, 3)},
        }
    )
    run(videos, tmp_path / "w", fake, settings=Settings(workers=0, prepare="workers"))
    run(videos, tmp_path / "d", fake, settings=Settings(workers=0, prepare="device"))
    w = FeatureStore(tmp_path / "w" / "fake_visual.zarr").load()
    d = FeatureStore(tmp_path / "d" / "fake_visual.zarr").load()
    assert w.shape == d.shape == (4, 3, 2, 2, 3)
    np.testing.assert_allclose(w, d, atol=3.0)  # two resamplers of flat frames: within 3 levels


def test_cached_videos_are_not_decoded_and_the_store_is_identical(
    videos, tmp_path: Path, monkeypatch
) -> None:
    first = run(videos, tmp_path / "a", FakeVisual(2), FakeAudio(), cache=tmp_path / "cache")
    assert first.decoded == 4
    monkeypatch.setattr(pipeline, "decode_video", lambda *a, **k: pytest.fail("decoded again"))
    second = run(videos, tmp_path / "b", FakeVisual(2), FakeAudio(), cache=tmp_path / "cache")
    assert second.decoded == 0 and second.stats["fake_visual"].cached == 3
    files = sorted(f.relative_to(tmp_path / "a") for f in (tmp_path / "a").rglob("*"))
    assert files == sorted(f.relative_to(tmp_path / "b") for f in (tmp_path / "b").rglob("*"))
    for rel in files:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_shard_killed_midway_leaves_nothing_and_rerun_is_identical(videos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="injected"):
        run(videos, out, FakeVisual(2, fail_after=2), settings=Settings(batch_size=1, workers=0))
    assert not out.exists()
    assert all(".tmp-" in p.name for p in tmp_path.iterdir())
    run(videos, out, FakeVisual(2), settings=Settings(batch_size=1, workers=0))
    run(videos, tmp_path / "clean", FakeVisual(2), settings=Settings(batch_size=2, workers=0))
    assert not list(tmp_path.glob("*.tmp-*"))
    a = FeatureStore(out / "fake_visual.zarr")
    b = FeatureStore(tmp_path / "clean" / "fake_visual.zarr")
    np.testing.assert_array_equal(a.load(), b.load())
    np.testing.assert_array_equal(a.load(name="frames"), b.load(name="frames"))


class _NaNAudio(FakeAudio):
    def __call__(self, batch):
        out = super().__call__(batch)
        out["features"][0, 0] = float("nan")
        return out


def test_nan_or_misshaped_outputs_stop_the_shard(videos, tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match="NaN"):
        run(videos, tmp_path / "a", _NaNAudio())
    bad = FakeVisual(2)
    bad.spec = type(bad.spec)(**{**bad.spec.__dict__, "output_shape": (3, 3, 3)})
    with pytest.raises(ValueError, match="the spec says"):
        run(videos, tmp_path / "v", bad)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" not in p.name]


def test_keep_decoded_writes_the_model_inputs(videos, tmp_path: Path) -> None:
    import zarr

    run(videos, tmp_path / "out", FakeVisual(2), settings=Settings(workers=0, keep_decoded=True))
    g = zarr.open_group(str(tmp_path / "out" / "decoded.zarr"), mode="r")
    x = g["fake_visual"]["long"][...]
    assert x.shape == (3, 2, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(
        x, decode_video(videos[1][1], Grid(), (VisualNeed("fake_visual", 2),)).frames("fake_visual")
    )


def test_store_codec_sets_the_compression_of_the_stores(videos, tmp_path: Path) -> None:
    from avpipe.io.store_codec import codec_of

    run(videos, tmp_path / "z", FakeVisual(2), settings=Settings(workers=0))
    run(videos, tmp_path / "n", FakeVisual(2), settings=Settings(workers=0, store_codec="none"))
    z, n = (FeatureStore(tmp_path / d / "fake_visual.zarr").array() for d in ("z", "n"))
    assert codec_of(z) == "zstd" and codec_of(n) == "none"
    assert z[...].tobytes() == n[...].tobytes()


def test_a_partial_video_keeps_its_decoded_segments(videos, tmp_path: Path) -> None:
    """A file cut in half is in the stores with the segments it decoded (mask True only
    there), status ``partial``, listed by the extract stage's failures table; on_error
    raise stops only for failed videos.  The store records the downmix."""
    from avpipe.stages.extract import read_failures

    cut = make_media(tmp_path / "cut.mp4", 6.0, fps=10, options={"movflags": "faststart"})
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    shard = [*videos, ("cut", str(cut))]
    settings = Settings(batch_size=3, workers=0, on_error="raise")
    res = run(shard, tmp_path / "shard0", FakeVisual(2), FakeAudio(), settings=settings)
    row = {v["video_id"]: v for v in res.videos}["cut"]
    assert row["status"] == "partial" and row["reason"].startswith("truncated: decoded ")
    n = row["n_segments"]
    assert 2 <= n <= 4 and n == int(np.ceil(row["duration_s"] - 0.1))
    for name in ("fake_visual", "fake_audio"):
        s = FeatureStore(tmp_path / "shard0" / f"{name}.zarr")
        i = s.video_ids.index("cut")
        assert s.n_segments[i] == n and s.mask[i].tolist() == [
            t < n for t in range(s.mask.shape[1])
        ]
        assert s.load()[i, :n].any() and s.attrs["downmix"].startswith("mean of the channels")
    failures = read_failures([tmp_path / "shard0" / "status.tsv"])
    assert [r[0] for r in failures] == ["audio_only", "cut", "silent"]
    assert failures[1][2:4] == ["partial", row["reason"]]


def test_clip_without_a_segment_is_a_row_of_zero_length(videos, tmp_path: Path) -> None:
    """UnAV-100 grid: the 0.4-s clip holds no 0.96-s window: a row with n_segments 0 (cached
    as such), the others their whole windows."""
    grid = Settings(batch_size=3, workers=0, grid=Grid(0.32, 0.96))
    for out in ("a", "b"):  # the second run reads the empty entries from the cache
        run(
            videos,
            tmp_path / out,
            FakeVisual(2),
            FakeAudio(0.96, 0.32),
            settings=grid,
            cache=tmp_path / "c",
        )
        for name in ("fake_visual", "fake_audio"):
            s = FeatureStore(tmp_path / out / f"{name}.zarr")
            n = dict(zip(s.video_ids, s.n_segments.tolist(), strict=True))
            assert n["short"] == 0 and n["long"] == 7  # floor((3 - 0.96) / 0.32) + 1
