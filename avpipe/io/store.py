"""Feature stores: one Zarr v3 group per (dataset, extractor recipe).

Layout (readable with plain ``zarr``, ``dask.array.from_zarr`` or ``xarray.open_zarr``;
dimension names in brackets are the arrays' Zarr ``dimension_names``)::

    <store>.zarr/
      zarr.json            group attributes = provenance (extractor, recipe, weights,
                           rates, window/hop, versions, config hash, padding policy),
                           and the consolidated metadata of every array
      features             (N, T_max, ...) per-segment features, chunked one video per chunk:
                           [video, segment, channel] for vectors,
                           [video, segment, y, x, channel] for maps
      <extra arrays>       per-frame features, e.g. ``frames`` (N, T_max, k, D)
                           [video, segment, frame, channel] of resnet152_llp
      video_id             (N,) [video] variable-length UTF-8 strings, sorted
      segment_start_s      (T_max,) [segment] float64: segment t starts at t * grid.hop_s s
      n_segments           (N,) [video] int32: true number of segments of each video
      mask                 (N, T_max) [video, segment] bool: segment t of video i is real
                           (t < n_segments[i])
      has_audio            (N,) [video] bool, in audio stores: False = no audio stream
      has_video            (N,) [video] bool, in visual stores written by the pipeline

The per-video arrays name ``video_id`` and ``segment_start_s`` in their ``coordinates``
attribute, so ``xarray.open_zarr`` makes them coordinates and the others data variables.
The metadata is consolidated last, inside the temporary directory that is renamed into
place: readers (and xarray) need not list the directory, where Snakemake leaves a
``.snakemake_timestamp`` file that zarr would warn about.

Segments past a video's length hold ``fill_value`` (0) and are False in ``mask``:
padding happens at batch time, never silently in the data.

The attribute ``grid`` = ``{"hop_s", "window_s", "placement"}`` says on which segment
grid the rows sit (segment t covers [t * hop_s, t * hop_s + window_s)); loaders compare
it with the dataset's grid (:func:`check_grid`) and refuse a store that disagrees.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from avpipe.io.store_codec import DEFAULT_CODEC, codec_of, compressors
from avpipe.io.store_layout import (
    FRAME,
    INDEX_ARRAYS,
    check_sizes,
    create_array,
    dimension_names,
    write_index,
)
from avpipe.utils.atomic import atomic_path

log = logging.getLogger(__name__)

GRID_TOL_S = 1e-6


class GridMismatchError(ValueError):
    """A feature store's segment grid differs from the dataset's."""


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= GRID_TOL_S


def check_grid(attrs: Mapping[str, Any], hop_s: float, window_s: float, where: str) -> None:
    """Raise :class:`GridMismatchError` unless the store ``where`` (attributes ``attrs``)
    sits on the dataset's grid: hop ``hop_s`` s, window ``window_s`` s.

    * ``grid`` attribute: its hop and window must both match.
    * no ``grid`` but ``hop_s`` (stores of older avpipe versions, which cut windows on
      the extractor's own grid): a visual store's grid is (hop_s, hop_s); an audio
      store is checked on its hop only (VGGish kept its 0.975-s window on any hop).
    * neither (stores written by hand, without provenance): nothing to check.
    """
    grid = attrs.get("grid")
    want = f"hop {hop_s:g} s, window {window_s:g} s"
    if grid is not None:
        try:
            got_hop, got_win = float(grid["hop_s"]), float(grid["window_s"])
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(
                f"{where}: attribute 'grid' is {grid!r}, expected a mapping with "
                "numeric 'hop_s' and 'window_s'"
            ) from e
        if not (_same(got_hop, hop_s) and _same(got_win, window_s)):
            raise GridMismatchError(
                f"{where}: the store's grid (hop {got_hop:g} s, window {got_win:g} s) differs "
                f"from the dataset's ({want}); re-extract the store on the dataset's grid, "
                "or set the dataset's segment_hop/segment_win to the store's"
            )
        return
    if "hop_s" not in attrs:
        return
    got_hop = float(attrs["hop_s"])
    if attrs.get("modality") == "visual":
        ok = _same(got_hop, hop_s) and _same(got_hop, window_s)
        got = f"hop {got_hop:g} s, window {got_hop:g} s"
    else:
        ok = _same(got_hop, hop_s)
        got = f"hop {got_hop:g} s, window {float(attrs.get('window_s', got_hop)):g} s"
    if not ok:
        raise GridMismatchError(
            f"{where}: the store ({got}, no 'grid' attribute) was written before extraction "
            f"put windows on the dataset's grid ({want}) and does not sit on it; "
            "re-extract it"
        )


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

    ``arrays`` maps array name -> (N, T_max, ...) per-segment array, ``features`` among
    them, or (N, T_max, k, ...) per-frame array (one axis more than ``features``); dtypes
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
    per_frame = {name: a.ndim == arrays["features"].ndim + 1 for name, a in arrays.items()}
    dims = {name: dimension_names(a.ndim, per_frame[name]) for name, a in arrays.items()}
    check_sizes({name: (dims[name], a.shape) for name, a in arrays.items()}, str(path))
    with atomic_path(path, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        root.attrs.update(dict(attrs))
        for name, a in arrays.items():
            row_nbytes = int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
            chunks = _chunks(a.shape, _video_chunk_for(row_nbytes))
            z = create_array(root, name, a.shape, a.dtype, dims[name], chunks, fill_value=0)
            if n:
                z[...] = a
        flags = {} if has_audio is None else {"has_audio": has_audio}
        write_index(root, video_ids, n_seg, t_max, flags)
    log.info(
        "wrote %s: %d videos, features %s %s",
        path,
        n,
        arrays["features"].shape,
        arrays["features"].dtype,
    )
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
        self.has_audio: np.ndarray | None = (
            self.group["has_audio"][:] if "has_audio" in self.group else None
        )

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def array(self, name: str = "features") -> zarr.Array:
        return self.group[name]

    def check_grid(self, hop_s: float, window_s: float) -> None:
        """:func:`check_grid` of this store against the dataset grid (hop_s, window_s)."""
        check_grid(self.attrs, hop_s, window_s, str(self.path))

    def dask(self, name: str = "features") -> Any:
        """``name`` as a lazy dask array, one chunk per video (or per chunk of small rows).

        For stores larger than memory: slice, reduce or ``.compute()`` what you need.
        """
        import dask.array as da

        return da.from_zarr(self.array(name))

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        missing = [v for v in video_ids if v not in self._row]
        if missing:
            raise KeyError(
                f"{self.path}: {len(missing)} video(s) not in the store, e.g. {missing[:3]}"
            )
        return np.asarray([self._row[v] for v in video_ids], dtype=np.int64)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._row

    def __len__(self) -> int:
        return len(self.video_ids)

    def load(
        self,
        video_ids: Sequence[str] | None = None,
        name: str = "features",
        dtype: Any = np.float32,
    ) -> np.ndarray:
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


@dataclass(frozen=True)
class ArraySpec:
    """A per-video array of a store: ``shape`` per segment, or per frame with ``frames`` = k
    frames per segment.

    ``features`` is per segment, stored (N, T_max, *shape); per-frame extras such as
    ``frames`` of resnet152_llp (k = 8) are stored (N, T_max, k, *shape).  ``codec``:
    how its chunks are compressed (:mod:`avpipe.io.store_codec`).
    """

    shape: tuple[int, ...]
    dtype: str
    frames: int | None = None
    codec: str = DEFAULT_CODEC

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"ArraySpec: frames per segment must be >= 1, got {self.frames}")
        compressors(self.codec)  # an unknown codec name fails here, naming the known ones

    @property
    def steps(self) -> int:
        """Rows per segment in the arrays :meth:`StoreWriter.add` takes (k, or 1)."""
        return self.frames or 1

    def stored_shape(self, n_videos: int, t_max: int) -> tuple[int, ...]:
        frame = () if self.frames is None else (self.frames,)
        return (n_videos, t_max, *frame, *self.shape)

    def dims(self) -> tuple[str, ...]:
        return dimension_names(len(self.stored_shape(0, 0)), self.frames is not None)

    @classmethod
    def of(cls, z: zarr.Array) -> ArraySpec:
        """The spec of a store array ``z`` (per-frame when it has a ``frame`` dimension)."""
        codec = codec_of(z)
        if FRAME in (z.metadata.dimension_names or ()):
            return cls(tuple(z.shape[3:]), str(z.dtype), int(z.shape[2]), codec)
        return cls(tuple(z.shape[2:]), str(z.dtype), codec=codec)


class StoreWriter:
    """Single sequential writer of a feature store, complete-or-absent.

    ::

        with StoreWriter(path, n, t_max, {"features": ArraySpec((128,), "float32")},
                         attrs, flags=("has_audio",)) as w:
            for video in ...:
                w.add(video_id, n_segments, {"features": (n_segments, 128) array},
                      {"has_audio": True})

    Rows are added in order; each chunk is written once, when it is full (chunks hold
    whole videos, so a store never sees two writers in one chunk: zarr-python #2729).
    ``add`` takes a per-frame array as (n_segments * k, *shape), frames in time order.
    ``arrays=None`` in ``add`` leaves the row at the fill value 0 (a missing modality).
    The index arrays (video_id, segment_start_s, n_segments, mask, flags) and the
    consolidated metadata are written on exit, then the temporary directory is renamed to
    ``path``; an exception removes it instead.
    """

    def __init__(
        self,
        path: str | Path,
        n_videos: int,
        t_max: int,
        arrays: Mapping[str, ArraySpec],
        attrs: Mapping[str, Any],
        flags: Sequence[str] = (),
    ):
        if "features" not in arrays:
            raise ValueError("a feature store needs a 'features' array")
        self.path, self.n, self.t_max = Path(path), n_videos, t_max
        self.specs = dict(arrays)
        check_sizes(
            {k: (a.dims(), a.stored_shape(n_videos, t_max)) for k, a in self.specs.items()},
            str(self.path),
        )
        self.flags = {f: [] for f in flags}
        self.attrs = dict(attrs)
        self.video_ids: list[str] = []
        self.n_segments: list[int] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> StoreWriter:
        tmp = self._stack.enter_context(atomic_path(self.path, directory=True))
        self.root = zarr.open_group(str(tmp), mode="w")
        self.root.attrs.update(self.attrs)
        self.z: dict[str, zarr.Array] = {}
        self.buf: dict[str, np.ndarray] = {}
        for name, a in self.specs.items():
            shape = a.stored_shape(self.n, self.t_max)
            row_nbytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(a.dtype).itemsize
            chunks = _chunks(shape, _video_chunk_for(row_nbytes))
            self.z[name] = create_array(
                self.root, name, shape, a.dtype, a.dims(), chunks, fill_value=0, codec=a.codec
            )
            self.buf[name] = np.zeros((chunks[0], *shape[1:]), dtype=a.dtype)
        return self

    def add(
        self,
        video_id: str,
        n_segments: int,
        arrays: Mapping[str, np.ndarray] | None,
        flags: Mapping[str, bool] | None = None,
    ) -> None:
        row = len(self.video_ids)
        if row >= self.n:
            raise ValueError(f"{self.path}: more than the {self.n} videos announced")
        if not 0 <= n_segments <= self.t_max:
            raise ValueError(
                f"{video_id}: {n_segments} segments, the store holds at most {self.t_max}"
            )
        for name, a in self.specs.items():
            buf = self.buf[name]
            i = row % buf.shape[0]
            buf[i] = 0
            if arrays is not None:
                x = np.asarray(arrays[name])
                want = (n_segments * a.steps, *a.shape)
                if x.shape != want:
                    raise ValueError(
                        f"{video_id}: array {name!r} has shape {x.shape}, expected {want}"
                    )
                buf[i, :n_segments] = x.reshape(n_segments, *buf.shape[2:])
            if i == buf.shape[0] - 1 or row == self.n - 1:
                start = row - i
                self.z[name][start : row + 1] = buf[: i + 1]
        self.video_ids.append(video_id)
        self.n_segments.append(n_segments)
        for f in self.flags:
            self.flags[f].append(bool((flags or {}).get(f, True)))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException as e:
                self._stack.__exit__(type(e), e, e.__traceback__)  # deletes the temporary directory
                raise
        # on success this renames the temporary directory into place; on error it deletes it
        self._stack.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        if len(self.video_ids) != self.n:
            raise ValueError(
                f"{self.path}: {len(self.video_ids)} videos written, {self.n} announced"
            )
        if len(set(self.video_ids)) != self.n:
            raise ValueError("video ids in a store must be unique")
        n_seg = np.asarray(self.n_segments, dtype=np.int32)
        write_index(self.root, self.video_ids, n_seg, self.t_max, self.flags)
        log.info("wrote %s: %d videos, T_max %d", self.path, self.n, self.t_max)


def gather_stores(
    shards: Sequence[str | Path], out: str | Path, attrs: Mapping[str, Any], cache_mb: int = 512
) -> Path:
    """Concatenate shard stores (same recipe, disjoint videos) into one store, sorted by id.

    One writer, whole-chunk writes; the shards' attributes must agree on
    ``config_hash`` (the same extractor settings), the result gets ``attrs`` on top
    of the first shard's attributes.  Time is padded to the largest ``T_max``.
    """
    groups = [zarr.open_group(str(p), mode="r") for p in shards]
    if not groups:
        raise ValueError("gather needs at least one shard store")
    hashes = {g.attrs.get("config_hash") for g in groups}
    if len(hashes) > 1:
        raise ValueError(
            "shards were extracted with different settings "
            f"(config hashes {sorted(map(str, hashes))}): {list(map(str, shards))}"
        )
    base = groups[0]
    flags = tuple(f for f in ("has_audio", "has_video") if f in base)
    # the consolidated metadata lists the arrays: no directory listing, so no warning about
    # the .snakemake_timestamp file that Snakemake leaves in directory() outputs
    names = [k for k in base.array_keys() if k not in INDEX_ARRAYS]
    entries: list[tuple[str, int, int]] = []  # (video_id, shard, row)
    t_max = 1
    for s, g in enumerate(groups):
        ids = [str(v) for v in g["video_id"][:]]
        entries += [(v, s, r) for r, v in enumerate(ids)]
        t_max = max(t_max, int(g["mask"].shape[1]))
    ids = [e[0] for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("a video appears in more than one shard")
    entries.sort()
    specs = {name: ArraySpec.of(base[name]) for name in names}
    index = [{k: g[k][:] for k in ("n_segments", *flags)} for g in groups]
    cache: dict[tuple[int, str], np.ndarray] = {}
    for s, g in enumerate(groups):
        for name in names:
            if g[name].nbytes <= cache_mb << 20:
                cache[(s, name)] = g[name][...]
    merged = {**dict(base.attrs), **dict(attrs), "shards": len(groups)}
    with StoreWriter(out, len(entries), t_max, specs, merged, flags=flags) as w:
        for video_id, s, r in entries:
            n = int(index[s]["n_segments"][r])
            data = {}
            for name, a in specs.items():
                src = cache.get((s, name))
                row = (src[r] if src is not None else groups[s][name][r])[:n]
                data[name] = row.reshape(n * a.steps, *a.shape)
            w.add(video_id, n, data, {f: bool(index[s][f][r]) for f in flags})
    return Path(out)
