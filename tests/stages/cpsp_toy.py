"""A separable toy AVE-format dataset for the PSP / CPSP tests (no media, no extractors).

Each video has one event class c over segments [onset, offset); on those segments the
visual map carries class c's prototype at one or two spatial positions and the audio
class c's prototype; other segments carry a shared background pattern plus noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.io.store import write_store


def make_toy(
    root: Path,
    n_classes: int = 3,
    sizes: tuple[int, int, int] = (36, 12, 12),
    hw: tuple[int, int] = (3, 3),
    channels: int = 16,
    audio_dim: int = 32,
    noise: float = 0.5,
    scale: float = 1.0,
    seed: int = 0,
) -> tuple[Manifest, Path, Path]:
    """Writes ``root/manifest``, ``root/visual.zarr`` (N, 10, H, W, C), ``root/audio.zarr``.

    ``scale`` multiplies every feature (to exercise standardisation).
    """
    rng = np.random.default_rng(seed)
    T = 10
    classes = [f"class{c}" for c in range(n_classes)]
    proto_v = rng.normal(size=(n_classes, channels)) * 2.0
    proto_a = rng.normal(size=(n_classes, audio_dim)) * 2.0
    bg_v, bg_a = rng.normal(size=channels), rng.normal(size=audio_dim)
    n = sum(sizes)
    P = hw[0] * hw[1]
    visual = rng.normal(scale=noise, size=(n, T, P, channels)) + bg_v
    audio = rng.normal(scale=noise, size=(n, T, audio_dim)) + bg_a
    splits = ["train"] * sizes[0] + ["val"] * sizes[1] + ["test"] * sizes[2]
    samples, events = [], []
    for i in range(n):
        c = i % n_classes
        on, off = int(rng.integers(0, 4)), int(rng.integers(6, 11))
        pos = rng.choice(P, size=min(2, P), replace=False)
        visual[i, on:off, pos] += proto_v[c] - bg_v
        audio[i, on:off] += proto_a[c] - bg_a
        samples.append(Sample(f"s{i:03d}", f"v{i:03d}", splits[i], f"videos/v{i:03d}.mp4", 10.0, T))
        events.append(Event(f"s{i:03d}", classes[c], "audio-visual", float(on), float(off)))
    manifest = Manifest("toy", "ave", classes, samples, events)
    manifest.write(root / "manifest")
    ids = [s.video_id for s in samples]
    vpath = write_store(
        root / "visual.zarr",
        {"features": (scale * visual).reshape(n, T, *hw, channels).astype(np.float16)},
        ids,
        [T] * n,
        {"recipe": "toy_maps"},
    )
    apath = write_store(
        root / "audio.zarr",
        {"features": (scale * audio).astype(np.float32)},
        ids,
        [T] * n,
        {"recipe": "toy_audio"},
        has_audio=[True] * n,
    )
    return manifest, vpath, apath


def tiny_config(
    experiment: str, setting: str, weights: dict, epochs: int = 12, **run: object
) -> dict:
    """A CpspStage dict small enough for a CPU test (about a second per run)."""
    return {
        "experiment": experiment,
        "data": {"standardize": True, "device": "cpu", "num_threads": 1},
        "model": {
            "audio_hidden": 32,
            "embed": 32,
            "attention_hidden": 32,
            "visual_hidden": 32,
            "lstm_hidden": 32,
            "segment_hidden": 16,
        },
        "run": {
            "setting": setting,
            "weights": weights,
            "train": {
                "epochs": epochs,
                "batch_size": 12,
                "lr": 3e-3,
                "milestones": [],
                "grad_clip": 1.0,
                "log_every": 1000,
            },
            **run,
        },
    }
