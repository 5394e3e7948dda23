"""Decode a video once: frames on the segment grid and 16 kHz mono audio.

One pass over the container demuxes video and audio together (seeking does not pay
for short clips: ``shared/specs/performance.md`` §3.1).  What comes out serves every
extractor recipe of a dataset:

* frames: ``frames_per_segment`` (R) per hop, start-aligned on the segment grid,
  i.e. frame ``k`` is the source frame nearest to ``k * hop / R`` seconds; uint8
  RGB at ``frame_size`` (H, W), converted and resized by swscale.  A recipe that
  needs ``F`` frames per segment takes every ``R / F``-th of them (``pick_frames``).
* audio: float32 mono at ``sample_rate`` via PyAV's ``AudioResampler`` (libswresample;
  ~7x faster than resampy ``kaiser_best``, checked against librosa/soxr in the tests).

Time zero is the first video frame (the first audio sample for audio-only
files); audio that starts later is delayed by zeros, audio before it is dropped.  A video has ``n_segments = segment_count(duration)``
segments; the content is padded to ``n_segments * hop``: frames by repeating the
last decoded frame, audio with zeros (``PADDING`` is recorded in every store).

Problems are ``DecodeError`` with a short reason (``cannot open``, ``no streams``,
``corrupt``, ``truncated``, ``zero-length``); a missing audio stream is not an
error (``has_audio = False``, audio all zeros), nor is a missing video stream
(``has_video = False``, frames all zeros).
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import zarr
from tqdm import tqdm

from avpipe.datasets.manifest import segment_count
from avpipe.utils.atomic import atomic_path, write_tsv

log = logging.getLogger(__name__)

PADDING = "frames: repeat last decoded frame; audio: zeros; beyond n_segments: fill 0 and mask False"


class DecodeError(RuntimeError):
    """A video could not be decoded; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple:  # travels back from decoding processes
        return (DecodeError, (self.reason, self.detail))


@dataclass(frozen=True)
class DecodePlan:
    """What to take out of every video (one plan per dataset).

    ``frame_size`` is (H, W); ``resize`` = ``stretch`` (whole frame scaled to H x W)
    or ``crop`` (aspect kept: scale to cover H x W, then centre crop).
    ``frames_per_segment = 0`` skips the video stream (audio-only jobs).
    """

    frames_per_segment: int = 16
    frame_size: tuple[int, int] = (240, 320)
    resize: Literal["stretch", "crop"] = "stretch"
    sample_rate: int = 16000
    hop_s: float = 1.0
    truncation_tolerance_s: float = 1.0

    @property
    def fps(self) -> float:
        return self.frames_per_segment / self.hop_s

    @property
    def samples_per_segment(self) -> int:
        return round(self.hop_s * self.sample_rate)


@dataclass
class DecodedVideo:
    """frames: (n_segments * R, H, W, 3) uint8; audio: (n_segments * hop * sr,) float32."""

    n_segments: int
    duration_s: float
    frames: np.ndarray
    audio: np.ndarray
    has_audio: bool
    has_video: bool
    source: str  # e.g. "h264 320x240 29.97fps; aac 44100Hz 2ch"


def pick_frames(stored_per_segment: int, wanted_per_segment: int) -> np.ndarray:
    """Indices (within a segment's stored frames) of a recipe's ``wanted_per_segment`` frames.

    Start-aligned like the stored grid, so 8 of 16 are the even ones (what
    ``ffmpeg -r 8`` gives for LLP); a rate that does not divide takes the nearest.
    """
    if not 0 < wanted_per_segment <= stored_per_segment:
        raise ValueError(
            f"a recipe wants {wanted_per_segment} frames per segment but decoding stored "
            f"{stored_per_segment}: raise decode.frames_per_segment"
        )
    idx = np.floor(np.arange(wanted_per_segment) * stored_per_segment / wanted_per_segment + 1e-9)
    return idx.astype(np.int64)


def _to_rgb(frame: av.VideoFrame, plan: DecodePlan) -> np.ndarray:
    h, w = plan.frame_size
    if plan.resize == "stretch":
        return frame.to_ndarray(width=w, height=h, format="rgb24")
    scale = max(h / frame.height, w / frame.width)
    sh, sw = max(h, round(frame.height * scale)), max(w, round(frame.width * scale))
    img = frame.to_ndarray(width=sw, height=sh, format="rgb24")
    top, left = (sh - h) // 2, (sw - w) // 2
    return img[top : top + h, left : left + w]


