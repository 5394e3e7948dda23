"""Extract every recipe of a dataset over one shard of videos, decoding each video once.

::

    decoding workers    file digest -> cache look-ups -> decode_video (PyAV), in memory
    (processes)         -> per recipe still to compute: audio windows on the grid, or frames
                           at the recipe's input size (CPU job: swscale) / at the source
                           size (GPU job: resized on the device, one conversion per recipe)
    main thread         per recipe, segments batched across videos -> the model
    writer thread       device -> host, per-video rows -> cache entries (``FeatureCache``)
    at the end          one store per recipe, assembled in video order from the entries

The workers run under a torch ``DataLoader`` (shared-memory tensors, pinned memory for
a GPU, prefetch), so decoding overlaps inference.  No decoded frame is written to disk
(``keep_decoded`` writes the model inputs for debugging).

A video whose every recipe has a valid cache entry is not decoded: what decoding found
(segments, streams, status) is cached too (``DecodeCache``).  Without a cache the entries
go to a spill folder inside the job's temporary output and are deleted with it.

Batches are made of *segments*, not videos, so short and long videos fill them alike.
Videos that lack a recipe's modality (no audio stream for VGGish, no video stream for a
visual recipe) are not computed: their rows are zeros and the store's ``has_audio`` /
``has_video`` flag says so.  Videos that cannot be decoded are not in the stores; the
job's ``status.tsv`` names them and says why.  Videos whose decoding stopped early are
in the stores with the segments decoded (status ``partial``, the reason says where).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from avpipe.features.base import Extractor, ExtractorSpec
from avpipe.io.cache import DecodeCache, FeatureCache, file_digest
from avpipe.io.decode import (
    DOWNMIX,
    NATIVE,
    PADDING,
    STATUS_COLUMNS,
    DecodeError,
    VisualNeed,
    conversion_key,
    decode_video,
)
from avpipe.io.grid import Grid
from avpipe.io.store import ArraySpec, StoreWriter
from avpipe.io.store_codec import DEFAULT_CODEC
from avpipe.utils.atomic import atomic_path, write_tsv

log = logging.getLogger(__name__)

_DONE = object()
INFO_KEYS = ("status", "reason", "n_segments", "duration_s", "has_audio", "has_video", "source")


@dataclass
class RecipeRun:
    """One recipe of the job: its extractor (on its device), its cache and store attributes."""

    name: str
    extractor: Extractor
    cache: FeatureCache | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ExtractorSpec:
        return self.extractor.spec


@dataclass(frozen=True)
class Settings:
    grid: Grid = Grid()  # noqa: RUF009 (frozen, hashable)
    batch_size: int = 16
    workers: int = 1  # decoding processes (0 = decode in the main process)
    prefetch: int = 2  # videos decoded ahead per worker
    prepare: Literal["workers", "device"] = "workers"  # where frames are resized
    on_error: Literal["raise", "skip"] = "skip"
    truncation_tolerance_s: float = 1.0
    sample_rate: int = 16000
    keep_decoded: bool = False
    store_codec: str = DEFAULT_CODEC  # how the stores' chunks are compressed
    # video_id -> segments fixed by the dataset's labels (VGGSound-AVEL100k), else decoded
    segments: Mapping[str, int] = field(default_factory=dict)


@dataclass
class RecipeStats:
    computed: int = 0  # videos through the model
    cached: int = 0  # videos read from the cache
    segments: int = 0
    items: int = 0  # frames (2D nets), clips (R(2+1)D) or patches (VGGish) through the model
    model_s: float = 0.0


@dataclass
class ShardResult:
    videos: list[dict[str, Any]]  # per video: video_id, path, digest and INFO_KEYS
    stats: dict[str, RecipeStats]
    decoded: int = 0  # videos decoded (the others came wholly from the cache)
    wall_s: float = 0.0

    def status_rows(self) -> list[list[Any]]:
        return [[v.get(k) for k in STATUS_COLUMNS] for v in self.videos]


def has_modality(spec: ExtractorSpec, info: dict[str, Any]) -> bool:
    return bool(info["has_audio"] if spec.modality == "audio" else info["has_video"])


def output_arrays(spec: ExtractorSpec, codec: str = DEFAULT_CODEC) -> dict[str, ArraySpec]:
    """The store arrays an extractor fills: ``features`` plus its extra outputs, stored
    with ``codec`` (:mod:`avpipe.io.store_codec`)."""
    dtype = spec.store_dtype
    arrays = {"features": ArraySpec(tuple(spec.output_shape), dtype, codec=codec)}
    for name, shape in spec.extra_outputs.items():
        # (k, ...) per segment: stored (T, k, ...), cached flattened along time (T * k, ...)
        arrays[name] = ArraySpec(tuple(shape[1:]), dtype, frames=int(shape[0]), codec=codec)
    return arrays


def entry_shapes(spec: ExtractorSpec, n: int) -> dict[str, tuple[int, ...]]:
    return {k: (n * a.steps, *a.shape) for k, a in output_arrays(spec).items()}


def audio_windows(spec: ExtractorSpec, audio: np.ndarray, n: int, where: str) -> np.ndarray:
    """(n, window) samples: segment t's window starts at ``t * spec.hop_s`` seconds."""
    from avpipe.features.registry import CONTIGUOUS_MAX_SEGMENTS

    if spec.details.get("options", {}).get("placement") == "contiguous" and (
        n > CONTIGUOUS_MAX_SEGMENTS
    ):
        raise ValueError(
            f"{where}: {n} segments, but {spec.name} placement contiguous (the released LLP "
            f"features' back-to-back 0.96-s patches) is defined for clips of at most "
            f"{CONTIGUOUS_MAX_SEGMENTS} s; use placement: segment"
        )
    win = round(spec.window_s * spec.sample_rate)
    starts = np.round(np.arange(n) * spec.hop_s * spec.sample_rate).astype(np.int64)
    need = int(starts[-1]) + win if n else 0
    if audio.size < need:
        audio = np.pad(audio, (0, need - audio.size))
    if not n:
        return np.zeros((0, win), np.float32)
    return np.stack([audio[s : s + win] for s in starts])


