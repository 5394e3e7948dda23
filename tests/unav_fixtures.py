"""A tiny dataset in the UnAV-100 layout: MP4s of 0.2 to 25 s and ``unav100_annotations.json``.

Two classes, float-second events (some shorter than half a 0.96-s window); class ``beep``
is a 440-Hz tone and a bright frame, ``buzz`` an 880-Hz tone and a red frame.  The
test split holds the clips of 0.2, 3.7, 10 and 25 s the UnAV-100 workflow test checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avpipe.datasets.synthetic.write import write_mp4

FPS, RATE, SIZE = 25, 16000, 32
CLASSES = ("beep", "buzz")
TONES = {"beep": 440.0, "buzz": 880.0}
# video id -> (subset, duration s, [(class, onset s, offset s)])
CLIPS: dict[str, tuple[str, float, list[tuple[str, float, float]]]] = {
    "trainA00001": ("train", 3.0, [("beep", 0.0, 3.0)]),
    "trainB00002": ("train", 4.0, [("buzz", 1.0, 4.0)]),
    "trainC00003": ("train", 3.0, [("beep", 0.0, 1.5), ("buzz", 1.5, 3.0)]),
    "valA0000004": ("validation", 3.0, [("beep", 0.0, 2.0), ("buzz", 1.5, 3.0)]),
    "clip0p2_005": ("test", 0.2, [("beep", 0.0, 0.2)]),
    "clip3p7_006": ("test", 3.7, [("beep", 0.0, 3.7), ("buzz", 1.0, 1.2)]),
    "clip10s_007": ("test", 10.0, [("beep", 0.0, 10.0), ("buzz", 3.0, 3.2)]),
    "clip25s_008": ("test", 25.0, [("buzz", 10.5, 25.0)]),
}


def _media(
    duration: float, events: list[tuple[str, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    n_frames = max(1, round(duration * FPS))
    t_frame = np.arange(n_frames) / FPS
    frames = np.full((n_frames, SIZE, SIZE, 3), 40, dtype=np.uint8)
    t = np.arange(round(duration * RATE)) / RATE
    audio = np.zeros(t.size, dtype=np.float32)
    for label, on, off in events:
        lit = (t_frame >= on) & (t_frame < off)
        channel = 1 if label == "beep" else 0
        frames[lit, :, :, channel] = 220
        on_audio = (t >= on) & (t < off)
        audio[on_audio] += 0.2 * np.sin(2 * np.pi * TONES[label] * t[on_audio])
    return frames, audio[None, :]


def write_unav_dataset(root: Path) -> Path:
    """Write the clips and their annotation file into ``root``; returns ``root``."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    database = {}
    for vid, (subset, duration, events) in CLIPS.items():
        frames, audio = _media(duration, events)
        write_mp4(root / "videos" / f"{vid}.mp4", frames, audio, FPS, RATE)
        database[vid] = {
            "subset": subset,
            "duration": duration,
            "fps": float(FPS),
            "annotations": [
                {"segment": [on, off], "label": label, "label_id": CLASSES.index(label)}
                for label, on, off in events
            ],
        }
    (root / "unav100_annotations.json").write_text(json.dumps({"database": database}))
    return root
