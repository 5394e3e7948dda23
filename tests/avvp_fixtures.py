"""A tiny LLP-format dataset with class-coded features for the AVVP tests (no media).

Each video holds one or two classes; each class is audible-only, visible-only or
audio-visual over a random run of segments.  On its audio segments the audio
features carry the class's audio prototype; on its visual segments the 2-D frame
features and the 3-D features carry the class's visual prototypes.  Train videos
have weak labels only (modality ``unspecified``); val/test also have dense audio and
visual events, as in LLP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.io.store import write_store

DIMS = {"audio": 16, "frames": 24, "motion": 12}


def _interval(rng: np.random.Generator, T: int) -> tuple[int, int]:
    """A run of at least T/2 segments (LLP events are long: many span the whole clip)."""
    length = int(rng.integers(T // 2, T + 1))
    on = int(rng.integers(0, T - length + 1))
    return on, on + length


def make_avvp_dataset(
    root: Path,
    n_classes: int = 6,
    sizes: tuple[int, int, int] = (64, 24, 24),
    T: int = 10,
    frames_per_segment: int = 2,
    noise: float = 0.5,
    seed: int = 0,
) -> dict[str, Path]:
    """Writes ``root/manifest`` and the three stores; returns their paths."""
    rng = np.random.default_rng(seed)
    classes = [f"class{c}" for c in range(n_classes)]
    proto = {k: rng.normal(size=(n_classes, d)) * 1.5 for k, d in DIMS.items()}
    n = sum(sizes)
    k = frames_per_segment
    audio = rng.normal(scale=noise, size=(n, T, DIMS["audio"]))
    frames = rng.normal(scale=noise, size=(n, T, k, DIMS["frames"]))
    motion = rng.normal(scale=noise, size=(n, T, DIMS["motion"]))
    split_names = ["train"] * sizes[0] + ["val"] * sizes[1] + ["test"] * sizes[2]
    samples, events = [], []
    for i, split in enumerate(split_names):
        sid = f"vid{i:03d}"
        samples.append(Sample(sid, sid, split, f"video/{sid}.mp4", float(T), T))
        for c in rng.choice(n_classes, size=int(rng.integers(1, 3)), replace=False):
            kind = rng.choice(["audio", "visual", "av"], p=[0.2, 0.2, 0.6])
            events.append(Event(sid, classes[c], "unspecified"))
            on, off = _interval(rng, T)  # audio-visual events are aligned, as most of LLP's
            if kind in ("audio", "av"):
                audio[i, on:off] += proto["audio"][c]
                if split != "train":
                    events.append(Event(sid, classes[c], "audio", float(on), float(off)))
            if kind in ("visual", "av"):
                frames[i, on:off] += proto["frames"][c]
                motion[i, on:off] += proto["motion"][c]
                if split != "train":
                    events.append(Event(sid, classes[c], "visual", float(on), float(off)))
    manifest = Manifest("toy_llp", "llp", classes, samples, events)
    manifest.write(root / "manifest")
    ids = [s.video_id for s in samples]
    segs = [T] * n
    return {
        "manifest": root / "manifest",
        "audio": write_store(
            root / "vggish.zarr",
            {"features": audio.astype(np.float32)},
            ids,
            segs,
            {"recipe": "vggish"},
            has_audio=[True] * n,
        ),
        "frames": write_store(
            root / "resnet152_llp.zarr",
            {
                "features": frames.mean(2).astype(np.float32),
                "frames": frames.astype(np.float32),
            },
            ids,
            segs,
            {"recipe": "resnet152_llp"},
        ),
        "motion": write_store(
            root / "r2plus1d18.zarr",
            {"features": motion.astype(np.float32)},
            ids,
            segs,
            {"recipe": "r2plus1d18"},
        ),
    }


def small_config(method: str, epochs: int = 20) -> dict:
    """Method settings small enough for a CPU test (about a second per method)."""
    model = {"d_model": 32, "ffn": 32}
    if method == "han":
        return {
            "model": model,
            "train": {"epochs": epochs, "batch_size": 16, "lr": 2e-3, "lr_step": 100},
        }
    return {
        "anchor": model,
        "reference": {"d_model": 32, "ffn": 32},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 2e-3, "lr_step": 100},
    }