def visual_need(spec: ExtractorSpec, prepare: str) -> VisualNeed:
    size = spec.input_size[0] if prepare == "workers" and spec.input_size else None
    resize = spec.details.get("options", {}).get("resize", "direct")
    return VisualNeed(spec.name, spec.frames_per_segment, conversion_key(resize, size))


class _Videos(torch.utils.data.Dataset):
    """Item ``i``: what the main process needs of video ``i`` (runs in the decoding workers)."""

    def __init__(
        self,
        videos: Sequence[tuple[str, str]],
        runs: Sequence[tuple[ExtractorSpec, FeatureCache]],
        decode_cache: DecodeCache,
        settings: Settings,
    ):
        self.videos, self.runs = list(videos), list(runs)
        self.decode_cache, self.s = decode_cache, settings

    def __len__(self) -> int:
        return len(self.videos)

    def _missing(self, digest: str, info: dict[str, Any]) -> list[tuple[ExtractorSpec, Any]]:
        """The runs this video needs computed: it has their modality, and no valid entry."""
        n = info["n_segments"]
        return [
            (spec, cache)
            for spec, cache in self.runs
            if has_modality(spec, info)
            and cache.get(cache.key(digest), n, entry_shapes(spec, n), count=False) is None
        ]

    def __getitem__(self, i: int) -> dict[str, Any]:
        video_id, path = self.videos[i]
        item: dict[str, Any] = {"row": i, "video_id": video_id, "path": path, "compute": {}}
        if not Path(path).is_file():
            return {**item, "status": "failed", "reason": f"missing: {path}: no such file"}
        digest = file_digest(path)
        item["digest"] = digest
        fixed = self.s.segments.get(video_id)
        info = self.decode_cache.get(digest)
        if info is not None and fixed is not None and info["n_segments"] != fixed:
            info = None  # decoded before without the labels' segment count
        todo = self._missing(digest, info) if info is not None else None
        if info is not None and not todo:
            return {**item, **info}
        needs = tuple(
            visual_need(spec, self.s.prepare)
            for spec, _ in (self.runs if todo is None else todo)
            if spec.modality == "visual"
        )
        threads = 1 if torch.utils.data.get_worker_info() is not None else 0
        try:
            d = decode_video(
                path,
                self.s.grid,
                needs,
                sample_rate=self.s.sample_rate,
                truncation_tolerance_s=self.s.truncation_tolerance_s,
                threads=threads,
                n_segments=fixed,
            )
        except DecodeError as e:  # not cached: the next run tries again
            return {**item, **{k: None for k in INFO_KEYS}, "status": "failed", "reason": str(e)}
        info = {
            "status": d.status,
            "reason": d.reason,
            "n_segments": d.n_segments,
            "duration_s": round(d.duration_s, 6),
            "has_audio": d.has_audio,
            "has_video": d.has_video,
            "source": d.source,
        }
        self.decode_cache.put(digest, info)
        item.update(info, decoded=True)
        for spec, _ in self._missing(digest, info) if todo is None else todo:
            if spec.modality == "audio":
                x = audio_windows(spec, d.audio, d.n_segments, path)
            elif self.s.prepare == "device":
                x = d.index[spec.name]
                item["native"] = torch.from_numpy(d.pools[NATIVE])
            else:
                x = d.frames(spec.name)
            item["compute"][spec.name] = torch.from_numpy(np.ascontiguousarray(x))
        return item