class _FrameSampler:
    """Streams source frames in; keeps the nearest one for each grid time ``k / fps``."""

    def __init__(self, plan: DecodePlan):
        self.plan = plan
        self.picked: list[np.ndarray] = []  # picked[k] = RGB frame for grid time k / fps
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.prev_rgb: np.ndarray | None = None
        self.last_time = 0.0
        self.step = 0.0  # typical source frame duration

    def _emit_prev_until(self, limit: float) -> None:
        assert self.prev is not None
        while len(self.picked) / self.plan.fps <= limit:
            if self.prev_rgb is None:
                self.prev_rgb = _to_rgb(self.prev[1], self.plan)
            self.picked.append(self.prev_rgb)

    def push(self, t: float, frame: av.VideoFrame) -> None:
        """``t``: seconds since the first video frame."""
        if self.prev is not None:
            self.step = t - self.prev[0] if t > self.prev[0] else self.step
            self._emit_prev_until((self.prev[0] + t) / 2)  # nearest: midpoint decides
        self.prev, self.prev_rgb = (t, frame), None
        self.last_time = t

    def finish(self, n_frames: int) -> np.ndarray:
        if self.prev is not None:
            self._emit_prev_until((n_frames + 1) / self.plan.fps)
        return np.stack(self.picked[:n_frames]) if self.picked else np.zeros((0, *self.plan.frame_size, 3), np.uint8)


def _describe(video: av.video.stream.VideoStream | None, audio: av.audio.stream.AudioStream | None) -> str:
    parts = []
    if video is not None:
        rate = float(video.average_rate) if video.average_rate else 0.0
        parts.append(f"{video.codec_context.name} {video.codec_context.width}x{video.codec_context.height} {rate:.3g}fps")
    if audio is not None:
        parts.append(f"{audio.codec_context.name} {audio.codec_context.sample_rate}Hz {audio.codec_context.channels}ch")
    return "; ".join(parts) or "no streams"


def _declared_duration(container: av.container.InputContainer) -> float | None:
    return container.duration / av.time_base if container.duration else None


def decode_video(path: str | Path, plan: DecodePlan) -> DecodedVideo:
    """Decode ``path`` once into grid frames and 16 kHz mono audio (see the module doc)."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DecodeError("cannot open", f"{path}: {e}") from e
    with container:
        vstream = container.streams.video[0] if container.streams.video and plan.frames_per_segment else None
        astream = container.streams.audio[0] if container.streams.audio else None
        if vstream is None and astream is None:
            raise DecodeError("no streams", f"{path}: neither a video nor an audio stream")
        source = _describe(vstream, astream)
        if vstream is not None:
            vstream.thread_type = "SLICE"  # per-frame threads do not pay for small clips (spec §3.1)
        sampler = _FrameSampler(plan)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=plan.sample_rate)
        chunks: list[np.ndarray] = []
        first = {"video": None, "audio": None}
        try:
            for packet in container.demux(*(s for s in (vstream, astream) if s is not None)):
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    if isinstance(frame, av.VideoFrame):
                        first["video"] = frame.time if first["video"] is None else first["video"]
                        sampler.push(frame.time - first["video"], frame)
                    else:
                        first["audio"] = frame.time if first["audio"] is None else first["audio"]
                        for out in resampler.resample(frame):
                            chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as e:
            raise DecodeError("corrupt", f"{path}: {e}") from e
        declared = _declared_duration(container)
    if first["video"] is None and first["audio"] is None:
        raise DecodeError("zero-length", f"{path}: no video frame or audio sample decoded")
    t0 = first["video"] if first["video"] is not None else first["audio"]
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if first["audio"] is not None:
        shift = round((first["audio"] - t0) * plan.sample_rate)
        audio = np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
    video_end = sampler.last_time + (sampler.step or 1 / plan.fps) if first["video"] is not None else 0.0
    duration = max(video_end, audio.size / plan.sample_rate)
    if declared is not None and declared - duration > plan.truncation_tolerance_s:
        raise DecodeError("truncated", f"{path}: decoded {duration:.2f} s of {declared:.2f} s declared")
    n_seg = segment_count(duration, plan.hop_s)
    n_frames = n_seg * plan.frames_per_segment
    if first["video"] is not None:
        frames = sampler.finish(n_frames)
    else:
        frames = np.zeros((n_frames, *plan.frame_size, 3), np.uint8)
    n_samples = n_seg * plan.samples_per_segment
    audio = np.pad(audio[:n_samples], (0, max(0, n_samples - audio.size)))
    has_video = first["video"] is not None
    return DecodedVideo(n_seg, duration, frames, audio, astream is not None and first["audio"] is not None, has_video, source)


# --- decoded shards -----------------------------------------------------------------
# results/decode/<dataset>/shard<k>.zarr holds the decoded videos of one shard:
#   frames (N, T_max * R, H, W, 3) uint8, one segment per chunk (padding is never stored)
#   audio (N, T_max * sps) float32; video_id, n_segments, duration_s, has_audio, has_video (N,)
# and shard<k>.tsv one status row per video (ok / no_audio / no_video / failed + reason).

STATUS_COLUMNS = ["video_id", "path", "status", "reason", "n_segments", "duration_s", "source"]


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video: crc32 of its id (not ``hash()``, which is salted per process)."""
    return zlib.crc32(video_id.encode("utf-8")) % n_shards


def _decode_job(job: tuple[str, str, DecodePlan]) -> tuple[str, DecodedVideo | DecodeError]:
    video_id, path, plan = job
    if not Path(path).is_file():
        return video_id, DecodeError("missing", f"{path}: no such file")
    try:
        return video_id, decode_video(path, plan)
    except DecodeError as e:
        return video_id, e


def _status(d: DecodedVideo) -> str:
    return "no_video" if not d.has_video else "ok" if d.has_audio else "no_audio"


