"""Hostile media, built at test time: what each file is and what avpipe must say about it.

Every clip is tiny (32 x 32, a few frames per second) unless its size or length is
the point (4K: one 1-s clip at 2 fps; 60 s: 16 x 16 at 1 fps).  Built with PyAV
(``tests/io/avmedia.py``) in well under a second each, except the 4K clip (~0.5 s).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from avmedia import make_media  # noqa: E402

# Frames of the VFR clip (s): bursts and gaps, the last gap 0.9 s but the frame 0.1 s
# long (fps=10 is the nominal rate the muxer writes as each frame's duration).
VFR_TIMES = [0.0, 0.1, 0.15, 0.5, 0.55, 0.7, 1.4, 1.45, 1.9, 2.8]


@dataclass(frozen=True)
class Case:
    """One file and the exact outcome: manifest row, problems.tsv rows, extraction status.

    ``reason``: a regex matched at the start of status.tsv's reason ("" = empty);
    ``n_segments``: extraction's count (None when the file is not in the stores);
    ``manifest_segments``: samples.tsv's count (container metadata, before decoding);
    ``problems``: problems.tsv rows ``(problem, reason prefix)``; ``source``: a part of
    status.tsv's source column.
    """

    name: str
    build: Callable[[Path], object]
    status: str
    reason: str
    n_segments: int | None
    manifest_segments: int
    problems: tuple[tuple[str, str], ...] = ()
    source: str = ""
    has_audio: bool = True
    has_video: bool = True

    @property
    def video_id(self) -> str:
        return Path(self.name).stem


def _cut_in_half(path: Path) -> None:
    """A faststart MP4 (index first) cut in half: the index promises 4 s, the data stops."""
    make_media(path, 4.0, options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_in_the_middle(path: Path) -> None:
    """512 random bytes (seed 0) over the middle of a 4-s faststart MP4's media data."""
    make_media(path, 4.0, options={"movflags": "faststart"})
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid - 256 : mid + 256] = np.random.default_rng(0).bytes(512)
    path.write_bytes(bytes(data))


CANNOT_OPEN = (("unreadable", "cannot open: "),)

CASES = [
    Case("short.mp4", lambda p: make_media(p, 0.2, fps=10), "ok", "", 1, 1),
    Case("long.mp4", lambda p: make_media(p, 60.0, fps=1, size=(16, 16)), "ok", "", 60, 60),
    Case(
        "uhd.mp4",
        lambda p: make_media(p, 1.0, fps=2, size=(3840, 2160)),
        "ok",
        "",
        1,
        1,
        source="h264 3840x2160 2fps",
    ),
    Case(
        "odd.mp4",
        lambda p: make_media(p, 2.0, size=(33, 17), pix_fmt="yuv444p"),
        "ok",
        "",
        2,
        2,
        source="h264 33x17",
    ),
    Case(
        "vfr.mp4",
        lambda p: make_media(p, 3.0, fps=10, frame_times=VFR_TIMES),
        "ok",
        "",
        3,
        3,
    ),
    Case(
        "aac8k.mp4",
        lambda p: make_media(p, 10.0, fps=1, size=(16, 16), audio_rate=8000),
        "ok",
        "",
        10,  # not 11: the AAC padding past 10 s is dropped
        10,
        source="aac 8000Hz 1ch",
    ),
    Case(
        "surround.mp4",
        lambda p: make_media(p, 2.0, channels=6, audio_rate=48000),
        "ok",
        "",
        2,
        2,
        source="aac 48000Hz 6ch",
    ),
    Case(
        "vp9.webm",
        lambda p: make_media(p, 2.0, codec="libvpx-vp9", audio="libopus", audio_rate=48000),
        "ok",
        "",
        2,
        2,
        source="vp9 32x32 4fps; opus 48000Hz",
    ),
    Case(
        "mp3.mkv",
        lambda p: make_media(p, 2.0, audio="libmp3lame", audio_rate=44100),
        "ok",
        "",
        2,
        2,
        source="h264 32x32 4fps; mp3",
    ),
    Case(
        "noaudio.mp4",
        lambda p: make_media(p, 2.0, audio=None),
        "no_audio",
        "no audio stream$",
        2,
        2,
        (("no_audio", "no audio stream"),),
        has_audio=False,
    ),
    Case(
        "novideo.m4a",
        lambda p: make_media(p, 2.0, video=False),
        "no_video",
        "no video stream$",
        2,
        2,
        (("undecodable", "no video stream"),),
        has_video=False,
    ),
    Case(
        "truncated.mp4",
        _cut_in_half,
        "partial",
        r"truncated: decoded (1\.\d\d) of 4\.00 s \(audio packet: ",
        2,
        4,  # the index's duration: the manifest does not decode the whole file
    ),
    Case(
        "corrupt.mp4",
        _garbage_in_the_middle,
        "partial",
        r"corrupt: decoding stopped at (1\.\d\d) of 4\.00 s: video packet: ",
        2,
        4,
    ),
    Case(
        "zero.mp4",
        lambda p: p.write_bytes(b""),
        "failed",
        "zero-length: ",
        None,
        0,
        (("unreadable", "empty file (0 bytes)"),),
    ),
    Case(
        "text.mp4",
        lambda p: p.write_text("this is a text file, not a video\n"),
        "failed",
        "cannot open: ",
        None,
        0,
        CANNOT_OPEN,
    ),
    Case("café clip.mp4", lambda p: make_media(p, 2.0), "ok", "", 2, 2),
    Case("動画 ファイル (1).mkv", lambda p: make_media(p, 1.0), "ok", "", 1, 1),
]


def build(folder: Path) -> Path:
    """Write every case's file into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        case.build(folder / case.name)
    return folder
