"""Feature access for the unsupervised method: one row per video.

Visual maps ``(N, T, H, W, C_v)`` and audio ``(N, T, 128)`` come from two feature
stores keyed by video id.  They are held in memory as float16 when both fit the
configured budget, otherwise every batch is read from the Zarr store.  H, W, C_v
and T are read from the store, never assumed (VGG-19 7x7x512, ResNet-152 7x7x2048).
Videos missing from either store (extraction skips undecodable ones) and videos whose
store says they have no video or no audio stream (all-zero rows; the contrastive losses
pair the two streams, so there is nothing to mask, see :mod:`avpipe.training.streams`)
are dropped with a warning.  With ``data.standardize`` every stage z-scores the inputs
with statistics of the training videos (:meth:`VideoFeatures.fit_normalizer`); without
it random-weight stores (VGGish std ~0.006) leave the encoder's audio branch
near-constant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.store import FeatureStore
from avpipe.training.streams import drop_missing_streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Normalizer:
    """Per-channel z-score statistics (visual channels, audio dims), float32."""

    v_mean: np.ndarray
    v_std: np.ndarray
    a_mean: np.ndarray
    a_std: np.ndarray


@dataclass
class Batch:
    """visual (B, T, H*W, C_v) float32; audio (B, T, D_a) float32; mask (B, T) bool."""

    visual: torch.Tensor
    audio: torch.Tensor
    mask: torch.Tensor


class VideoFeatures:
    """Visual + audio features of a fixed list of videos, indexed 0..N-1."""

    def __init__(
        self,
        visual: FeatureStore,
        audio: FeatureStore,
        video_ids: list[str],
        budget_mb: int,
        where: str = "videos",
    ):
        missing = [v for v in dict.fromkeys(video_ids) if v not in visual or v not in audio]
        if missing:
            # extraction skips videos that fail to decode (on_error: skip)
            log.warning(
                "%d videos absent from %s or %s are dropped: %s",
                len(missing),
                visual.path,
                audio.path,
                ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),
            )
        gone = set(missing)
        present = [v for v in video_ids if v not in gone]
        if not present:
            raise ValueError(f"none of the videos is in both {visual.path} and {audio.path}")
        # reason -> video ids without that stream, dropped (stages record them)
        self.video_ids, self.missing = drop_missing_streams(present, (visual, audio), where)
        if not self.video_ids:
            raise ValueError(
                f"{where}: every video lacks a stream in {visual.path} or {audio.path}"
            )
        self.norm: Normalizer | None = None
        self._v_rows = visual.rows(self.video_ids)
        self._a_rows = audio.rows(self.video_ids)
        vz, az = visual.array(), audio.array()
        if vz.ndim != 5:
            raise ValueError(
                f"{visual.path}: features have shape {vz.shape}, expected (N, T, H, W, C) maps"
            )
        if az.ndim != 3:
            raise ValueError(f"{audio.path}: features have shape {az.shape}, expected (N, T, D)")
        self.T = min(vz.shape[1], az.shape[1])
        self.spatial = int(vz.shape[2] * vz.shape[3])
        self.visual_dim = int(vz.shape[4])
        self.audio_dim = int(az.shape[2])
        n_seg = np.minimum(visual.n_segments[self._v_rows], audio.n_segments[self._a_rows])
        self.mask = np.arange(self.T)[None, :] < np.clip(n_seg, 1, None)[:, None]
        need_mb = (
            len(self.video_ids)
            * self.T
            * (self.spatial * self.visual_dim + self.audio_dim)
            * 2
            / 2**20
        )
        self.in_memory = need_mb <= budget_mb
        self._vz, self._az = vz, az
        if self.in_memory:
            self._v = visual.load(self.video_ids, dtype=np.float16)[:, : self.T]
            self._a = audio.load(self.video_ids, dtype=np.float16)[:, : self.T]
        log.info(
            "%d videos, T=%d, visual %dx%d, audio %d: %.0f MiB, %s",
            len(self),
            self.T,
            self.spatial,
            self.visual_dim,
            self.audio_dim,
            need_mb,
            "in memory" if self.in_memory else f"streamed (budget {budget_mb} MiB)",
        )

    def __len__(self) -> int:
        return len(self.video_ids)

    def _raw(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.in_memory:
            return self._v[idx], self._a[idx]
        v = np.stack([self._vz[int(r)][: self.T] for r in self._v_rows[idx]])
        a = np.stack([self._az[int(r)][: self.T] for r in self._a_rows[idx]])
        return v, a

    def fit_normalizer(self, chunk: int = 64) -> Normalizer:
        """Channel statistics over the real segments of these videos (float64 sums).

        Visual statistics pool segments and spatial positions; videos without a stream
        are not among these videos, so their zero rows count nowhere.
        """
        v_sum = np.zeros(self.visual_dim)
        v_sq = np.zeros(self.visual_dim)
        a_sum = np.zeros(self.audio_dim)
        a_sq = np.zeros(self.audio_dim)
        n_v = n_a = 0
        for start in range(0, len(self), chunk):
            idx = np.arange(start, min(start + chunk, len(self)))
            v, a = self._raw(idx)
            m = self.mask[idx]
            x = np.asarray(v, np.float64)[m].reshape(-1, self.visual_dim)
            v_sum += x.sum(0)
            v_sq += (x * x).sum(0)
            n_v += len(x)
            y = np.asarray(a, np.float64)[m]
            a_sum += y.sum(0)
            a_sq += (y * y).sum(0)
            n_a += len(y)

        def stats(s: np.ndarray, sq: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
            if n == 0:
                return np.zeros_like(s, np.float32), np.ones_like(s, np.float32)
            mean = s / n
            std = np.sqrt(np.maximum(sq / n - mean**2, 0)) + 1e-6
            return mean.astype(np.float32), std.astype(np.float32)

        return Normalizer(*stats(v_sum, v_sq, n_v), *stats(a_sum, a_sq, n_a))

    def batch(self, idx: np.ndarray, device: torch.device) -> Batch:
        """Features of videos ``idx`` (positions in ``video_ids``)."""
        idx = np.asarray(idx)
        v, a = self._raw(idx)
        v, a = np.asarray(v, np.float32), np.asarray(a, np.float32)
        if self.norm is not None:
            v = (v - self.norm.v_mean) / self.norm.v_std
            a = (a - self.norm.a_mean) / self.norm.a_std
            # padded segments stay zero (masked everywhere, but keep them finite and neutral)
            m = self.mask[idx]
            v = v * m.reshape(m.shape + (1,) * (v.ndim - 2))
            a = a * m[:, :, None]
        v = torch.from_numpy(v).reshape(len(idx), self.T, self.spatial, self.visual_dim)
        a = torch.from_numpy(np.asarray(a, np.float32))
        return Batch(v.to(device), a.to(device), torch.from_numpy(self.mask[idx]).to(device))


def train_samples(manifest: Manifest, split: str) -> list[Sample]:
    """Samples of the training split; ``auto`` = train, else unlabeled (folder adapter)."""
    if split == "auto":
        split = "train" if manifest.split("train") else "unlabeled"
    samples = [s for s in manifest.split(split) if s.present]
    if not samples:
        raise ValueError(f"manifest {manifest.dataset!r} has no present samples in split {split!r}")
    return samples


def unique_videos(samples: list[Sample]) -> list[str]:
    return list(dict.fromkeys(s.video_id for s in samples))


def open_features(
    manifest: Manifest,
    visual_store: Path,
    audio_store: Path,
    video_ids: list[str],
    budget_mb: int,
    norm: Normalizer | None = None,
    where: str | None = None,
) -> VideoFeatures:
    """Features of ``video_ids`` (those absent from a store or without a stream dropped;
    ``where`` names them in the log, default the dataset), z-scored by ``norm``.

    Raises :class:`~avpipe.io.store.GridMismatchError` when a store is not on the
    manifest's segment grid."""
    visual, audio = FeatureStore(visual_store), FeatureStore(audio_store)
    for st in (visual, audio):
        st.check_grid(manifest.segment_hop, manifest.segment_win)
    feats = VideoFeatures(visual, audio, video_ids, budget_mb, where or manifest.dataset)
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