class _Batcher:
    """Per-recipe queue of segments; yields (batch, spans) of exactly ``size`` segments."""

    def __init__(self, size: int):
        self.size = size
        self.pieces: list[tuple[int, int, torch.Tensor]] = []  # (row, first segment, data)
        self.count = 0

    def add(self, row: int, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, list]]:
        start = 0
        while start < len(x):
            take = min(self.size - self.count, len(x) - start)
            self.pieces.append((row, start, x[start : start + take]))
            self.count += take
            start += take
            if self.count == self.size:
                yield self.take()

    def take(self) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
        data = torch.cat([p[2] for p in self.pieces]) if len(self.pieces) > 1 else self.pieces[0][2]
        spans = [(row, start, len(p)) for row, start, p in self.pieces]
        self.pieces, self.count = [], 0
        return data, spans


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


def _put(q: queue.Queue, item: Any, errors: list[BaseException]) -> None:
    """Put unless the consumer failed (then it will never take it: raise its error)."""
    while True:
        if errors:
            raise errors[0]
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def extract_shard(
    videos: Sequence[tuple[str, str]],
    runs: Sequence[RecipeRun],
    out: str | Path,
    settings: Settings,
    decode_cache: DecodeCache | None = None,
) -> ShardResult:
    """Extract ``runs`` over ``videos`` ((video_id, path), sorted) into the folder ``out``.

    ``out`` gets ``<recipe>.zarr`` per run and ``status.tsv`` (one row per video), and
    appears only when complete.  Extractors are already on their device.
    """
    t0 = time.perf_counter()
    with atomic_path(out, directory=True) as tmp:
        spill = tmp / ".spill"
        for r in runs:
            if r.cache is None:
                r.cache = FeatureCache(spill / r.name, {"recipe": r.name})
        dcache = decode_cache or DecodeCache(spill / "_decode", {})
        result = _compute(videos, runs, tmp, settings, dcache)
        included = [v for v in result.videos if v["status"] != "failed"]
        for r in runs:
            _assemble(r, included, tmp / f"{r.name}.zarr", settings.store_codec)
        write_tsv(tmp / "status.tsv", STATUS_COLUMNS, result.status_rows())
        if spill.exists():
            shutil.rmtree(spill)
    result.wall_s = time.perf_counter() - t0
    return result


