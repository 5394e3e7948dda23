"""Decoding: frames on the segment grid, audio against independent resamplers, bad input."""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from avmedia import brightness, tone

from avpipe.io.decode import DecodedShard, DecodeError, DecodePlan, decode_shard, decode_video, pick_frames, shard_of

PLAN = DecodePlan(frames_per_segment=2, frame_size=(16, 16))


def grid_brightness(frames: np.ndarray) -> np.ndarray:
    return frames[:, 8, 8, 0].astype(int)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("aac.mp4", {}),
        ("mp2_stereo_44k.mkv", {"audio": "mp2", "audio_rate": 44100, "channels": 2}),
        ("opus_48k.mkv", {"audio": "libopus", "audio_rate": 48000}),
        ("pcm.mov", {"audio": "pcm_s16le", "audio_rate": 44100}),
        ("ntsc_odd_size.mp4", {"fps": Fraction(30000, 1001), "size": (34, 18)}),
        ("fps7.mp4", {"fps": 7, "size": (48, 20)}),
    ],
)
def test_frames_are_the_nearest_source_frames_on_the_grid(media, name: str, kw: dict) -> None:
    fps = float(kw.get("fps", 4))
    path = media(name, 2.3, **kw)
    d = decode_video(path, PLAN)
    assert d.n_segments == 3 and d.has_audio and d.has_video
    assert d.frames.shape == (6, 16, 16, 3) and d.frames.dtype == np.uint8
    n_src = round(2.3 * fps)
    # grid time k / 2 s -> nearest source frame (a tie takes the earlier one);
    # past the end: the last frame repeated
    expected = [brightness(min(math.ceil(k / 2 * fps - 0.5 - 1e-9), n_src - 1)) for k in range(6)]
    np.testing.assert_allclose(grid_brightness(d.frames), expected, atol=4)
    assert d.audio.shape == (3 * 16000,) and d.audio.dtype == np.float32
    assert 0.2 < np.abs(d.audio[: 2 * 16000]).max() < 0.5
    assert np.abs(d.audio[round(2.4 * 16000) :]).max() < 0.02  # zero padding after the end


def test_audio_matches_independent_resamplers(media) -> None:
    """PyAV/libswresample 44.1 -> 16 kHz against soxr HQ (librosa's default) and resampy
    kaiser_best (the VGGish reference): the same signal to 1e-4 away from the edges."""
    soxr = pytest.importorskip("soxr")
    resampy = pytest.importorskip("resampy")
    path = media("pcm44k.mov", 3.0, audio="pcm_s16le", audio_rate=44100)
    d = decode_video(path, PLAN)
    x = (tone(3 * 44100, 44100) * 32767).astype(np.int16).astype(np.float32) / 32768
    core = slice(400, 48000 - 400)  # filter edges differ by design
    for ref in (
        soxr.resample(x, 44100, 16000, "HQ"),
        resampy.resample(x, 44100, 16000, filter="kaiser_best"),
    ):
        assert np.abs(d.audio[core] - ref[core]).max() < 1e-4


def test_short_clip_has_one_segment_padded_by_repeating(media) -> None:
    d = decode_video(media("short.mp4", 0.25, fps=8), DecodePlan(frames_per_segment=4, frame_size=(16, 16)))
    assert d.n_segments == 1 and d.frames.shape[0] == 4
    # 2 source frames at 0 and 0.125 s; grid 0, .25, .5, .75 -> frame 0, then frame 1 repeated
    np.testing.assert_allclose(grid_brightness(d.frames), [0, 20, 20, 20], atol=4)
    assert d.duration_s == pytest.approx(0.25, abs=0.06)


def test_no_audio_stream_is_flagged_with_zeros(media) -> None:
    d = decode_video(media("silent.mp4", 2.0, audio=None), PLAN)
    assert not d.has_audio and d.has_video and d.n_segments == 2
    assert d.audio.shape == (32000,) and not d.audio.any()


def test_no_video_stream_is_flagged_with_zeros(media) -> None:
    d = decode_video(media("audio_only.m4a", 2.0, video=False), PLAN)
    assert d.has_audio and not d.has_video and d.n_segments == 2
    assert d.frames.shape == (4, 16, 16, 3) and not d.frames.any()


