"""Media made on the fly with PyAV: clips whose frame k has brightness ``(20 * k) % 240``
and whose audio is a known tone, in several containers and codecs, plus broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def tone(n: int, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 3 * freq * t)).astype(
        np.float32
    )


def brightness(k: int) -> int:
    return (20 * k) % 240


def make_media(
    path: Path,
    seconds: float,
    *,
    fps: Fraction | int = 4,
    size: tuple[int, int] = (32, 32),  # (W, H)
    video: bool = True,
    audio: str | None = "aac",
    audio_rate: int = 16000,
    channels: int = 1,  # 1, 2 or 6 (5.1): the same tone in every channel
    audio_seconds: float | None = None,  # another length for the audio track
    options: dict[str, str] | None = None,
    codec: str = "libx264",  # video encoder (libvpx-vp9, mpeg4, ...)
    pix_fmt: str = "yuv420p",  # yuv444p for odd frame sizes
    frame_times: list[float] | None = None,  # seconds of each frame (variable frame rate)
) -> Path:
    """A ``seconds``-long clip; ``audio`` is an encoder name (aac, mp2, pcm_s16le, ...) or None.

    ``frame_times`` replaces the ``seconds * fps`` evenly spaced frames (then the
    stream's time base is 1 ms).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=options or {}) as out:
        v = None
        if video:
            v = out.add_stream(codec, rate=fps)
            v.width, v.height = size
            v.pix_fmt = pix_fmt
            if frame_times is not None:
                v.codec_context.time_base = Fraction(1, 1000)
        a = out.add_stream(audio, rate=audio_rate, layout=LAYOUTS[channels]) if audio else None
        if v is not None:
            times = frame_times
            for k in range(round(seconds * float(fps)) if times is None else len(times)):
                img = np.full((size[1], size[0], 3), brightness(k), dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                if times is not None:
                    frame.pts, frame.time_base = round(times[k] * 1000), Fraction(1, 1000)
                for pkt in v.encode(frame):
                    out.mux(pkt)
            for pkt in v.encode():
                out.mux(pkt)
        if a is not None:
            n = round((seconds if audio_seconds is None else audio_seconds) * audio_rate)
            sig = np.repeat(tone(n, audio_rate)[None, :], channels, axis=0)
            step = a.codec_context.frame_size or 1024
            fmt = a.codec_context.format.name
            for start in range(0, n, step):
                chunk = sig[:, start : start + step]
                if fmt.endswith("p"):
                    frame = av.AudioFrame.from_ndarray(
                        _as(chunk, fmt), format=fmt, layout=a.layout.name
                    )
                else:
                    frame = av.AudioFrame.from_ndarray(
                        _as(chunk.T.reshape(1, -1), fmt), format=fmt, layout=a.layout.name
                    )
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                for pkt in a.encode(frame):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
    return path


def _as(x: np.ndarray, fmt: str) -> np.ndarray:
    if fmt.startswith("s16"):
        return np.ascontiguousarray((x * 32767).astype(np.int16))
    if fmt.startswith("s32"):
        return np.ascontiguousarray((x * 2**31 - 1).astype(np.int32))
    return np.ascontiguousarray(x.astype(np.float32))