def _compute(
    videos: Sequence[tuple[str, str]],
    runs: Sequence[RecipeRun],
    tmp: Path,
    s: Settings,
    dcache: DecodeCache,
) -> ShardResult:
    by_name = {r.name: r for r in runs}
    source = _Videos(videos, [(r.spec, r.cache) for r in runs], dcache, s)
    device = getattr(runs[0].extractor, "device", torch.device("cpu")) if runs else None
    cuda = device is not None and torch.device(device).type == "cuda"
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=None,
        num_workers=s.workers if len(videos) > 1 else 0,
        pin_memory=cuda,
        prefetch_factor=s.prefetch if s.workers and len(videos) > 1 else None,
    )
    stats = {r.name: RecipeStats() for r in runs}
    records: list[dict[str, Any]] = []
    batchers = {r.name: _Batcher(s.batch_size) for r in runs}
    results: queue.Queue = queue.Queue(maxsize=4)
    expected: dict[tuple[str, int], tuple[int, str]] = {}  # (recipe, row) -> (n, digest)
    decoded_store = _DecodedWriter(tmp / "decoded.zarr") if s.keep_decoded else None

    def write() -> None:
        parts: dict[tuple[str, int], list[dict[str, np.ndarray]]] = {}
        while (item := results.get()) is not _DONE:
            name, outputs, spans = item
            run = by_name[name]
            host = _to_host(run.spec, outputs)
            offset = 0
            for row, _start, count in spans:
                parts.setdefault((name, row), []).append(
                    {k: v[offset : offset + count] for k, v in host.items()}
                )
                offset += count
                n, digest = expected[(name, row)]
                got = sum(len(p["features"]) for p in parts[(name, row)])
                if got == n:
                    del expected[(name, row)]
                    pieces = parts.pop((name, row))
                    shapes = entry_shapes(run.spec, n)
                    data = {
                        k: np.concatenate([p[k] for p in pieces]).reshape(shapes[k]) for k in shapes
                    }
                    run.cache.put(run.cache.key(digest), n, data)

    def run_model(name: str, batch: torch.Tensor, spans: list) -> None:
        run = by_name[name]
        tm = time.perf_counter()
        outputs = run.extractor(batch)
        missing = sorted(set(output_arrays(run.spec)) - set(outputs))
        if missing:
            raise ValueError(f"{name}: the extractor returned no {missing}")
        st = stats[name]
        st.model_s += time.perf_counter() - tm
        st.segments += len(batch)
        st.items += len(batch) * _items_per_segment(run.spec)
        _put(results, (name, outputs, spans), writer_errors)

    writer, writer_errors = _thread(write)
    progress = tqdm(total=len(videos), unit="video", desc="extract", mininterval=2.0)
    decoded = 0
    try:
        with torch.inference_mode():
            for item in loader:
                progress.update(1)
                records.append({k: item.get(k) for k in ("video_id", "path", "digest", *INFO_KEYS)})
                if item["status"] == "failed":
                    if s.on_error == "raise":
                        raise DecodeError("failed", f"video {item['video_id']}: {item['reason']}")
                    log.warning("video %s skipped: %s", item["video_id"], item["reason"])
                    continue
                decoded += bool(item.get("decoded"))
                n, row = int(item["n_segments"]), int(item["row"])
                native = item.get("native")
                if native is not None and device is not None:
                    native = native.to(device, non_blocking=True)
                for r in runs:
                    if not has_modality(r.spec, item):
                        continue
                    if r.name not in item["compute"]:
                        stats[r.name].cached += 1
                        continue
                    x = item["compute"][r.name]
                    if native is not None and r.spec.modality == "visual":
                        x = _resize_on_device(native, x, r.spec)
                    if decoded_store is not None:
                        decoded_store.add(r.name, item["video_id"], x)
                    stats[r.name].computed += 1
                    if n == 0:  # no segment (shorter than one window): an empty entry
                        shapes = entry_shapes(r.spec, 0)
                        empty = {k: np.zeros(shape, np.float32) for k, shape in shapes.items()}
                        r.cache.put(r.cache.key(item["digest"]), 0, empty)
                        continue
                    expected[(r.name, row)] = (n, item["digest"])
                    for batch, spans in batchers[r.name].add(row, x):
                        run_model(r.name, batch, spans)
            for name, b in batchers.items():
                if b.count:
                    run_model(name, *b.take())
        _put(results, _DONE, writer_errors)
        writer.join()
        if writer_errors:
            raise writer_errors[0]
    finally:
        progress.close()
        if writer.is_alive():  # an error above: let the writer drain and stop
            results.put(_DONE)
            writer.join()
    return ShardResult(records, stats, decoded)


