"""Run one extractor over a decoded shard: batches across videos, three overlapped stages.

::

    reader thread     decoded shard (Zarr) -> segment batches (uint8 frames / float audio)
    main thread       extractor(batch) on the device (per-segment averaging happens there)
    writer thread     device -> host, per-video rows -> feature-store shard (Zarr)

Batches are made of *segments*, not videos, so short and long videos fill them
alike.  Videos that lack the extractor's modality (no audio stream for an audio
recipe, no video stream for a visual one) are not computed: their rows are zeros
and the store's ``has_audio`` / ``has_video`` flag says so.

With a ``FeatureCache`` (``avpipe/io/cache.py``), videos whose cache entry is valid are
not computed: their rows are read from the cache, and computed rows are written to it, so
a shard job rerun after videos were added computes only the new ones.

The output store appears only when complete (``StoreWriter`` renames a temporary
directory at the end); an exception anywhere leaves no store behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from avpipe.features.base import Extractor, ExtractorSpec
from avpipe.io.cache import FeatureCache
from avpipe.io.decode import DecodedShard, pick_frames
from avpipe.io.store import ArraySpec, StoreWriter

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class _Batch:
    data: torch.Tensor  # (S, F, H, W, 3) uint8 or (S, n) float32
    spans: list[
        tuple[int, int, int]
    ]  # (row, first segment, count) of each video piece in the batch


@dataclass
class ShardStats:
    videos: int = 0
    segments: int = 0
    items: int = 0  # frames (2D nets), clips (R(2+1)D) or patches (VGGish) through the model
    model_s: float = 0.0
    wall_s: float = 0.0
    cached: int = 0  # videos read from the cache
    computed: int = 0  # videos through the model
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0


def _segments(shard: DecodedShard, spec: ExtractorSpec, row: int) -> np.ndarray:
    """All segments of video ``row`` as the extractor's input: (n, F, H, W, 3) or (n, samples)."""
    n = int(shard.n_segments[row])
    if spec.modality == "visual":
        frames = shard.frames(row)  # (n, R, H, W, 3)
        return frames[:, pick_frames(shard.plan.frames_per_segment, spec.frames_per_segment)]
    if spec.sample_rate != shard.plan.sample_rate:
        raise ValueError(
            f"{spec.name} needs {spec.sample_rate} Hz audio, "
            f"the shard holds {shard.plan.sample_rate} Hz"
        )
    audio = shard.audio(row)
    win = round(spec.window_s * spec.sample_rate)
    starts = np.round(np.arange(n) * spec.hop_s * spec.sample_rate).astype(np.int64)
    need = int(starts[-1]) + win if n else 0
    if audio.size < need:
        audio = np.pad(audio, (0, need - audio.size))  # last window runs past the end: zeros
    return np.stack([audio[s : s + win] for s in starts]) if n else np.zeros((0, win), np.float32)


def _has_modality(shard: DecodedShard, spec: ExtractorSpec, row: int) -> bool:
    return bool(shard.has_video[row] if spec.modality == "visual" else shard.has_audio[row])


def _batches(
    shard: DecodedShard, spec: ExtractorSpec, rows: list[int], batch_size: int
) -> Iterator[_Batch]:
    pending: list[tuple[int, int, np.ndarray]] = []
    size = 0
    for row in rows:
        segs = _segments(shard, spec, row)
        start = 0
        while start < len(segs):
            take = min(batch_size - size, len(segs) - start)
            pending.append((row, start, segs[start : start + take]))
            size += take
            start += take
            if size == batch_size:
                yield _make_batch(pending)
                pending, size = [], 0
    if pending:
        yield _make_batch(pending)


def _make_batch(pieces: list[tuple[int, int, np.ndarray]]) -> _Batch:
    data = torch.from_numpy(np.concatenate([p[2] for p in pieces]))
    if torch.cuda.is_available():
        data = data.pin_memory()
    return _Batch(data, [(row, start, len(p)) for row, start, p in pieces])


