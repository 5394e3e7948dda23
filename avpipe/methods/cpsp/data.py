"""Features and targets of one split for PSP / CPSP (methods spec §3.1).

Visual maps (N, T, H, W, C_v) and audio vectors (N, T, D_a) come from two feature
stores keyed by video id (H, W, C_v, D_a, T read from the stores); targets come from
the manifest: segment labels (N, T) with background = C, the foreground indicator,
video-level multi-hot labels (N, C) and one category per video: by default the largest
class index among its event segments, as the released CPSP scripts derive it
(``labels_evn.max(-1)`` in ``fully_supv_main.py``); ``video_class: most_frequent`` is
avpipe's earlier choice (its most frequent event class).  Maps stay in memory
as float16 (AVE: ~2 GiB) when they fit ``memory_budget_mb``, else each batch reads
them from the store (VGGSound-AVEL100k: ~50 GB); they become float32 per batch.
Samples whose video has no video or no audio stream (all-zero rows in a store) are left
out of every split, training and evaluation alike (:mod:`avpipe.training.streams`):
PSP's fusion has no way to mask a modality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.store import FeatureStore
from avpipe.metrics.ave import segment_labels
from avpipe.training.streams import drop_missing_streams

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """visual (B, T, P, C_v) float32; audio (B, T, D_a); mask (B, T) bool; labels (B, T)
    int64 (background = C); fg (B, T) float32; video_label (B, C); video_class (B,) int64
    (-1 = no event)."""

    visual: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    fg: torch.Tensor
    video_label: torch.Tensor
    video_class: torch.Tensor


@dataclass
class Normalizer:
    """Per-channel mean/std of the training split (identity when disabled)."""

    v_mean: np.ndarray
    v_std: np.ndarray
    a_mean: np.ndarray
    a_std: np.ndarray

    @classmethod
    def identity(cls, visual_dim: int, audio_dim: int) -> Normalizer:
        return cls(
            np.zeros(visual_dim, np.float32),
            np.ones(visual_dim, np.float32),
            np.zeros(audio_dim, np.float32),
            np.ones(audio_dim, np.float32),
        )

    def as_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("v_mean", "v_std", "a_mean", "a_std")}


class SplitData:
    """One split's samples with features and targets, indexed 0..N-1."""

    def __init__(
        self,
        manifest: Manifest,
        samples: list[Sample],
        visual: FeatureStore,
        audio: FeatureStore,
        budget_mb: int = 4096,
        video_class: Literal["largest", "most_frequent"] = "largest",
    ):
        if not samples:
            raise ValueError(f"{manifest.dataset}: no samples to load")
        self.sample_ids = [s.sample_id for s in samples]
        vids = [s.video_id for s in samples]
        vz, az = visual.array(), audio.array()
        if vz.ndim != 5:
            raise ValueError(
                f"{visual.path}: features have shape {vz.shape}, expected (N, T, H, W, C) maps"
            )
        if az.ndim != 3:
            raise ValueError(f"{audio.path}: features have shape {az.shape}, expected (N, T, D)")
        self.T = int(min(vz.shape[1], az.shape[1]))
        self.positions = int(vz.shape[2] * vz.shape[3])
        self.visual_dim, self.audio_dim = int(vz.shape[4]), int(az.shape[2])
        self.n_classes = len(manifest.classes)
        v_rows, a_rows = visual.rows(vids), audio.rows(vids)
        n_seg = np.minimum.reduce(
            [
                visual.n_segments[v_rows],
                audio.n_segments[a_rows],
                np.array([s.n_segments for s in samples]),
            ]
        )
        self.mask = np.arange(self.T)[None, :] < np.clip(n_seg, 1, None)[:, None]
        need_mb = len(vids) * self.T * self.positions * self.visual_dim * 2 / 2**20
        self.in_memory = need_mb <= budget_mb
        self._vz, self._v_rows = vz, v_rows
        self.visual = visual.load(vids, dtype=np.float16) if self.in_memory else None
        self.audio = audio.load(vids, dtype=np.float32)[:, : self.T]
        # reason -> video ids left out for a missing stream (set by load_splits)
        self.missing: dict[str, list[str]] = {}
        self.labels = segment_labels(manifest, samples, n_segments=self.T)
        self.fg = ((self.labels < self.n_classes) & self.mask).astype(np.float32)
        self.video_label = manifest.video_targets(samples)
        self.video_class = video_classes(self.labels, self.video_label, video_class)
        self.norm = Normalizer.identity(self.visual_dim, self.audio_dim)
        log.info(
            "%d samples, T=%d, visual %dx%d, audio %d, %d classes, maps %.0f MiB %s",
            len(self),
            self.T,
            self.positions,
            self.visual_dim,
            self.audio_dim,
            self.n_classes,
            need_mb,
            "in memory" if self.in_memory else f"streamed (budget {budget_mb} MiB)",
        )

    def __len__(self) -> int:
        return len(self.sample_ids)

    def _maps(self, idx: np.ndarray) -> np.ndarray:
        """Visual maps of samples ``idx`` as (B, T, P, C_v) float32 (from memory or the store)."""
        if self.in_memory:
            v = self.visual[idx]
        else:
            v = np.stack([self._vz[int(r)] for r in self._v_rows[idx]])
        v = v[:, : self.T].astype(np.float32)
        return v.reshape(len(idx), self.T, self.positions, self.visual_dim)

    def fit_normalizer(self) -> Normalizer:
        """Channel statistics over this split's valid segments (float64 accumulation)."""
        m = self.mask
        v_sum = np.zeros(self.visual_dim)
        v_sq = np.zeros(self.visual_dim)
        for i in range(len(self)):
            x = self._maps(np.array([i]))[0][m[i]].astype(np.float64).reshape(-1, self.visual_dim)
            v_sum += x.sum(0)
            v_sq += (x * x).sum(0)
        n_v = m.sum() * self.positions
        v_mean = v_sum / n_v
        v_std = np.sqrt(np.maximum(v_sq / n_v - v_mean**2, 0)) + 1e-6
        a = self.audio[m].astype(np.float64)
        return Normalizer(
            v_mean.astype(np.float32),
            v_std.astype(np.float32),
            a.mean(0).astype(np.float32),
            (a.std(0) + 1e-6).astype(np.float32),
        )

    def batch(self, idx: np.ndarray, device: torch.device) -> Batch:
        idx = np.asarray(idx)
        v = (self._maps(idx) - self.norm.v_mean) / self.norm.v_std
        a = (self.audio[idx] - self.norm.a_mean) / self.norm.a_std
        m = self.mask[idx]
        v *= m[:, :, None, None]
        a *= m[:, :, None]

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(device)

        return Batch(
            t(v),
            t(a),
            t(m),
            t(self.labels[idx]),
            t(self.fg[idx]),
            t(self.video_label[idx]),
            t(self.video_class[idx].astype(np.int64)),
        )


