"""Run one extractor over a decoded shard: batches across videos, three overlapped stages.

::

    reader thread     decoded shard (Zarr) -> segment batches (uint8 frames / float audio)
    main thread       extractor(batch) on the device (per-segment averaging happens there)
    writer thread     device -> host, per-video rows -> feature-store shard (Zarr)

Batches are made of *segments*, not videos, so short and long videos fill them
alike.  Videos that lack the extractor's modality (no audio stream for an audio
recipe, no video stream for a visual one) are not computed: their rows are zeros
and the store's ``has_audio`` / ``has_video`` flag says so.

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
from avpipe.io.decode import DecodedShard, pick_frames
from avpipe.io.store import ArraySpec, StoreWriter

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class _Batch:
    data: torch.Tensor  # (S, F, H, W, 3) uint8 or (S, n) float32
    spans: list[tuple[int, int, int]]  # (row, first segment, count) of each video piece in the batch


@dataclass
class ShardStats:
    videos: int = 0
    segments: int = 0
    items: int = 0  # frames (2D nets), clips (R(2+1)D) or patches (VGGish) through the model
    model_s: float = 0.0
    wall_s: float = 0.0
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
        raise ValueError(f"{spec.name} needs {spec.sample_rate} Hz audio, the shard holds {shard.plan.sample_rate} Hz")
    audio = shard.audio(row)
    win = round(spec.window_s * spec.sample_rate)
    starts = np.round(np.arange(n) * spec.hop_s * spec.sample_rate).astype(np.int64)
    need = int(starts[-1]) + win if n else 0
    if audio.size < need:
        audio = np.pad(audio, (0, need - audio.size))  # last window runs past the end: zeros
    return np.stack([audio[s : s + win] for s in starts]) if n else np.zeros((0, win), np.float32)


def _has_modality(shard: DecodedShard, spec: ExtractorSpec, row: int) -> bool:
    return bool(shard.has_video[row] if spec.modality == "visual" else shard.has_audio[row])


def _batches(shard: DecodedShard, spec: ExtractorSpec, rows: list[int], batch_size: int) -> Iterator[_Batch]:
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


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
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
) -> ShardStats:
    """Extract every video of ``shard`` with ``extractor`` into the feature store ``out``.

    ``extractor`` is already on its device.  Returns throughput statistics.
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
    with StoreWriter(out, len(shard), t_max, arrays, attrs or {}, flags=(flag,)) as writer:
        parts: dict[int, dict[str, list[np.ndarray]]] = {}
        computed = set(rows)

        def read() -> None:
            for b in _batches(shard, spec, rows, batch_size):
                if not _put(batches, b, stop):
                    return
            _put(batches, _DONE, stop)

        def write() -> None:
            next_row = 0
            while True:
                item = results.get()
                if item is _DONE:
                    break
                outputs, spans = item
                offset = 0
                for row, _start, count in spans:
                    piece = parts.setdefault(row, {k: [] for k in arrays})
                    for k in arrays:
                        piece[k].append(outputs[k][offset : offset + count])
                    offset += count
                # rows complete in order: write every finished row up to the first pending one
                while next_row < len(shard) and _row_ready(shard, parts, computed, next_row):
                    _write_row(writer, shard, parts.pop(next_row, None), arrays, next_row, flag, next_row in computed)
                    next_row += 1
                    progress.update(1)
            while next_row < len(shard):
                _write_row(writer, shard, parts.pop(next_row, None), arrays, next_row, flag, next_row in computed)
                next_row += 1
                progress.update(1)

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
                outputs = {k: out_t[k].float().cpu().numpy() if out_t[k].dtype == torch.bfloat16 else out_t[k].cpu().numpy() for k in arrays}
                stats.model_s += time.perf_counter() - tm
                stats.segments += len(b.data)
                stats.items += len(b.data) * (spec.frames_per_segment if spec.modality == "visual" and spec.details.get("aggregation") != "clip" else 1)
                _check_outputs(spec, outputs, len(b.data), arrays)
                if writer_errors or not _put(results, (outputs, b.spans), stop):
                    break
            _put(results, _DONE, stop)
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
                raise errors[0]
            if not producer.is_alive() and q.empty():
                raise RuntimeError("reader thread ended without finishing")


def _row_ready(shard: DecodedShard, parts: dict, computed: set[int], row: int) -> bool:
    if row not in computed:
        return True
    got = parts.get(row)
    return got is not None and sum(len(p) for p in got["features"]) == int(shard.n_segments[row])


def _write_row(writer: StoreWriter, shard: DecodedShard, piece: dict | None, arrays: dict[str, ArraySpec], row: int, flag: str, computed: bool) -> None:
    n = int(shard.n_segments[row])
    if computed and piece is not None:
        data = {k: np.concatenate(piece[k]).reshape(n * arrays[k].steps, *arrays[k].shape) for k in arrays}
    else:
        data = None  # the modality is missing: rows stay at the fill value 0
    writer.add(shard.video_ids[row], n, data, {flag: computed})


def _check_outputs(spec: ExtractorSpec, outputs: dict[str, np.ndarray], s: int, arrays: dict[str, ArraySpec]) -> None:
    for k, a in arrays.items():
        want = (s, a.steps, *a.shape) if k != "features" else (s, *a.shape)
        got = outputs[k].shape
        if got != want:
            raise ValueError(f"{spec.name}: output {k!r} has shape {got}, the spec says {want}")
        if not np.isfinite(outputs[k]).all():
            raise FloatingPointError(f"{spec.name}: output {k!r} has NaN or inf values")
