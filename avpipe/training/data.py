"""The data contract of every method: named feature stores + a manifest split -> batches.

A method names its inputs, ``{"visual": Input(path), "audio": Input(path)}`` or
``{"frames": Input(path, "frames"), ...}``, and :func:`open_splits` returns one
:class:`Split` per manifest split with, per sample:

* the inputs as stored, ``(T, ...)`` in the store's dtype (float16 maps, float32 vectors);
* ``mask`` ``(T,)`` bool: segment t is real in every store and in the manifest
  (T = the smallest ``T_max`` of the stores);
* the method's targets, per-sample arrays it attaches (:meth:`Split.set_targets`).

Rules that are the same for every method:

* samples whose video is absent from a store (extraction skipped it) are dropped with a
  warning; videos that a store flags as having no audio or no video stream are dropped
  from every split (:mod:`avpipe.training.streams`) and recorded in ``Split.missing``,
  as are videos without a segment (``no_segment``: UnAV-100 clips shorter than one
  window);
* one memory budget for the whole stage, over all splits and inputs: arrays whose
  chunks hold many videos (vectors) are held in memory first, then maps split by split
  in the order given (train first); what does not fit streams from Zarr, with room
  kept for the loader's prefetched batches;
* standardisation (:func:`fit_standardizer`): per-channel (last axis) mean and std over
  the real segments (and every position, frame) of the training split only, float64
  sums; std + 1e-6, and 1 for a channel that is constant on the training split, so
  that it is centred but never blown up on another split;
* batches reach the device as stored (float16 maps), and the conversion to float32, the
  z-scoring and the zeroing of padded segments happen there (:meth:`Split.to_device`).

Streamed splits go through a :class:`torch.utils.data.DataLoader` whose worker processes
read whole chunks (all rows a batch needs from a multi-video chunk in one read), straight
from the chunk files of a local store (:mod:`avpipe.io.chunks`) into shared-memory
buffers that each worker reuses, and prefetch the next batches while the model runs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.chunks import ChunkFiles, read_rows
from avpipe.io.store import FeatureStore
from avpipe.training.streams import drop_missing_streams

log = logging.getLogger(__name__)

STD_EPS = 1e-6  # added to every std (keeps the division finite and stable)
CONSTANT_REL = 1e-8  # a channel whose std is below this fraction of the largest is constant
READ_AHEAD = 4  # batches the loader workers read ahead, in all (at least one each)

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Input:
    """Array ``array`` of the feature store at ``store``, ``(N, T_max, ...)``."""

    store: Path
    array: str = "features"


@dataclass(frozen=True)
class Loading:
    """How splits are held: ``budget_mb`` for the whole stage (every split and input),
    ``workers`` loader processes for streamed splits, ``batch_size`` the largest batch
    (sizes the room kept for prefetched batches)."""

    budget_mb: float = 4096
    workers: int = 2
    batch_size: int = 64


@dataclass(frozen=True)
class Standardizer:
    """Per-channel ``mean`` and ``std`` of each input (float32, last-axis length)."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    def flat(self) -> dict[str, np.ndarray]:
        """``<input>_mean`` and ``<input>_std`` of every input (what a checkpoint carries)."""
        return {f"{k}_{s}": getattr(self, s)[k] for k in self.mean for s in ("mean", "std")}

    @classmethod
    def from_flat(cls, names: Iterable[str], stats: Sequence[np.ndarray]) -> Standardizer:
        """The inverse of :meth:`flat`: ``stats`` = [mean, std] of each of ``names``."""
        names = list(names)
        f32 = [np.asarray(x, np.float32) for x in stats]
        return cls(
            dict(zip(names, f32[0::2], strict=True)), dict(zip(names, f32[1::2], strict=True))
        )


