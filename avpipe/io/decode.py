"""Decode a video once, in memory: the frames every recipe needs and 16 kHz mono audio.

One pass over the container demuxes video and audio together (seeking does not pay
for short clips: every sample would decode back from a keyframe).  Nothing is written
to disk: extraction workers (``avpipe/features/pipeline.py``) call ``decode_video`` and
hand the result to the models.  What comes out serves every recipe of a job:

* frames: for each visual recipe (a ``VisualNeed``), ``frames_per_segment`` frames
  spread uniformly over each segment's window of the dataset's ``Grid``; frame
  ``k`` of segment ``t`` is the source frame nearest to ``t * hop + k * window / F``
  seconds (nearest by presentation time, so variable frame rates are handled).
  Each picked source frame is converted once per *conversion*: ``native`` (RGB at
  the source size, resized later on the GPU) or a recipe's input geometry
  (``direct`` resize to S x S, or ``shorter_crop``: shorter side to floor(S / 0.875),
  centre crop S x S), done by swscale while the frame is still YUV.  Recipes with the
  same conversion share the converted frames (``pools``; ``index`` maps each
  recipe's (T, F) frames into its pool).
* audio: float32 mono at ``sample_rate`` via PyAV's ``AudioResampler`` (libswresample;
  ~7x faster than resampy ``kaiser_best``, checked against librosa/soxr in the tests).

Time zero is the first video frame (the first audio sample for audio-only files);
audio that starts later is delayed by zeros, audio before it is dropped.  A video has
``n_segments = segment_count(duration, hop)`` segments; content past the end is padded:
frames by repeating the last decoded frame, audio with zeros (``PADDING`` is recorded
in every store).

Problems are ``DecodeError`` with a short reason (``missing``, ``cannot open``,
``no streams``, ``corrupt``, ``truncated``, ``zero-length``); a missing audio stream is
not an error (``has_audio = False``), nor is a missing video stream (``has_video = False``).
"""

from __future__ import annotations

import heapq
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avpipe.datasets.manifest import segment_count
from avpipe.io.grid import Grid, crop_geometry

log = logging.getLogger(__name__)

PADDING = (
    "frames: repeat last decoded frame; audio: zeros; beyond n_segments: fill 0 and mask False"
)
STATUS_COLUMNS = ["video_id", "path", "status", "reason", "n_segments", "duration_s", "source"]
NATIVE = "native"


class DecodeError(RuntimeError):
    """A video could not be decoded; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple:  # travels back from decoding processes
        return (DecodeError, (self.reason, self.detail))


@dataclass(frozen=True)
class VisualNeed:
    """The frames one visual recipe takes: ``frames_per_segment`` per window, converted by ``key``.

    ``key`` is ``native`` or ``"<resize>:<size>"`` (``direct:224``, ``shorter_crop:224``).
    """

    name: str
    frames_per_segment: int
    key: str = NATIVE


def conversion_key(resize: str, size: int | None) -> str:
    return NATIVE if size is None else f"{resize}:{size}"


def convert(
    frame: av.VideoFrame, key: str, reformatter: VideoReformatter | None = None
) -> np.ndarray:
    """One source frame as uint8 RGB: at its own size (``native``) or a recipe's geometry.

    Pass the same ``reformatter`` for every frame of a conversion: it keeps its swscale
    context instead of building one per frame (0.31 against 0.44 ms per 224 x 224 frame).
    """
    reformatter = reformatter or VideoReformatter()
    if key == NATIVE:
        return reformatter.reformat(frame, format="rgb24").to_ndarray()
    resize, size = key.rsplit(":", 1)
    th, tw, top, left = crop_geometry(frame.height, frame.width, int(size), resize)
    img = reformatter.reformat(frame, width=tw, height=th, format="rgb24").to_ndarray()
    return np.ascontiguousarray(img[top : top + int(size), left : left + int(size)])


@dataclass
class DecodedVideo:
    """One decoded video: its frames per conversion, each recipe's frame index, and audio.

    ``pools[key]``: (n, h, w, 3) uint8 distinct source frames; ``index[recipe]``: (T, F)
    int32 rows of that recipe's pool (``pool[index]`` is (T, F, h, w, 3)).
    ``audio``: (n_segments * hop * sample_rate + sample_rate,) float32, zero-padded
    past the end so every window of the last segments can be cut.
    """

    n_segments: int
    duration_s: float
    audio: np.ndarray
    has_audio: bool
    has_video: bool
    source: str  # e.g. "h264 320x240 29.97fps; aac 44100Hz 2ch"
    pools: dict[str, np.ndarray] = field(default_factory=dict)
    index: dict[str, np.ndarray] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # recipe -> conversion key

    def frames(self, recipe: str) -> np.ndarray:
        """(T, F, h, w, 3) uint8 frames of ``recipe``."""
        return self.pools[self.keys[recipe]][self.index[recipe]]

    @property
    def status(self) -> str:
        return "no_video" if not self.has_video else "ok" if self.has_audio else "no_audio"

    @property
    def reason(self) -> str:
        if self.has_audio and self.has_video:
            return ""
        return "no video stream" if not self.has_video else "no audio stream"


class _FrameSampler:
    """Streams source frames in; picks the nearest one for every frame time a recipe needs.

    Times come from the grid, segment by segment (``Grid.frame_times``), and are
    generated lazily as the stream advances, so the video's length need not be known
    in advance.  Each source frame is converted at most once per conversion (``key``).
    """

    def __init__(self, grid: Grid, needs: tuple[VisualNeed, ...]):
        self.grid, self.needs = grid, needs
        self.keys = sorted({n.key for n in needs})
        self.pools: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        self.reformatters = {k: VideoReformatter() for k in self.keys}
        # per need: segment -> pool indices of its F frames
        self.picked: list[dict[int, list[int]]] = [{} for _ in needs]
        self.heap: list[tuple[float, int, int, int]] = []  # (time, need, segment, slot)
        self.next_segment = 0
        self.prev: av.VideoFrame | None = None
        self.prev_time = 0.0
        self.prev_ids: dict[str, int] = {}
        self.last_time = 0.0
        self.step = 0.0  # typical source frame duration

    def _generate(self, until: float) -> None:
        while self.next_segment * self.grid.hop_s <= until:
            t = self.next_segment
            for i, need in enumerate(self.needs):
                self.picked[i][t] = [-1] * need.frames_per_segment
                for slot, time in enumerate(self.grid.frame_times(t, need.frames_per_segment)):
                    heapq.heappush(self.heap, (float(time), i, t, slot))
            self.next_segment += 1

    def _frame_id(self, key: str) -> int:
        if key not in self.prev_ids:
            assert self.prev is not None
            self.pools[key].append(convert(self.prev, key, self.reformatters[key]))
            self.prev_ids[key] = len(self.pools[key]) - 1
        return self.prev_ids[key]

    def _assign_until(self, limit: float) -> None:
        self._generate(limit)
        while self.heap and self.heap[0][0] <= limit:
            _, i, t, slot = heapq.heappop(self.heap)
            self.picked[i][t][slot] = self._frame_id(self.needs[i].key)

    def push(self, t: float, frame: av.VideoFrame) -> None:
        """``t``: seconds since the first video frame."""
        if self.prev is not None:
            self.step = t - self.prev_time if t > self.prev_time else self.step
            self._assign_until((self.prev_time + t) / 2)  # nearest: the midpoint decides
        self.prev, self.prev_time, self.prev_ids = frame, t, {}
        self.last_time = t

    def finish(self, n_segments: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(pools, index): per conversion key (n, h, w, 3) uint8; per need (T, F) into its pool."""
        if self.prev is not None:  # times past the last frame repeat it (PADDING)
            self._generate((n_segments - 1) * self.grid.hop_s)
            while self.heap:
                _, i, t, slot = heapq.heappop(self.heap)
                if t < n_segments:
                    self.picked[i][t][slot] = self._frame_id(self.needs[i].key)
        pools = {
            k: np.stack(v) if v else np.zeros((0, 0, 0, 3), np.uint8) for k, v in self.pools.items()
        }
        index = {}
        for i, need in enumerate(self.needs):
            rows = [self.picked[i].get(t, [0] * need.frames_per_segment) for t in range(n_segments)]
            index[need.name] = np.asarray(rows, dtype=np.int32).reshape(n_segments, -1)
        return pools, index


