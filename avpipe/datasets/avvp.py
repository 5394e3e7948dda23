"""Weakly supervised AVVP data: LLP-recipe features + targets from the manifest.

Inputs per video (feature stores of ``avpipe extract``, one row per video):
    audio   ``vggish``         features (N, T, Da)            Da = 128
    frames  ``resnet152_llp``  frames (N, T, k, Df) or features (N, T, Df); Df = 2048, k = 8
    motion  ``r2plus1d18``     features (N, T, Dm)            Dm = 512
D, k and T are read from the stores (the synthetic default shrinks them).

Targets (methods spec §1.2, §5.4):
    ``labels`` (N, C): modality-agnostic video-level multi-hot labels, the training
        target (LLP weak labels; UnAV-100: the classes of its annotated events);
    ``dense_audio`` / ``dense_visual`` (N, T, C): per-modality segment labels of the
        dense annotations (val/test); audio-visual events count for both modalities.

Videos whose stores say they have no audio or no video stream (all-zero rows), and
videos without a segment (``no_segment``: UnAV-100 clips shorter than one window), are left
out of every split, training and evaluation alike (:mod:`avpipe.training.streams`):
HAN and CoLeaF attend across the two modalities and have no clean way to mask one, and
their weak labels do not say which modality an event is heard or seen in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.store import FeatureStore
from avpipe.training.streams import drop_missing_streams

log = logging.getLogger(__name__)


@dataclass
class AVVPSplit:
    """Arrays of one split; features stay float16 in memory, batches are float32."""

    sample_ids: list[str]
    audio: np.ndarray  # (N, T, Da)
    frames: np.ndarray  # (N, T, k, Df)
    motion: np.ndarray  # (N, T, Dm)
    mask: np.ndarray  # (N, T) bool
    labels: np.ndarray  # (N, C) float32
    dense_audio: np.ndarray  # (N, T, C) float32
    dense_visual: np.ndarray  # (N, T, C) float32
    # reason ("no_audio", "no_video") -> video ids left out for a missing stream
    missing: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def n_segments(self) -> np.ndarray:
        return self.mask.sum(1).astype(np.int64)

    def batch(self, idx: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Tensors of the samples ``idx``: audio (B,T,Da), frames (B,T,k,Df), motion (B,T,Dm),
        mask (B,T) bool, labels (B,C)."""

        def t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a[idx]), dtype=dtype, device=device)

        return {
            "audio": t(self.audio),
            "frames": t(self.frames),
            "motion": t(self.motion),
            "mask": t(self.mask, torch.bool),
            "labels": t(self.labels),
        }


@dataclass(frozen=True)
class Dims:
    audio: int
    frames: int
    motion: int
    frames_per_segment: int
    n_classes: int


def _frames(store: FeatureStore, ids: list[str], use_frames: bool, T: int) -> np.ndarray:
    """(N, T, k, Df): per-frame 2-D features grouped by segment (k = 1 for per-segment)."""
    if use_frames and "frames" in store.group:
        raw = store.load(ids, name="frames", dtype=np.float16)
        if raw.ndim == 4:  # (N, T, k, Df)
            return raw
        # stores of avpipe before the (video, segment, frame, channel) layout: (N, T*k, Df)
        if raw.shape[1] % T:
            raise ValueError(
                f"{store.path}: frames has {raw.shape[1]} rows per video, not a multiple of T = {T}"
            )
        return raw.reshape(raw.shape[0], T, raw.shape[1] // T, raw.shape[2])
    return store.load(ids, dtype=np.float16)[:, :, None, :]


def load_split(
    manifest: Manifest,
    samples: list[Sample],
    audio: FeatureStore,
    frames: FeatureStore,
    motion: FeatureStore,
    use_frames: bool = True,
) -> AVVPSplit:
    """Features and targets of ``samples``, T = the stores' T_max."""
    ids = [s.video_id for s in samples]
    a = audio.load(ids, dtype=np.float16)
    T = a.shape[1]
    for st in (frames, motion):
        if st.array().shape[1] != T:
            raise ValueError(
                f"{st.path}: T_max {st.array().shape[1]} differs from {audio.path} ({T})"
            )
    mask = audio.mask[audio.rows(ids)][:, :T]
    weak = manifest.video_targets(samples, ("unspecified",))
    labels = np.where(weak.any(1, keepdims=True), weak, manifest.video_targets(samples))
    return AVVPSplit(
        sample_ids=[s.sample_id for s in samples],
        audio=a,
        frames=_frames(frames, ids, use_frames, T),
        motion=motion.load(ids, dtype=np.float16),
        mask=mask,
        labels=labels.astype(np.float32),
        dense_audio=manifest.segment_targets(samples, ("audio", "audio-visual"), n_segments=T),
        dense_visual=manifest.segment_targets(samples, ("visual", "audio-visual"), n_segments=T),
    )


def _without_segments(samples: list[Sample], audio: FeatureStore, where: str) -> list[str]:
    """Videos with no segment (UnAV-100: clips shorter than one 0.96-s window): nothing to
    train on or to predict; logged, and recorded by the stage.  Their events still count
    in UnAV-100's mAP (avpipe.metrics.unav), as in the reference evaluation."""
    ids = [s.video_id for s in samples]
    if not ids:
        return []
    n = audio.n_segments[audio.rows(ids)]
    empty = list(dict.fromkeys(v for v, k in zip(ids, n, strict=True) if k == 0))
    if empty:
        log.warning(
            "%s: %d videos have no segment (shorter than one window) and are left out: %s",
            where,
            len(empty),
            ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else ""),
        )
    return empty


