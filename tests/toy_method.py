"""Toy AVE method: per-segment softmax regression on the audio features.

A fourth method family for tests/test_rerun.py, written as docs/extending.md says: the
test copies this file to avpipe/methods/toyave/__init__.py of a workflow copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avpipe.datasets.manifest import Manifest
from avpipe.io.store import FeatureStore
from avpipe.methods.registry import Trained
from avpipe.metrics.ave import segment_labels


@dataclass(frozen=True)
class Data:
    audio_recipe: str = "vggish"
    device: str = "cpu"


@dataclass(frozen=True)
class Config:
    data: Data = field(default_factory=Data)
    epochs: int = 30
    lr: float = 0.5


def _split(manifest: Manifest, stores: dict[str, Path], name: str) -> tuple[list, torch.Tensor]:
    samples = manifest.split(name)
    x = FeatureStore(stores["audio_recipe"]).load([s.video_id for s in samples])
    return samples, torch.from_numpy(x)


def fit(cfg: Config, manifest: Manifest, stores: dict[str, Path], seed: int) -> Trained:
    samples, x = _split(manifest, stores, "train")
    y = torch.from_numpy(segment_labels(manifest, samples, n_segments=x.shape[1]))
    mean, std = x.mean((0, 1)), x.std((0, 1)) + 1e-6
    model = torch.nn.Linear(x.shape[-1], len(manifest.classes) + 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        loss = torch.nn.functional.cross_entropy(model((x - mean) / std).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"epoch": epoch, "loss": loss.item()})
    return Trained(model.state_dict(), history, model=(model, mean, std))


def predict(
    trained: Trained, cfg: Config, manifest: Manifest, stores: dict[str, Path]
) -> dict[str, np.ndarray]:
    samples, x = _split(manifest, stores, "test")
    model, mean, std = trained.model
    with torch.no_grad():
        pred = model((x - mean) / std).argmax(-1).numpy()
    ids = np.asarray([s.sample_id for s in samples])
    return {"sample_id": ids, "segment_pred": pred, "split": np.asarray("test")}