def _describe(
    video: av.video.stream.VideoStream | None, audio: av.audio.stream.AudioStream | None
) -> str:
    parts = []
    if video is not None:
        rate = float(video.average_rate) if video.average_rate else 0.0
        parts.append(
            f"{video.codec_context.name} {video.codec_context.width}x"
            f"{video.codec_context.height} {rate:.3g}fps"
        )
    if audio is not None:
        parts.append(
            f"{audio.codec_context.name} {audio.codec_context.sample_rate}Hz "
            f"{audio.codec_context.channels}ch"
        )
    return "; ".join(parts) or "no streams"


def _declared_duration(container: av.container.InputContainer) -> float | None:
    return container.duration / av.time_base if container.duration else None


def decode_video(
    path: str | Path,
    grid: Grid | None = None,
    needs: tuple[VisualNeed, ...] = (),
    *,
    sample_rate: int = 16000,
    truncation_tolerance_s: float = 1.0,
    threads: int = 0,
) -> DecodedVideo:
    """Decode ``path`` once into the frames of ``needs`` and mono audio (see the module doc).

    The video stream is always decoded (its length decides ``n_segments``); frames are
    converted only for ``needs``.  ``threads``: the decoder's slice threads (0 = FFmpeg's
    choice; 1 in worker processes, where processes give the parallelism).
    """
    grid = grid or Grid()
    if not Path(path).is_file():
        raise DecodeError("missing", f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DecodeError("cannot open", f"{path}: {e}") from e
    with container:
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        if vstream is None and astream is None:
            raise DecodeError("no streams", f"{path}: neither a video nor an audio stream")
        source = _describe(vstream, astream)
        if vstream is not None:
            vstream.thread_type = "SLICE"  # per-frame threads do not pay for small clips
            vstream.thread_count = threads
        sampler = _FrameSampler(grid, needs)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first: dict[str, float | None] = {"video": None, "audio": None}
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
    audio = (
        np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    )
    if first["audio"] is not None:
        shift = round((first["audio"] - t0) * sample_rate)
        audio = (
            np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
        )
    has_video = first["video"] is not None
    video_end = sampler.last_time + (sampler.step or 1 / 25) if has_video else 0.0
    duration = max(video_end, audio.size / sample_rate)
    if declared is not None and declared - duration > truncation_tolerance_s:
        raise DecodeError(
            "truncated", f"{path}: decoded {duration:.2f} s of {declared:.2f} s declared"
        )
    n_seg = segment_count(duration, grid.hop_s)
    n_samples = round(n_seg * grid.hop_s * sample_rate) + sample_rate
    audio = np.pad(audio[:n_samples], (0, max(0, n_samples - audio.size)))
    pools, index = sampler.finish(n_seg) if has_video else ({}, {})
    return DecodedVideo(
        n_seg,
        duration,
        audio,
        astream is not None and first["audio"] is not None,
        has_video,
        source,
        pools,
        index,
        {n.name: n.key for n in needs},
    )


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video: crc32 of its id (not ``hash()``, which is salted per process)."""
    return zlib.crc32(video_id.encode("utf-8")) % n_shards