def load(
    manifest_dir: str | Path,
    audio_store: str | Path,
    frames_store: str | Path,
    motion_store: str | Path,
    splits: tuple[str, ...] = ("train", "val", "test"),
    use_frames: bool = True,
) -> tuple[Manifest, dict[str, AVVPSplit], Dims]:
    """Manifest, one ``AVVPSplit`` per split (present samples with both streams; the
    others in ``AVVPSplit.missing``) and the input dimensions.

    Raises :class:`~avpipe.io.store.GridMismatchError` when a store is not on the
    manifest's segment grid."""
    manifest = Manifest.read(manifest_dir)
    stores = [FeatureStore(p) for p in (audio_store, frames_store, motion_store)]
    for st in stores:
        st.check_grid(manifest.segment_hop, manifest.segment_win)
    out: dict[str, AVVPSplit] = {}
    for name in splits:
        samples = [
            s for s in manifest.split(name) if s.present and all(s.video_id in st for st in stores)
        ]
        dropped = len(manifest.split(name)) - len(samples)
        if dropped:
            log.warning(
                "%s/%s: %d samples absent from a feature store are skipped",
                manifest.dataset,
                name,
                dropped,
            )
        where = f"{manifest.dataset}/{name}"
        kept, missing = drop_missing_streams([s.video_id for s in samples], stores, where)
        keep = set(kept)
        samples = [s for s in samples if s.video_id in keep]
        empty = _without_segments(samples, stores[0], where)
        if empty:
            missing["no_segment"] = empty
            samples = [s for s in samples if s.video_id not in set(empty)]
        if not samples:
            raise ValueError(f"{manifest.dataset}: split {name!r} has no sample with features")
        out[name] = load_split(manifest, samples, *stores, use_frames=use_frames)
        out[name].missing = missing
    first = out[splits[0]]
    dims = Dims(
        audio=first.audio.shape[2],
        frames=first.frames.shape[3],
        motion=first.motion.shape[2],
        frames_per_segment=first.frames.shape[2],
        n_classes=len(manifest.classes),
    )
    return manifest, out, dims


def standardize(splits: dict[str, AVVPSplit], fit_on: str = "train") -> dict[str, np.ndarray]:
    """Per-dimension z-scoring of audio, frames and motion with the mean and std of the
    real segments of ``fit_on``, applied in place to every split.  Returns the statistics
    (``<input>_mean``, ``<input>_std``) so that a checkpoint can carry them.

    Not in the reference codes (pretrained LLP features have a usable scale); meant for
    features whose scale is far from 1, e.g. the random-weight extractors of the
    synthetic default."""
    ref = splits[fit_on]
    stats: dict[str, np.ndarray] = {}
    for name in ("audio", "frames", "motion"):
        x = getattr(ref, name)[ref.mask].astype(np.float32)  # (segments, [k,] D)
        x = x.reshape(-1, x.shape[-1])
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 1e-8 * max(float(std.max()), 1e-30), std, 1.0).astype(np.float32)
        stats[f"{name}_mean"], stats[f"{name}_std"] = mean, std
        for split in splits.values():
            z = (getattr(split, name).astype(np.float32) - mean) / std
            z[~split.mask] = 0.0
            setattr(split, name, z.astype(np.float16))
    return stats
