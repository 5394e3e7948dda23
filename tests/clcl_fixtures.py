"""Clustered synthetic features + manifest for the CLCL tests (no media, no extractors).

Each video has one event class c over segments [onset, offset); on those segments the
visual map carries class c's prototype at two spatial positions and the audio carries
class c's audio prototype; other segments carry a shared background pattern.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.io.store import write_store


def make_dataset(
    root: Path,
    n_classes: int = 4,
    n_train: int = 64,
    n_test: int = 24,
    hw: tuple[int, int] = (2, 2),
    channels: int = 16,
    audio_dim: int = 128,
    noise: float = 0.6,
    seed: int = 0,
    labelled: bool = True,
) -> tuple[Manifest, Path, Path]:
    """Writes ``root/manifest``, ``root/visual.zarr``, ``root/audio.zarr``."""
    rng = np.random.default_rng(seed)
    T = 10
    classes = [f"class{c}" for c in range(n_classes)]
    proto_v = rng.normal(size=(n_classes, channels)) * 2.0
    proto_a = rng.normal(size=(n_classes, audio_dim)) * 2.0
    bg_v, bg_a = rng.normal(size=channels), rng.normal(size=audio_dim)
    n = n_train + n_test
    P = hw[0] * hw[1]
    visual = rng.normal(scale=noise, size=(n, T, P, channels)) + bg_v
    audio = rng.normal(scale=noise, size=(n, T, audio_dim)) + bg_a
    samples, events = [], []
    for i in range(n):
        c = i % n_classes
        on, off = int(rng.integers(0, 4)), int(rng.integers(6, 11))
        pos = rng.choice(P, size=min(2, P), replace=False)
        visual[i, on:off, pos] += proto_v[c] - bg_v
        audio[i, on:off] += proto_a[c] - bg_a
        split = ("train" if i < n_train else "test") if labelled else "unlabeled"
        samples.append(Sample(f"s{i:03d}", f"v{i:03d}", split, f"videos/v{i:03d}.mp4", 10.0, T))
        if labelled:
            events.append(Event(f"s{i:03d}", classes[c], "audio-visual", float(on), float(off)))
    manifest = Manifest(
        "toy", "ave" if labelled else "folder", classes if labelled else [], samples, events
    )
    manifest.write(root / "manifest")
    ids = [s.video_id for s in samples]
    vpath = write_store(
        root / "visual.zarr",
        {"features": visual.reshape(n, T, *hw, channels).astype(np.float16)},
        ids,
        [T] * n,
        {"recipe": "toy_maps"},
    )
    apath = write_store(
        root / "audio.zarr",
        {"features": audio.astype(np.float32)},
        ids,
        [T] * n,
        {"recipe": "toy_audio"},
    )
    return manifest, vpath, apath


def small_config() -> dict:
    """Stage settings small enough for a CPU test (seconds)."""
    return {
        "data": {"n_pseudo_classes": "auto", "num_threads": 2, "device": "cpu"},
        "pretrain": {
            "epochs": 15,
            "batch_size": 16,
            "lr": 0.05,
            "encoder": {"d_model": 32, "heads": 4},
        },
        "selflabel": {"hidden": 32, "top_k": 8, "epochs": 30, "batch_size": 16, "lr": 0.05},
        "em": {"rounds": 2, "epochs": 15, "batch_size": 16, "annotator_epochs": 10},
    }
