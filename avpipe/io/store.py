"""Feature stores: one Zarr v3 group per (dataset, extractor recipe).

Layout (readable with plain ``zarr``, ``dask.array.from_zarr`` or xarray)::

    <store>.zarr/
      zarr.json            group attributes = provenance (extractor, recipe, weights,
                           rates, window/hop, versions, config hash, padding policy)
      features             (N, T_max, ...) per-segment features, chunked one video per chunk
      <extra arrays>       e.g. ``frames`` (N, T_max * k, D) for per-frame features
      video_id             (N,) fixed-width unicode, sorted
      n_segments           (N,) int32: true number of segments of each video
      mask                 (N, T_max) bool: segment t of video i is real (t < n_segments[i])
      has_audio            (N,) bool, present in audio stores: False = no audio stream

Segments past a video's length hold ``fill_value`` (0) and are False in ``mask``:
padding happens at batch time, never silently in the data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from avpipe.utils.atomic import atomic_path

log = logging.getLogger(__name__)

INDEX_ARRAYS = ("video_id", "n_segments", "mask", "has_audio")


def _chunks(shape: tuple[int, ...], videos_per_chunk: int) -> tuple[int, ...]:
    return (max(1, min(videos_per_chunk, shape[0])),) + tuple(shape[1:])


def _video_chunk_for(row_nbytes: int) -> int:
    """Videos per chunk: one for maps (>= 64 KiB per video), ~1 MiB chunks for small vectors."""
    return 1 if row_nbytes >= 64 * 1024 else max(1, (1 << 20) // max(row_nbytes, 1))


def write_store(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    video_ids: Sequence[str],
    n_segments: Sequence[int] | np.ndarray,
    attrs: Mapping[str, Any],
    has_audio: Sequence[bool] | np.ndarray | None = None,
) -> Path:
    """Write a complete store atomically (temporary directory, then rename).

    ``arrays`` maps array name -> (N, ...) array, ``features`` among them; dtypes
    are kept as given (callers choose float16 for maps, float32 for vectors).
    """
    path = Path(path)
    n = len(video_ids)
    if "features" not in arrays:
        raise ValueError("a feature store needs a 'features' array")
    for name, a in arrays.items():
        if a.shape[0] != n:
            raise ValueError(f"array {name!r} has {a.shape[0]} rows for {n} video ids")
    if len(set(video_ids)) != n:
        raise ValueError("video ids in a store must be unique")
    n_seg = np.asarray(n_segments, dtype=np.int32)
    t_max = arrays["features"].shape[1]
    if n_seg.size and n_seg.max(initial=0) > t_max:
        raise ValueError(f"n_segments up to {n_seg.max()} exceeds the features' T_max {t_max}")
    with atomic_path(path, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        root.attrs.update(dict(attrs))
        for name, a in arrays.items():
            row_nbytes = int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
            z = root.create_array(name, shape=a.shape, dtype=a.dtype, chunks=_chunks(a.shape, _video_chunk_for(row_nbytes)), fill_value=0)
            if n:
                z[...] = a
        width = max((len(v) for v in video_ids), default=1)
        index = {
            "video_id": np.asarray(list(video_ids), dtype=f"<U{width}"),
            "n_segments": n_seg,
            "mask": np.arange(t_max)[None, :] < n_seg[:, None] if n else np.zeros((0, t_max), bool),
        }
        if has_audio is not None:
            index["has_audio"] = np.asarray(has_audio, dtype=bool)
        for name, a in index.items():
            z = root.create_array(name, shape=a.shape, dtype=a.dtype, chunks=a.shape if a.size else None)
            if a.size:
                z[...] = a
    log.info("wrote %s: %d videos, features %s %s", path, n, arrays["features"].shape, arrays["features"].dtype)
    return path


class FeatureStore:
    """Read access to a feature store by video id."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"{self.path} is not a feature store (no zarr.json)")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.video_ids: list[str] = [str(v) for v in self.group["video_id"][:]]
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        self.n_segments: np.ndarray = self.group["n_segments"][:]
        self.mask: np.ndarray = self.group["mask"][:]
        self.has_audio: np.ndarray | None = self.group["has_audio"][:] if "has_audio" in self.group else None

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def array(self, name: str = "features") -> zarr.Array:
        return self.group[name]

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        missing = [v for v in video_ids if v not in self._row]
        if missing:
            raise KeyError(f"{self.path}: {len(missing)} video(s) not in the store, e.g. {missing[:3]}")
        return np.asarray([self._row[v] for v in video_ids], dtype=np.int64)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._row

    def __len__(self) -> int:
        return len(self.video_ids)

    def load(self, video_ids: Sequence[str] | None = None, name: str = "features", dtype: Any = np.float32) -> np.ndarray:
        """Features of ``video_ids`` (all when None) as one in-memory array, in that order.

        Reads with basic indexing per video (fancy indexing on sharded arrays is
        slow in zarr 3.1), converting to ``dtype``.
        """
        z = self.array(name)
        if video_ids is None:
            return np.asarray(z[...], dtype=dtype)
        rows = self.rows(video_ids)
        out = np.empty((len(rows),) + z.shape[1:], dtype=dtype)
        for i, r in enumerate(rows):
            out[i] = z[int(r)]
        return out
