"""Decoding in memory: frames on the segment grid per recipe, audio against independent
resamplers, bad input."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from avmedia import brightness, tone

from avpipe.datasets.manifest import segment_count
from avpipe.io.decode import DecodeError, VisualNeed, decode_video, shard_of
from avpipe.io.grid import Grid, crop_geometry

GRID = Grid(1.0, 1.0)
NEED = (VisualNeed("v", 2, "direct:16"),)


def decode(path: Path, needs: tuple = NEED, grid: Grid = GRID):
    return decode_video(path, grid, needs)


def grid_brightness(frames: np.ndarray) -> np.ndarray:
    """Centre pixel of (T, F, h, w, 3) frames, flattened over (T, F)."""
    return frames.reshape(-1, *frames.shape[2:])[:, frames.shape[2] // 2, frames.shape[3] // 2, 0]


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
    d = decode(path)
    assert d.n_segments == 3 and d.has_audio and d.has_video
    assert d.frames("v").shape == (3, 2, 16, 16, 3) and d.frames("v").dtype == np.uint8
    n_src = round(2.3 * fps)
    # grid time k / 2 s -> nearest source frame (a tie takes the earlier one);
    # past the end: the last frame repeated
    expected = [brightness(min(math.ceil(k / 2 * fps - 0.5 - 1e-9), n_src - 1)) for k in range(6)]
    np.testing.assert_allclose(grid_brightness(d.frames("v")).astype(int), expected, atol=4)
    assert d.audio.shape == (4 * 16000,) and d.audio.dtype == np.float32  # + 1 s for windows
    assert 0.2 < np.abs(d.audio[: 2 * 16000]).max() < 0.5
    assert np.abs(d.audio[round(2.4 * 16000) :]).max() < 0.02  # zero padding after the end


def test_audio_matches_independent_resamplers(media) -> None:
    """PyAV/libswresample 44.1 -> 16 kHz against soxr HQ (librosa's default) and resampy
    kaiser_best (the VGGish reference): the same signal to 1e-4 away from the edges."""
    soxr = pytest.importorskip("soxr")
    resampy = pytest.importorskip("resampy")
    path = media("pcm44k.mov", 3.0, audio="pcm_s16le", audio_rate=44100)
    d = decode(path)
    x = (tone(3 * 44100, 44100) * 32767).astype(np.int16).astype(np.float32) / 32768
    core = slice(400, 48000 - 400)  # filter edges differ by design
    for ref in (
        soxr.resample(x, 44100, 16000, "HQ"),
        resampy.resample(x, 44100, 16000, filter="kaiser_best"),
    ):
        assert np.abs(d.audio[core] - ref[core]).max() < 1e-4


def test_short_clip_has_one_segment_padded_by_repeating(media) -> None:
    d = decode(media("short.mp4", 0.25, fps=8), (VisualNeed("v", 4, "direct:16"),))
    assert d.n_segments == 1 and d.frames("v").shape[:2] == (1, 4)
    # 2 source frames at 0 and 0.125 s; grid 0, .25, .5, .75 -> frame 0, then frame 1 repeated
    np.testing.assert_allclose(grid_brightness(d.frames("v")).astype(int), [0, 20, 20, 20], atol=4)
    assert len(d.pools["direct:16"]) == 2  # each source frame converted once
    assert d.duration_s == pytest.approx(0.25, abs=0.06)


def test_no_audio_stream_is_flagged_with_zeros(media) -> None:
    d = decode(media("silent.mp4", 2.0, audio=None))
    assert not d.has_audio and d.has_video and d.n_segments == 2 and d.status == "no_audio"
    assert d.audio.shape == (48000,) and not d.audio.any()


def test_no_video_stream_is_flagged_with_zeros(media) -> None:
    d = decode(media("audio_only.m4a", 2.0, video=False))
    assert d.has_audio and not d.has_video and d.n_segments == 2 and d.status == "no_video"
    assert d.pools == {} and d.reason == "no video stream"


def test_garbage_file_cannot_be_opened(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "cannot open"


def damaged(path: Path, how: str) -> Path:
    """``cut``: the second half of the file removed; ``garbage``: 800 random bytes mid-file."""
    data = bytearray(path.read_bytes())
    n = len(data)
    if how == "cut":
        del data[n // 2 :]
    else:
        data[n // 2 : n // 2 + 800] = np.random.default_rng(0).bytes(800)
    path.write_bytes(bytes(data))
    return path


def assert_decoded_prefix(d, fps: int = 10) -> None:
    """The segments kept are the ones decoded: the frames there are the source's."""
    assert d.status == "partial" and 1.5 < d.duration_s < 4.5
    assert d.n_segments == segment_count(d.duration_s) < 6
    whole = int(d.duration_s)  # segments decoded to their end
    got = grid_brightness(d.frames("v"))[: 2 * whole].astype(int)
    np.testing.assert_allclose(
        got, [brightness(round(k / 2 * fps)) for k in range(2 * whole)], atol=4
    )
    assert 0.2 < np.abs(d.audio[: whole * 16000]).max() < 0.5


def test_truncated_faststart_file_keeps_its_decoded_prefix(media) -> None:
    """moov first (faststart), cut in half: the packet that reaches the end of the file is
    cut off -> ``truncated`` (not ``corrupt``), and what was decoded stays."""
    path = media("trunc.mp4", 6.0, fps=10, size=(64, 48), options={"movflags": "faststart"})
    d = decode(damaged(path, "cut"))
    assert d.reason.startswith(f"truncated: decoded {d.duration_s:.2f} of 6.00 s (")
    assert_decoded_prefix(d)


@pytest.mark.parametrize("name", ["middle.mkv", "middle.mp4"])
def test_bad_packet_mid_stream_keeps_the_decoded_prefix(media, name: str) -> None:
    d = decode(damaged(media(name, 6.0, fps=10, size=(64, 48)), "garbage"))
    # Matroska declares the AAC padding in its duration: 6.06 s
    assert re.match(rf"corrupt: decoding stopped at {d.duration_s:.2f} of 6\.0\d s: ", d.reason)
    assert "Invalid data" in d.reason and "\n" not in d.reason
    assert_decoded_prefix(d)


def test_truncated_file_without_index_cannot_be_opened(media) -> None:
    path = media("trunc_moov_at_end.mp4", 3.0)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DecodeError) as e:
        decode(path)
    assert e.value.reason == "cannot open"


