"""Probe a video file with PyAV: duration, streams, and whether a first frame decodes.

Used twice per manifest build (durations by the adapters, the coverage report by
the stage), so results are cached per (path, decode) within a process.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import av

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """``duration``: seconds from container metadata (None if unknown).

    ``decodable`` is None when decoding was not attempted; ``opened`` is False when
    PyAV could not open the file at all (then nothing else is known).
    """

    duration: float | None
    has_video: bool
    has_audio: bool
    decodable: bool | None
    error: str = ""
    opened: bool = True


@functools.cache
def probe(path: str, decode: bool = True) -> ProbeResult:
    """Open ``path``; with ``decode`` also decode its first video frame.

    Never raises for a broken file: the reason is returned in ``error``.
    """
    if os.path.getsize(path) == 0:
        return ProbeResult(
            None, False, False, False if decode else None, "empty file (0 bytes)", opened=False
        )
    try:
        with av.open(path) as container:
            duration = _duration(container)
            has_video = bool(container.streams.video)
            has_audio = bool(container.streams.audio)
            decodable: bool | None = None
            error = ""
            if decode:
                decodable, error = (
                    _decode_first_frame(container) if has_video else (False, "no video stream")
                )
            return ProbeResult(duration, has_video, has_audio, decodable, error)
    except (av.FFmpegError, OSError, ValueError) as e:
        return ProbeResult(
            None, False, False, False if decode else None, f"cannot open: {e}", opened=False
        )


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    for s in container.streams:
        if s.duration is not None and s.time_base is not None and s.duration > 0:
            return float(s.duration * s.time_base)
    return None


def _decode_first_frame(container: av.container.InputContainer) -> tuple[bool, str]:
    try:
        for _frame in container.decode(video=0):
            return True, ""
    except (av.FFmpegError, ValueError) as e:
        return False, f"decode error: {e}"
    return False, "no video frame decoded"