class _ShardWriter:
    """Single writer of one decoded shard (rows in order; T grows by resizing)."""

    def __init__(self, root: zarr.Group, n: int, t_max: int, plan: DecodePlan):
        self.plan, self.n, self.rows = plan, n, 0
        r, (h, w), sps = plan.frames_per_segment, plan.frame_size, plan.samples_per_segment
        self.frames = root.create_array("frames", shape=(n, t_max * r, h, w, 3), dtype="uint8", chunks=(1, max(r, 1), h, w, 3), fill_value=0)
        self.audio = root.create_array("audio", shape=(n, t_max * sps), dtype="float32", chunks=(1, 10 * sps), fill_value=0)
        self.t_max = t_max
        self.index: dict[str, list] = {k: [] for k in ("video_id", "n_segments", "duration_s", "has_audio", "has_video")}
        self.root = root

    def add(self, video_id: str, d: DecodedVideo) -> None:
        if d.n_segments > self.t_max:
            self.t_max = d.n_segments
            self.frames.resize((self.n, self.t_max * self.plan.frames_per_segment, *self.frames.shape[2:]))
            self.audio.resize((self.n, self.t_max * self.plan.samples_per_segment))
        if d.has_video and d.frames.size:
            self.frames[self.rows, : d.frames.shape[0]] = d.frames
        if d.has_audio:
            self.audio[self.rows, : d.audio.size] = d.audio
        for k, v in (("video_id", video_id), ("n_segments", d.n_segments), ("duration_s", d.duration_s), ("has_audio", d.has_audio), ("has_video", d.has_video)):
            self.index[k].append(v)
        self.rows += 1

    def close(self) -> None:
        self.frames.resize((self.rows, *self.frames.shape[1:]))
        self.audio.resize((self.rows, *self.audio.shape[1:]))
        width = max((len(v) for v in self.index["video_id"]), default=1)
        dtypes = {"video_id": f"<U{width}", "n_segments": "int32", "duration_s": "float32", "has_audio": "bool", "has_video": "bool"}
        for k, dt in dtypes.items():
            a = np.asarray(self.index[k], dtype=dt)
            z = self.root.create_array(k, shape=a.shape, dtype=a.dtype, chunks=(max(1, a.size),))
            if a.size:
                z[...] = a


def decode_shard(
    videos: list[tuple[str, str, int]],
    out: str | Path,
    status_tsv: str | Path,
    plan: DecodePlan,
    *,
    workers: int = 1,
    on_error: Literal["raise", "skip"] = "skip",
    attrs: dict | None = None,
) -> list[list]:
    """Decode ``videos`` ((video_id, path, expected n_segments), sorted) into a shard store.

    ``workers`` processes decode in parallel (one thread each: processes x 1 thread is
    the fastest layout on few cores, spec §3.1); this process writes.  Both outputs
    appear only when complete.  Returns the status rows.
    """
    t_max = max((n for _, _, n in videos), default=1)
    jobs = [(v, p, plan) for v, p, _ in videos]
    rows: list[list] = []
    with atomic_path(out, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        root.attrs.update({"plan": dataclasses.asdict(plan), "padding": PADDING, **(attrs or {})})
        writer = _ShardWriter(root, len(jobs), max(t_max, 1), plan)
        pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
        results = pool.map(_decode_job, jobs) if pool else map(_decode_job, jobs)
        try:
            for (video_id, path, _), (_, res) in zip(jobs, tqdm(results, total=len(jobs), unit="video", desc="decode", mininterval=2.0), strict=True):
                if isinstance(res, DecodeError):
                    if on_error == "raise":
                        raise res
                    log.warning("video %s failed: %s", video_id, res)
                    rows.append([video_id, path, "failed", str(res), None, None, None])
                    continue
                writer.add(video_id, res)
                rows.append([video_id, path, _status(res), "" if res.has_audio and res.has_video else _missing(res), res.n_segments, res.duration_s, res.source])
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        writer.close()
    write_tsv(status_tsv, STATUS_COLUMNS, rows)
    return rows


def _missing(d: DecodedVideo) -> str:
    return "no video stream" if not d.has_video else "no audio stream"


class DecodedShard:
    """Read side of a decoded shard."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r")
        self.plan = DecodePlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.group.attrs["plan"].items()})
        self.video_ids = [str(v) for v in self.group["video_id"][:]]
        self.n_segments = self.group["n_segments"][:].astype(np.int64)
        self.has_audio = self.group["has_audio"][:]
        self.has_video = self.group["has_video"][:]

    def __len__(self) -> int:
        return len(self.video_ids)

    def frames(self, row: int) -> np.ndarray:
        """(n_segments, R, H, W, 3) uint8 of video ``row``."""
        n, r = int(self.n_segments[row]), self.plan.frames_per_segment
        return self.group["frames"][row, : n * r].reshape(n, r, *self.group["frames"].shape[2:])

    def audio(self, row: int) -> np.ndarray:
        """(n_segments * sps,) float32 of video ``row``."""
        return self.group["audio"][row, : int(self.n_segments[row]) * self.plan.samples_per_segment]