def _resize_on_device(
    native: torch.Tensor, index: torch.Tensor, spec: ExtractorSpec
) -> torch.Tensor:
    """(T, F) rows of the video's native frames -> (T, F, S, S, 3) uint8 on the device."""
    from avpipe.features.visual import resize_frames

    t, f = index.shape
    frames = native[index.to(native.device).flatten().long()]
    size = spec.input_size[0]
    out = resize_frames(frames, size, spec.details["options"]["resize"])
    return out.view(t, f, size, size, 3)


def _items_per_segment(spec: ExtractorSpec) -> int:
    if spec.modality == "visual" and spec.details.get("aggregation") != "clip":
        return spec.frames_per_segment
    return 1


def _assemble(run: RecipeRun, included: list[dict[str, Any]], out: Path, codec: str) -> None:
    """The recipe's store from its cache entries, one row per decodable video, in order,
    compressed with ``codec``."""
    spec = run.spec
    flag = "has_audio" if spec.modality == "audio" else "has_video"
    t_max = max((int(v["n_segments"]) for v in included), default=1)
    info_attrs = {"padding": PADDING, "downmix": DOWNMIX, **run.attrs}
    arrays = output_arrays(spec, codec)
    with StoreWriter(out, len(included), t_max, arrays, info_attrs, (flag,)) as w:
        for v in included:
            video_id, n, digest = v["video_id"], int(v["n_segments"]), v["digest"]
            present = bool(v[flag])
            data = None
            if present:
                data = run.cache.get(run.cache.key(digest), n, entry_shapes(spec, n), count=False)
                if data is None:
                    raise RuntimeError(
                        f"{run.name}: the cache entry of {video_id} vanished or is damaged "
                        f"while the job ran ({run.cache.root}); run the job again"
                    )
            w.add(video_id, n, data, {flag: present})


def _to_host(spec: ExtractorSpec, outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    host = {
        k: (v.float() if v.dtype == torch.bfloat16 else v).cpu().numpy() for k, v in outputs.items()
    }
    s = len(host["features"])
    for k, a in output_arrays(spec).items():
        want = (s, a.steps, *a.shape) if k != "features" else (s, *a.shape)
        if host[k].shape != want:
            raise ValueError(
                f"{spec.name}: output {k!r} has shape {host[k].shape}, the spec says {want}"
            )
        if not np.isfinite(host[k]).all():
            raise FloatingPointError(f"{spec.name}: output {k!r} has NaN or inf values")
    return host


class _DecodedWriter:
    """``keep_decoded``: the model inputs of each computed video, ``<recipe>/<video_id>``."""

    def __init__(self, path: Path):
        import zarr

        self.root = zarr.open_group(str(path), mode="w")
        self.root.attrs["about"] = (
            "model inputs of the videos this job computed (debugging; extract.keep_decoded)"
        )

    def add(self, recipe: str, video_id: str, x: torch.Tensor) -> None:
        a = x.cpu().numpy()
        g = self.root.require_group(recipe)
        g.create_array(video_id, shape=a.shape, dtype=a.dtype, chunks=a.shape)[...] = a