def test_zero_length_file_is_reported(media) -> None:
    path = media("empty.mp4", 0.0, audio=None)
    with pytest.raises(DecodeError) as e:
        decode(path)
    assert e.value.reason in ("zero-length", "cannot open", "missing")  # PyAV may write nothing


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DecodeError) as e:
        decode(tmp_path / "nope.mp4")
    assert e.value.reason == "missing"


def test_recipes_share_one_decode_and_each_conversion(media) -> None:
    """Two recipes at 8 and 2 frames per segment, one at the source size: one pass, the
    2-fps frames are a subset of the 8-fps ones, each source frame converted once per size."""
    path = media("fps8.mp4", 2.0, fps=8, size=(48, 32))
    needs = (
        VisualNeed("r8", 8, "shorter_crop:16"),
        VisualNeed("r2", 2, "shorter_crop:16"),
        VisualNeed("raw", 2, "native"),
    )
    d = decode(path, needs)
    assert d.frames("r8").shape == (2, 8, 16, 16, 3) and d.frames("raw").shape == (2, 2, 32, 48, 3)
    assert len(d.pools["shorter_crop:16"]) == 16 and len(d.pools["native"]) == 4
    np.testing.assert_array_equal(d.frames("r2"), d.frames("r8")[:, [0, 4]])
    np.testing.assert_allclose(
        grid_brightness(d.frames("r8")).astype(int), [brightness(k) for k in range(16)], atol=4
    )


def test_crop_geometry_follows_the_reference_transforms() -> None:
    # shorter side to floor(224 / 0.875) = 256, aspect kept, centre crop 224
    assert crop_geometry(240, 320, 224, "shorter_crop") == (256, 341, 16, 58)
    assert crop_geometry(320, 240, 224, "shorter_crop") == (341, 256, 58, 16)
    assert crop_geometry(240, 320, 112, "direct") == (112, 112, 0, 0)
    with pytest.raises(ValueError, match="unknown resize"):
        crop_geometry(240, 320, 112, "stretch")


