"""What the unsupervised method reads: one row per video, through the shared contract.

Visual maps ``(N, T, H, W, C_v)`` and audio ``(N, T, 128)`` come from two feature
stores keyed by video id (:mod:`avpipe.training.data`: one memory budget, streamed from
Zarr when they do not fit, one standardisation).  H, W, C_v and T are read from the
store, never assumed (VGG-19 7x7x512, ResNet-152 7x7x2048).  Videos missing from either
store (extraction skips undecodable ones) and videos whose store says they have no video
or no audio stream (all-zero rows; the contrastive losses pair the two streams, so there
is nothing to mask, see :mod:`avpipe.training.streams`) are dropped with a warning.
With ``data.standardize`` every stage z-scores the inputs with statistics of the
training videos; without it random-weight stores (VGGish std ~0.006) leave the
encoder's audio branch near-constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.training.data import Input, Loading, Split, Standardizer, open_splits

VideoFeatures = Split  # one row per video; ``video_ids`` in row order


@dataclass
class Batch:
    """visual (B, T, H*W, C_v) float32; audio (B, T, D_a) float32; mask (B, T) bool."""

    visual: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor


def _collate(b: dict[str, torch.Tensor]) -> Batch:
    return Batch(b["visual"].flatten(2, 3), b["audio"], b["mask"])


def dims(features: Split) -> tuple[int, int]:
    """(C_v, D_a): the visual channels and audio dims."""
    return features.shape("visual")[-1], features.shape("audio")[-1]


def train_samples(manifest: Manifest, split: str, videos: str = "all") -> list[Sample]:
    """Samples of the training split; ``auto`` = train, else unlabeled (folder adapter).

    ``videos="with_event"`` keeps only the samples whose annotation has an event: a
    weak label, or an interval of positive length (an empty ``[t, t)`` interval is the
    AVE annotation of a background-only video)."""
    if split == "auto":
        split = "train" if manifest.split("train") else "unlabeled"
    samples = [s for s in manifest.split(split) if s.present]
    if videos == "with_event":
        has_event = {
            e.sample_id for e in manifest.events if e.is_weak or (e.offset or 0) > (e.onset or 0)
        }
        samples = [s for s in samples if s.sample_id in has_event]
    elif videos != "all":
        raise ValueError(f"train_videos: {videos!r}, expected all or with_event")
    if not samples:
        what = "present samples" if videos == "all" else "present samples with an event"
        raise ValueError(f"manifest {manifest.dataset!r} has no {what} in split {split!r}")
    return samples


def open_features(
    manifest: Manifest,
    visual_store: Path,
    audio_store: Path,
    samples: list[Sample],
    loading: Loading,
    norm: Standardizer | None = None,
    name: str = "videos",
) -> Split:
    """Features of the videos of ``samples`` (one row per video, first sample of each;
    those absent from a store or without a stream dropped; ``name`` names them in the
    log), z-scored by ``norm``.

    Raises :class:`~avpipe.io.store.GridMismatchError` when a store is not on the
    manifest's segment grid."""
    first: dict[str, Sample] = {}
    for s in samples:
        first.setdefault(s.video_id, s)
    inputs = {"visual": Input(visual_store), "audio": Input(audio_store)}
    feats = open_splits(manifest, inputs, {name: list(first.values())}, loading, collate=_collate)[
        name
    ]
    if len(feats.shape("visual")) != 4:
        raise ValueError(
            f"{visual_store}: features have shape (N, {feats.shape('visual')}), "
            "expected (N, T, H, W, C) maps"
        )
    if len(feats.shape("audio")) != 2:
        raise ValueError(
            f"{audio_store}: features have shape (N, {feats.shape('audio')}), expected (N, T, D)"
        )
    feats.norm = norm
    return feats


def n_pseudo_classes(setting: int | str, manifest: Manifest) -> int:
    """C: the configured number, or the dataset's number of classes for ``auto``."""
    if setting == "auto":
        if not manifest.classes:
            raise ValueError(
                f"dataset {manifest.dataset!r} has no classes: "
                "set unsupervised.data.n_pseudo_classes"
            )
        return len(manifest.classes)
    if not isinstance(setting, int) or setting < 2:
        raise ValueError(f"n_pseudo_classes must be 'auto' or an integer >= 2, got {setting!r}")
    return setting
