"""Shared fixtures: the real AVE and LLP annotation files, a workflow copy, tiny MP4s."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from workflow_helpers import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA} (set AVPIPE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """The workflow (Snakefile, workflow/, config/, profiles/) copied into a scratch folder,
    so .snakemake/ and results/ never land in the repository."""
    return copy_workflow(tmp_path)


def write_mp4(path: Path, seconds: float, audio: bool = True, fps: int = 4) -> Path:
    """A 32x32 H.264 clip (``seconds`` long) with an optional 440-Hz AAC tone at 16 kHz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=16000) if audio else None
        for i in range(max(1, round(seconds * fps))):
            img = np.full((32, 32, 3), (i * 20) % 255, dtype=np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        if a is not None:
            n = int(seconds * 16000)
            t = np.arange(n) / 16000
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(
                    tone[:, start : start + 1024], format="fltp", layout="mono"
                )
                frame.sample_rate = 16000
                frame.pts = start
                frame.time_base = Fraction(1, 16000)
                for pkt in a.encode(frame):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
    return path


@pytest.fixture
def mp4_factory():
    return write_mp4