def test_garbage_file_cannot_be_opened(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as e:
        decode_video(bad, PLAN)
    assert e.value.reason == "cannot open"


def test_truncated_file_is_reported(media) -> None:
    """moov first (faststart): opens, decodes part of the declared duration -> truncated."""
    path = media("trunc.mp4", 6.0, fps=10, size=(64, 48), options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError) as e:
        decode_video(path, PLAN)
    assert e.value.reason in ("truncated", "corrupt")


def test_truncated_file_without_index_cannot_be_opened(media) -> None:
    path = media("trunc_moov_at_end.mp4", 3.0)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DecodeError) as e:
        decode_video(path, PLAN)
    assert e.value.reason == "cannot open"


def test_zero_length_file_is_reported(media) -> None:
    path = media("empty.mp4", 0.0, audio=None)
    with pytest.raises(DecodeError) as e:
        decode_video(path, PLAN)
    assert e.value.reason in ("zero-length", "cannot open")


def test_pick_frames() -> None:
    assert pick_frames(16, 8).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert pick_frames(16, 16).tolist() == list(range(16))
    assert pick_frames(6, 4).tolist() == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="raise decode.frames_per_segment"):
        pick_frames(2, 4)


def test_shard_of_is_stable() -> None:
    assert shard_of("abc", 4) == 0x352441C2 % 4  # zlib.crc32(b"abc")
    assert {shard_of(f"v{i}", 3) for i in range(30)} == {0, 1, 2}


def test_decode_shard_skips_and_records_bad_videos(media, tmp_path: Path) -> None:
    good = media("good.mp4", 2.0)
    silent = media("silent.mp4", 1.0, audio=None)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    videos = [("a", str(good), 2), ("b", str(tmp_path / "bad.mp4"), 2), ("c", str(silent), 1), ("d", str(tmp_path / "nope.mp4"), 1)]
    rows = decode_shard(videos, tmp_path / "s.zarr", tmp_path / "s.tsv", PLAN, workers=2, on_error="skip")
    status = {r[0]: (r[2], r[3]) for r in rows}
    assert status["a"] == ("ok", "") and status["c"] == ("no_audio", "no audio stream")
    assert status["b"][0] == "failed" and status["b"][1].startswith("cannot open")
    assert status["d"][0] == "failed" and status["d"][1].startswith("missing")
    with (tmp_path / "s.tsv").open() as fh:
        assert [r["status"] for r in csv.DictReader(fh, delimiter="\t")] == ["ok", "failed", "no_audio", "failed"]
    shard = DecodedShard(tmp_path / "s.zarr")
    assert shard.video_ids == ["a", "c"] and shard.n_segments.tolist() == [2, 1]
    assert shard.has_audio.tolist() == [True, False]
    assert shard.frames(1).shape == (1, 2, 16, 16, 3)
    np.testing.assert_array_equal(shard.frames(0).reshape(4, 16, 16, 3), decode_video(good, PLAN).frames)


def test_decode_shard_raises_and_leaves_nothing(media, tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    videos = [("a", str(media("good.mp4", 1.0)), 1), ("b", str(tmp_path / "bad.mp4"), 1)]
    with pytest.raises(DecodeError):
        decode_shard(videos, tmp_path / "s.zarr", tmp_path / "s.tsv", PLAN, on_error="raise")
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.tsv").exists()
    assert not list(tmp_path.glob("s.zarr.tmp-*"))


def test_longer_video_than_expected_grows_the_shard(media, tmp_path: Path) -> None:
    videos = [("a", str(media("a.mp4", 1.0)), 1), ("b", str(media("b.mp4", 3.0)), 1)]
    decode_shard(videos, tmp_path / "s.zarr", tmp_path / "s.tsv", PLAN)
    shard = DecodedShard(tmp_path / "s.zarr")
    assert shard.n_segments.tolist() == [1, 3]
    assert shard.group["frames"].shape[1] == 6 and shard.frames(1).shape[0] == 3