def video_classes(
    labels: np.ndarray, video_label: np.ndarray, rule: Literal["largest", "most_frequent"]
) -> np.ndarray:
    """One category per video (N,) int from segment labels (N, T) (background = C) and
    video labels (N, C): among its event segments' classes the largest index (``largest``,
    the released CPSP) or the most frequent, ties to the smaller index (``most_frequent``);
    without event segments its first video-level label (weak-only annotations, as
    ``labels.max(-1)`` of the released weak script); -1 when it has none."""
    if rule not in ("largest", "most_frequent"):
        raise ValueError(f"video_class {rule!r}: expected 'largest' or 'most_frequent'")
    C = video_label.shape[1]
    counts = np.stack([(labels == c).sum(1) for c in range(C)], 1)
    has = counts > 0
    largest = C - 1 - np.argmax(has[:, ::-1], axis=1)
    seg_class = largest if rule == "largest" else counts.argmax(1)
    weak = np.where(video_label.any(1), video_label.argmax(1), -1)
    return np.where(has.any(1), seg_class, weak)


def load_splits(
    manifest: Manifest,
    visual: Path,
    audio: Path,
    splits: tuple[str, ...],
    budget_mb: int = 4096,
    video_class: Literal["largest", "most_frequent"] = "largest",
) -> dict[str, SplitData]:
    """Present samples of each split, less those whose video lacks a stream (recorded in
    ``SplitData.missing``); maps of a split stay in memory (float16) when they fit
    ``budget_mb``, else every batch reads them from the store.  Raises
    :class:`~avpipe.io.store.GridMismatchError` when a store is not on the manifest's
    segment grid."""
    vs, au = FeatureStore(visual), FeatureStore(audio)
    for st in (vs, au):
        st.check_grid(manifest.segment_hop, manifest.segment_win)
    out = {}
    for name in splits:
        samples = [s for s in manifest.split(name) if s.present]
        if not samples:
            raise ValueError(
                f"manifest {manifest.dataset!r} has no present samples in split {name!r}"
            )
        where = f"{manifest.dataset}/{name}"
        kept, missing = drop_missing_streams([s.video_id for s in samples], (vs, au), where)
        keep = set(kept)
        samples = [s for s in samples if s.video_id in keep]
        if not samples:
            raise ValueError(f"{where}: every present sample's video lacks a stream")
        out[name] = SplitData(manifest, samples, vs, au, budget_mb, video_class)
        out[name].missing = missing
    return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