def channel_stats(total: np.ndarray, sq: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and floored std (float32) from float64 sums of x and x^2 over ``n`` values."""
    if n == 0:
        return np.zeros(total.shape, np.float32), np.ones(total.shape, np.float32)
    mean = total / n
    raw = np.sqrt(np.maximum(sq / n - mean**2, 0))
    std = np.where(raw > CONSTANT_REL * max(float(raw.max()), 1e-30), raw + STD_EPS, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class _Source:
    """One input of one split: rows in the store, and the arrays when held in memory."""

    store: FeatureStore
    array: str
    rows: np.ndarray
    shape: tuple[int, ...]  # per sample, (T, ...)
    dtype: np.dtype
    held: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return len(self.rows) * int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def videos_per_chunk(self) -> int:
        return int(self.store.array(self.array).chunks[0])


class _Reader(torch.utils.data.Dataset):
    """Streamed inputs of a split: ``__getitems__(positions)`` -> {name: tensor (store dtype)}.

    Arrays of local stores are read from their chunk files (:mod:`avpipe.io.chunks`).
    In a loader worker, batches are decoded straight into shared memory, which the
    DataLoader hands to the training process without a copy, and each worker reuses
    ``ring`` buffers in turn: allocating and faulting in fresh shared pages for every
    batch cost more CPU than reading an uncompressed store.  With ``ring`` =
    ``prefetch_factor`` + 1, a worker's batch j is overwritten by its batch j + ring,
    which the DataLoader asks for only after handing out the batch that follows j:
    hence the contract of :meth:`Split.stored_batches`."""

    def __init__(self, sources: Mapping[str, _Source], T: int, ring: int = 1):
        self.parts = {k: (s.store.path, s.array, s.rows) for k, s in sources.items()}
        self.held = {k: s.held for k, s in sources.items() if s.held is not None}
        self.T = T
        self._z: dict[str, tuple[zarr.Array, ChunkFiles | None]] = {}
        self.ring = ring
        self._buffers: dict[str, list[torch.UntypedStorage]] = {}
        self._turn = 0

    def __len__(self) -> int:
        return len(next(iter(self.parts.values()))[2])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(positions)
        worker = torch.utils.data.get_worker_info() is not None
        out = {}
        for k, (_, _, rows) in self.parts.items():
            if k in self.held:
                out[k] = torch.from_numpy(np.ascontiguousarray(self.held[k][idx]))
                continue
            z, files = self._open(k)
            shape = (len(idx), self.T, *z.shape[2:])
            dtype = torch.from_numpy(np.empty(0, z.dtype)).dtype
            t = self._shared(k, shape, dtype) if worker else torch.empty(shape, dtype=dtype)
            read_rows(z, rows[idx], self.T, t.numpy(), files)
            out[k] = t
        self._turn = (self._turn + 1) % self.ring
        return out

    def _open(self, k: str) -> tuple[zarr.Array, ChunkFiles | None]:
        """Input ``k``'s array and chunk files, opened once in each process."""
        if k not in self._z:
            path, name, _ = self.parts[k]
            z = zarr.open_group(str(path), mode="r")[name]
            self._z[k] = (z, ChunkFiles.of(z))
        return self._z[k]

    def open_streamed(self) -> None:
        """Open every streamed input now (a loader worker, as it starts)."""
        for k in self.parts:
            if k not in self.held:
                self._open(k)

    def _shared(self, k: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The batch tensor of input ``k`` in this turn's shared-memory buffer."""
        ring = self._buffers.setdefault(k, [])
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(ring) <= self._turn:
            ring.append(torch.UntypedStorage._new_shared(nbytes))
        elif ring[self._turn].nbytes() < nbytes:
            ring[self._turn] = torch.UntypedStorage._new_shared(nbytes)
        return torch.empty(0, dtype=dtype).set_(ring[self._turn], 0, shape)


class _Order(torch.utils.data.Sampler):
    """The batch order of the current pass (set before each pass, read in the main process)."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self) -> Iterator[list[int]]:
        return (b.tolist() for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _first(x: Any) -> Any:
    return x


@dataclass
class Split:
    """One split's samples: inputs from the stores, the joint mask, the method's targets."""

    name: str
    sample_ids: list[str]
    video_ids: list[str]
    T: int
    mask: np.ndarray  # (N, T) bool
    sources: dict[str, _Source]
    workers: int = 0
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    # reason ("no_audio", "no_video") -> video ids left out for a missing stream
    missing: dict[str, list[str]] = field(default_factory=dict)
    norm: Standardizer | None = None
    collate: Callable[[Batch], Any] = _first
    _loader: torch.utils.data.DataLoader | None = None
    _reader: _Reader | None = None
    _moved: tuple[Any, dict] = (None, {})

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def in_memory(self) -> bool:
        return all(s.held is not None for s in self.sources.values())

    @property
    def n_segments(self) -> np.ndarray:
        """(N,) int64: real segments per sample."""
        return self.mask.sum(1).astype(np.int64)

    def shape(self, name: str) -> tuple[int, ...]:
        """Per-sample shape of input ``name``: (T, ...)."""
        return self.sources[name].shape

    def release(self) -> None:
        """Give back the memory of held arrays and the loader's workers (ids, mask,
        targets and ``norm`` stay), before a later step of the stage opens other splits
        under the same budget."""
        for src in self.sources.values():
            src.held = None
        running = self._loader._iterator if self._loader is not None else None
        if running is not None:  # now, not whenever the iterator is collected
            running._shutdown_workers()
        self._loader = self._reader = None

    def set_targets(self, **arrays: np.ndarray) -> None:
        """Per-sample arrays (leading axis N) batched with the inputs, moved to the device."""
        for k, a in arrays.items():
            if len(a) != len(self):
                raise ValueError(f"{self.name}: target {k!r} has {len(a)} rows for {len(self)}")
            self.targets[k] = np.ascontiguousarray(a)

    def raw(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Inputs of positions ``idx`` as stored (CPU tensors, store dtype)."""
        if self._reader is None:
            self._reader = _Reader(self.sources, self.T)
        return self._reader.__getitems__(np.asarray(idx))

    def to_device(self, idx: np.ndarray, raw: Mapping[str, torch.Tensor], device: torch.device):
        """The batch of positions ``idx``: inputs float32 (z-scored with ``norm``, padded
        segments zero), ``mask`` (B, T) bool and the targets, on ``device``, passed
        through ``collate``."""
        idx = np.asarray(idx)
        m = self.mask[idx]
        mask = torch.from_numpy(m).to(device)
        out: Batch = {}
        for k, x in raw.items():
            # a fresh float32 tensor (a loader worker reuses the buffer of ``raw``): in
            # place is safe; float16 maps convert on the device
            x = x.to(device).to(torch.float32, copy=True)
            if self.norm is not None:
                mean, std = self._stats_on(device)[k]
                x.sub_(mean).div_(std)
            if not m.all():  # (checked on the host: no device sync)
                x.mul_(mask.view(*mask.shape, *([1] * (x.ndim - 2))))
            out[k] = x
        out["mask"] = mask
        for k, a in self.targets.items():
            out[k] = torch.from_numpy(a[idx]).to(device)
        return self.collate(out)

    def batch(self, idx: np.ndarray, device: torch.device) -> Any:
        """One batch, read synchronously (random access)."""
        return self.to_device(idx, self.raw(idx), device)

    def batches(
        self, index_batches: Iterable[np.ndarray], device: torch.device
    ) -> Iterator[tuple[np.ndarray, Any]]:
        """``(idx, batch)`` for each index batch, in order; streamed splits read ahead in
        ``workers`` processes while the caller computes."""
        for idx, raw in self.stored_batches(index_batches):
            yield idx, self.to_device(idx, raw, device)

    def stored_batches(
        self, index_batches: Iterable[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """``(idx, inputs as stored)`` for each index batch (CPU tensors, store dtype).

        A streamed batch's tensors are valid until the next batch is asked for: loader
        workers reuse their buffers (:class:`_Reader`); copy what must outlive that
        (:meth:`to_device` does)."""
        order = [np.asarray(i) for i in index_batches]
        if self.in_memory or self.workers == 0:
            for idx in order:
                yield idx, self.raw(idx)
            return
        self.start_workers()
        self._loader.batch_sampler.batches = order
        # Keep the training process's mappings of the workers' ring buffers alive: torch
        # maps a received shared-memory storage afresh unless one for the same file is
        # still alive (torch.multiprocessing.reductions.rebuild_storage_fd), and faulting
        # in a new mapping for every batch cost more CPU here than the wait for the
        # workers.  A worker's buffer comes back every ``workers * ring`` batches.
        held: deque[dict[str, torch.Tensor]] = deque(
            maxlen=self.workers * self._loader.dataset.ring
        )
        for idx, raw in zip(order, self._loader, strict=True):
            held.append(raw)
            yield idx, raw

    def start_workers(self) -> None:
        """Start the loader workers of a streamed split (they persist until
        :meth:`release`), if not yet started.  :func:`open_splits` calls it, so that the
        workers fork and open the stores while the caller builds its model, instead of
        during the first batch (0.7 s for 8 workers on the development box, before the
        first batch of the first epoch)."""
        if self.in_memory or self.workers == 0 or self._loader is not None:
            return
        self._loader = torch.utils.data.DataLoader(
            _Reader(self.sources, self.T, prefetch(self.workers) + 1),
            batch_sampler=_Order(),
            collate_fn=_first,
            num_workers=self.workers,
            prefetch_factor=prefetch(self.workers),
            persistent_workers=True,
            worker_init_fn=_start_worker,
        )
        iter(self._loader)  # forks the workers; the empty order reads nothing

    def _stats_on(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The standardiser's statistics as float32 tensors on ``device`` (moved once)."""
        key = (id(self.norm), str(device))
        if self._moved[0] != key:
            n = self.norm
            self._moved = (key, {
                k: (torch.from_numpy(n.mean[k]).to(device), torch.from_numpy(n.std[k]).to(device))
                for k in n.mean
            })  # fmt: skip
        return self._moved[1]


def prefetch(workers: int) -> int:
    """Batches each of ``workers`` loader processes reads ahead (``READ_AHEAD`` in all)."""
    return max(1, -(-READ_AHEAD // max(workers, 1)))


def reserved_batches(workers: int) -> int:
    """Batches of memory kept free for a streamed input: the buffers of the loader
    workers (prefetched batches + the one being used), or the batch read in the
    training process, and two batches there (the one in use, the next)."""
    return (workers * (prefetch(workers) + 1) if workers else 1) + 2


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def _start_worker(worker_id: int) -> None:
    """A loader worker: one torch thread, and the streamed inputs opened."""
    _one_thread(worker_id)
    torch.utils.data.get_worker_info().dataset.open_streamed()


def fit_standardizer(split: Split, batch_size: int = 64) -> Standardizer:
    """Channel statistics of every input over the real segments of ``split`` (module
    docstring); a streamed split is read once, in parallel."""
    sums: dict[str, list[Any]] = {}
    n = len(split)
    order = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    for idx, raw in split.stored_batches(order):
        m = split.mask[idx]
        for k, x in raw.items():
            x = x.numpy()[m].astype(np.float64).reshape(-1, x.shape[-1])
            acc = sums.setdefault(k, [np.zeros(x.shape[1]), np.zeros(x.shape[1]), 0])
            acc[0] += x.sum(0)
            acc[1] += (x * x).sum(0)
            acc[2] += len(x)
    stats = {k: channel_stats(*v) for k, v in sums.items()}
    return Standardizer({k: v[0] for k, v in stats.items()}, {k: v[1] for k, v in stats.items()})


def open_splits(
    manifest: Manifest,
    inputs: Mapping[str, Input],
    splits: Mapping[str, Sequence[Sample]],
    loading: Loading,
    collate: Callable[[Batch], Any] = _first,
) -> dict[str, Split]:
    """One :class:`Split` per entry of ``splits`` (name -> samples), in that order, under
    one memory budget (module docstring).  Raises
    :class:`~avpipe.io.store.GridMismatchError` when a store is not on the manifest's grid,
    ``ValueError`` when a split has no sample with features."""
    stores = {p: FeatureStore(p) for p in dict.fromkeys(Path(i.store) for i in inputs.values())}
    for st in stores.values():
        st.check_grid(manifest.segment_hop, manifest.segment_win)
    arrays = {k: stores[Path(i.store)].array(i.array) for k, i in inputs.items()}
    T = min(int(z.shape[1]) for z in arrays.values())
    out: dict[str, Split] = {}
    for name, samples in splits.items():
        where = f"{manifest.dataset}/{name}"
        samples = _with_features(list(samples), list(stores.values()), where)
        kept, missing = drop_missing_streams(
            [s.video_id for s in samples], list(stores.values()), where
        )
        keep = set(kept)
        samples = [s for s in samples if s.video_id in keep]
        samples, empty = _with_segments(samples, list(stores.values()), where)
        if empty:
            missing["no_segment"] = empty
        if not samples:
            raise ValueError(f"{where}: no sample has features in every store (and both streams)")
        vids = [s.video_id for s in samples]
        n_seg = _n_segments(samples, list(stores.values()))
        sources = {
            k: _Source(
                stores[Path(i.store)],
                i.array,
                stores[Path(i.store)].rows(vids),
                (T, *arrays[k].shape[2:]),
                np.dtype(arrays[k].dtype),
            )
            for k, i in inputs.items()
        }
        out[name] = Split(
            name,
            [s.sample_id for s in samples],
            vids,
            T,
            np.arange(T)[None, :] < n_seg[:, None],
            sources,
            workers=loading.workers,
            missing=missing,
            collate=collate,
        )
    _hold(out, loading)
    for split in out.values():
        split.start_workers()
    return out


def _with_features(samples: list[Sample], stores: list[FeatureStore], where: str) -> list[Sample]:
    """``samples`` whose video is in every store; the others are logged and dropped
    (extraction skips videos that fail to decode)."""
    absent = [s.video_id for s in samples if not all(s.video_id in st for st in stores)]
    if absent:
        names = list(dict.fromkeys(absent))
        log.warning(
            "%s: %d videos absent from a feature store (%s) are dropped: %s",
            where,
            len(names),
            ", ".join(str(st.path) for st in stores),
            ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""),
        )
        gone = set(absent)
        samples = [s for s in samples if s.video_id not in gone]
    return samples


PARALLEL_LOAD_BYTES = 64 << 20  # smaller arrays load in the main process (no worker start-up)


def _read_all(src: _Source, T: int, workers: int) -> np.ndarray:
    """Every row of ``src`` in memory; large one-video-per-chunk arrays are read by
    ``workers`` loader processes in parallel."""
    z = src.store.array(src.array)
    if workers == 0 or src.nbytes < PARALLEL_LOAD_BYTES or src.videos_per_chunk > 1:
        return read_rows(z, src.rows, T, files=ChunkFiles.of(z))
    out = np.empty((len(src.rows), *src.shape), dtype=src.dtype)
    order = _Order()
    order.batches = [np.arange(s, min(s + 64, len(out))) for s in range(0, len(out), 64)]
    loader = torch.utils.data.DataLoader(
        _Reader({"x": src}, T, prefetch(workers) + 1),
        batch_sampler=order,
        collate_fn=_first,
        num_workers=workers,
        prefetch_factor=prefetch(workers),
        worker_init_fn=_one_thread,
    )
    for idx, part in zip(order.batches, loader, strict=True):
        out[idx] = part["x"].numpy()
    return out


def _n_segments(samples: list[Sample], stores: list[FeatureStore]) -> np.ndarray:
    """(N,) segments real in every store and in the manifest."""
    vids = [s.video_id for s in samples]
    return np.minimum.reduce(
        [st.n_segments[st.rows(vids)] for st in stores]
        + [np.array([s.n_segments for s in samples], dtype=np.int64)]
    )


def _with_segments(
    samples: list[Sample], stores: list[FeatureStore], where: str
) -> tuple[list[Sample], list[str]]:
    """``samples`` with at least one segment, and the videos without one (UnAV-100: clips
    shorter than one window; nothing to train on or to predict), logged."""
    if not samples:
        return samples, []
    n = _n_segments(samples, stores)
    empty = list(dict.fromkeys(s.video_id for s, k in zip(samples, n, strict=True) if k == 0))
    if empty:
        log.warning(
            "%s: %d videos have no segment (shorter than one window) and are left out: %s",
            where,
            len(empty),
            ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else ""),
        )
        gone = set(empty)
        samples = [s for s in samples if s.video_id not in gone]
    return samples, empty


def _hold(splits: Mapping[str, Split], loading: Loading) -> None:
    """Decide, under one budget, which (split, input) arrays are read into memory; read them.

    Everything fits: all in memory.  Otherwise vectors (multi-video chunks, slow to read
    by row) are held first, then maps split by split in order, and room is kept for the
    buffers of each split left streaming (:func:`reserved_batches` of
    ``loading.batch_size``: each streamed split has its own loader workers): with room
    for k streamed splits, the smallest k that leaves at most k of them streaming."""
    budget = loading.budget_mb * 2**20
    items = [(s, k, src) for s in splits.values() for k, src in s.sources.items()]
    total = sum(src.nbytes for _, _, src in items)
    chosen = items
    if total > budget:
        per_sample = max(src.nbytes // max(len(src.rows), 1) for _, _, src in items)
        reserve = reserved_batches(loading.workers) * loading.batch_size * per_sample
        items.sort(key=lambda it: it[2].videos_per_chunk == 1)  # stable: split order kept
        for k in range(1, len(splits) + 1):  # streamed splits only grow as k grows
            chosen, used = [], 0
            for it in items:
                if used + it[2].nbytes <= budget - k * reserve:
                    chosen.append(it)
                    used += it[2].nbytes
            held = {id(src) for _, _, src in chosen}
            streamed = {s.name for s, _, src in items if id(src) not in held}
            if len(streamed) <= k:
                break
    used = 0
    for split, _, src in chosen:
        src.held = _read_all(src, split.T, loading.workers)
        used += src.nbytes
    for split in splits.values():
        streamed = [k for k, src in split.sources.items() if src.held is None]
        log.info(
            "%s: %d samples, T=%d, %s: %.0f MiB, %s",
            split.name,
            len(split),
            split.T,
            ", ".join(f"{k} {src.shape[1:]} {src.dtype}" for k, src in split.sources.items()),
            sum(src.nbytes for src in split.sources.values()) / 2**20,
            f"streamed: {', '.join(streamed)} (budget {loading.budget_mb} MiB for the stage)"
            if streamed
            else "in memory",
        )
    log.info("inputs held in memory: %.0f of %.0f MiB", used / 2**20, total / 2**20)