def _thread(target: Any, *args: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target(*args)
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, errors


def _put(
    q: queue.Queue, item: Any, stop: threading.Event, consumer_errors: list | None = None
) -> bool:
    """Put unless ``stop`` is set or the consumer failed (then it will never take it)."""
    while not stop.is_set() and not consumer_errors:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def output_arrays(spec: ExtractorSpec) -> dict[str, ArraySpec]:
    """The store arrays an extractor fills: ``features`` plus its extra outputs."""
    arrays = {"features": ArraySpec(1, tuple(spec.output_shape), spec.store_dtype)}
    for name, shape in spec.extra_outputs.items():
        # (k, ...) per segment is stored flattened along time: (T * k, ...)
        arrays[name] = ArraySpec(int(shape[0]), tuple(shape[1:]), spec.store_dtype)
    return arrays


def extract_shard(
    shard: DecodedShard,
    extractor: Extractor,
    out: str | Path,
    *,
    batch_size: int = 16,
    attrs: dict[str, Any] | None = None,
    prefetch: int = 3,
    cache: FeatureCache | None = None,
) -> ShardStats:
    """Extract every video of ``shard`` with ``extractor`` into the feature store ``out``.

    ``extractor`` is already on its device.  With ``cache``, videos with a valid entry
    are read from it and the others are written to it.  Returns throughput statistics.
    """
    spec = extractor.spec
    flag = "has_audio" if spec.modality == "audio" else "has_video"
    rows = [r for r in range(len(shard)) if _has_modality(shard, spec, r)]
    t_max = int(shard.n_segments.max(initial=1)) if len(shard) else 1
    stats = ShardStats()
    t0 = time.perf_counter()
    stop = threading.Event()
    batches: queue.Queue = queue.Queue(maxsize=prefetch)
    results: queue.Queue = queue.Queue(maxsize=prefetch)
    arrays = output_arrays(spec)

    def shapes(row: int) -> dict[str, tuple[int, ...]]:
        n = int(shard.n_segments[row])
        return {k: (n * a.steps, *a.shape) for k, a in arrays.items()}

    keys: dict[int, str] = {}
    from_cache: set[int] = set()
    if cache is not None:
        for row in rows:
            n = int(shard.n_segments[row])
            keys[row] = cache.key(_segments(shard, spec, row), n)
            if cache.get(keys[row], n, shapes(row)) is not None:  # read again when written
                from_cache.add(row)
    to_compute = [r for r in rows if r not in from_cache]
    stats.cached, stats.computed = len(from_cache), len(to_compute)
    log.info(
        "%s: %d of %d videos from cache, %d to compute, %d lack the modality",
        spec.name,
        len(from_cache),
        len(shard),
        len(to_compute),
        len(shard) - len(rows),
    )
    with StoreWriter(out, len(shard), t_max, arrays, attrs or {}, flags=(flag,)) as writer:
        parts: dict[int, dict[str, list[np.ndarray]]] = {}
        computed = set(rows)

        def read() -> None:
            for b in _batches(shard, spec, to_compute, batch_size):
                if not _put(batches, b, stop):
                    return
            _put(batches, _DONE, stop)

        def emit(row: int) -> None:
            piece = parts.pop(row, None)
            n = int(shard.n_segments[row])
            data: dict[str, np.ndarray] | None = None
            if row in from_cache:
                assert cache is not None
                data = cache.get(keys[row], n, shapes(row), count=False)
                if data is None:
                    raise RuntimeError(f"cache entry of {shard.video_ids[row]} vanished")
            elif row in computed and piece is not None:
                data = {k: np.concatenate(piece[k]).reshape(shapes(row)[k]) for k in arrays}
                if cache is not None:
                    cache.put(keys[row], n, data)
            # data None: the modality is missing, rows stay at the fill value 0
            writer.add(shard.video_ids[row], n, data, {flag: row in computed})
            progress.update(1)

        def write() -> None:
            next_row = 0
            while True:
                try:
                    item = results.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():  # the main thread gave up
                        return
                    continue
                if item is _DONE:
                    break
                outputs = _to_host(spec, item[0], arrays)  # device sync here, off the model thread
                spans = item[1]
                offset = 0
                for row, _start, count in spans:
                    piece = parts.setdefault(row, {k: [] for k in arrays})
                    for k in arrays:
                        piece[k].append(outputs[k][offset : offset + count])
                    offset += count
                # rows complete in order: write every finished row up to the first pending one
                while next_row < len(shard) and (
                    next_row in from_cache or _row_ready(shard, parts, computed, next_row)
                ):
                    emit(next_row)
                    next_row += 1
            while next_row < len(shard):
                emit(next_row)
                next_row += 1

        progress = tqdm(total=len(shard), unit="video", desc=spec.name, mininterval=2.0)
        reader, reader_errors = _thread(read)
        writer_thread, writer_errors = _thread(write)
        try:
            while True:
                b = _get(batches, reader, reader_errors)
                if b is _DONE:
                    break
                tm = time.perf_counter()
                out_t = extractor(b.data)
                missing = sorted(set(arrays) - set(out_t))
                if missing:
                    raise ValueError(f"{spec.name}: the extractor returned no {missing}")
                stats.model_s += time.perf_counter() - tm
                stats.segments += len(b.data)
                stats.items += len(b.data) * (
                    spec.frames_per_segment
                    if spec.modality == "visual" and spec.details.get("aggregation") != "clip"
                    else 1
                )
                if not _put(results, ({k: out_t[k] for k in arrays}, b.spans), stop, writer_errors):
                    break
            _put(results, _DONE, stop, writer_errors)
            writer_thread.join()
            if writer_errors:
                raise writer_errors[0]
        finally:
            stop.set()
            progress.close()
        reader.join()
    stats.videos = len(shard)
    stats.wall_s = time.perf_counter() - t0
    return stats


def _get(q: queue.Queue, producer: threading.Thread, errors: list[BaseException]) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if errors:
                raise errors[0] from None
            if not producer.is_alive() and q.empty():
                raise RuntimeError("reader thread ended without finishing") from None


def _row_ready(shard: DecodedShard, parts: dict, computed: set[int], row: int) -> bool:
    if row not in computed:
        return True
    got = parts.get(row)
    return got is not None and sum(len(p) for p in got["features"]) == int(shard.n_segments[row])


def _to_host(
    spec: ExtractorSpec, outputs: dict[str, torch.Tensor], arrays: dict[str, ArraySpec]
) -> dict[str, np.ndarray]:
    host = {
        k: (v.float() if v.dtype == torch.bfloat16 else v).cpu().numpy() for k, v in outputs.items()
    }
    _check_outputs(spec, host, len(next(iter(host.values()))), arrays)
    return host


def _check_outputs(
    spec: ExtractorSpec, outputs: dict[str, np.ndarray], s: int, arrays: dict[str, ArraySpec]
) -> None:
    for k, a in arrays.items():
        want = (s, a.steps, *a.shape) if k != "features" else (s, *a.shape)
        got = outputs[k].shape
        if got != want:
            raise ValueError(f"{spec.name}: output {k!r} has shape {got}, the spec says {want}")
        if not np.isfinite(outputs[k]).all():
            raise FloatingPointError(f"{spec.name}: output {k!r} has NaN or inf values")