def test_overlapping_windows_on_the_032_grid(media) -> None:
    """UnAV-100 grid: 0.96-s windows every 0.32 s; frames spread over the window, not the hop."""
    path = media("fps25.mp4", 3.0, fps=25, audio=None)
    d = decode(path, (VisualNeed("v", 3, "direct:16"),), Grid(0.32, 0.96))
    assert d.n_segments == 7  # whole 0.96-s windows: floor((3 - 0.96) / 0.32) + 1
    # segment t, frame k at t * 0.32 + k * 0.32 s -> source frame round(25 * time)
    want = [
        brightness(min(round(25 * (t * 0.32 + k * 0.32)), 74)) for t in range(7) for k in range(3)
    ]
    np.testing.assert_allclose(grid_brightness(d.frames("v")).astype(int), want, atol=4)


def test_clip_shorter_than_a_window_has_no_segment(media) -> None:
    """UnAV-100 grid: a 0.4-s clip holds no whole 0.96-s window, so no segment at all."""
    d = decode(
        media("short25.mp4", 0.4, fps=25, audio=None),
        (VisualNeed("v", 3, "direct:16"),),
        Grid(0.32, 0.96),
    )
    assert d.n_segments == 0 and d.frames("v").shape[:2] == (0, 3)


def test_segments_fixed_by_the_labels_pad_the_clip(media) -> None:
    """VGGSound-AVEL100k: 10 labels fix T; a shorter clip's last frame repeats, audio is 0."""
    d = decode_video(
        media("short1s.mp4", 1.0, fps=10), GRID, (VisualNeed("v", 2, "direct:16"),), n_segments=3
    )
    assert d.n_segments == 3 and d.frames("v").shape[:2] == (3, 2)
    assert d.audio.size == 4 * 16000 and not d.audio[2 * 16000 :].any()
    np.testing.assert_array_equal(d.frames("v")[1], d.frames("v")[2])


def test_shard_of_is_stable() -> None:
    assert shard_of("abc", 4) == 0x352441C2 % 4  # zlib.crc32(b"abc")
    assert {shard_of(f"v{i}", 3) for i in range(30)} == {0, 1, 2}


@pytest.mark.parametrize(
    "name,video", [("aac8k.mp4", True), ("aac8k.m4a", False), ("aac8k.mkv", True)]
)
def test_aac_padding_does_not_lengthen_the_clip(media, name: str, video: bool) -> None:
    """8 kHz AAC codes whole 1024-sample frames: 10 s decode to 10.112 s; the padding is
    not content, so the clip has 10 segments (as the manifest says), not 11.  MP4 declares
    the audio's length; Matroska does not, and there the video's end bounds the padding."""
    d = decode(media(name, 10.0, audio_rate=8000, video=video), NEED if video else ())
    assert d.n_segments == 10 and d.duration_s == pytest.approx(10.0, abs=0.01)
    assert d.status == ("ok" if video else "no_video")
    assert np.abs(d.audio[round(9.9 * 16000) : 10 * 16000]).max() > 0.2


@pytest.mark.parametrize("video", [True, False], ids=["video", "audio_only"])
def test_a_longer_audio_track_still_counts(media, video: bool) -> None:
    path = media("long_audio.mp4", 8.0, audio_rate=8000, audio_seconds=10.5, video=video)
    d = decode(path, NEED if video else ())
    assert d.n_segments == 11 and d.duration_s == pytest.approx(10.5, abs=0.01)
    assert np.abs(d.audio[10 * 16000 : round(10.45 * 16000)]).max() > 0.2


@pytest.mark.parametrize("codec", ["pcm_s16le", "aac"])
def test_the_downmix_keeps_the_level_of_every_layout(media, codec: str) -> None:
    """The same tone in every channel of mono, stereo and 5.1 gives the same mono RMS
    (the mean of the channels; libswresample's default matrix gave 0.22, 0.32, 0.76)."""
    rms = {}
    for channels in (1, 2, 6):
        path = media(f"ch{channels}.mov", 2.0, audio=codec, audio_rate=48000, channels=channels)
        a = decode(path).audio[1600:30400]  # away from the codec's edges
        rms[channels] = float(np.sqrt((a**2).mean()))
    assert rms[1] == pytest.approx(0.2236, rel=0.01)  # sqrt(0.3**2 / 2 + 0.1**2 / 2)
    assert rms[2] == pytest.approx(rms[1], rel=0.01) and rms[6] == pytest.approx(rms[1], rel=0.01)
