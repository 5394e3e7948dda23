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
  ~7x faster than resampy ``kaiser_best``, checked against librosa/soxr in the tests),
  downmixed by ``DOWNMIX``: the mean of the channels but LFE, so that the level of a
  sound does not depend on the layout it was stored in (recorded in every store).

Time zero is the first video frame (the first audio sample for audio-only files);
audio that starts later is delayed by zeros, audio before it is dropped.  The duration
is the end of the longest stream: the video's last frame plus its duration (the
container's, else the last gap between frames: at a variable frame rate that gap can be
far longer than the frame), the audio's last sample, less the encoder's padding (AAC
codes whole 1024-sample frames: an 8-kHz 10-s clip decodes to 10.112 s; samples past
the stream's declared end that fit in its last frame are dropped).  A video has
``n_segments = segment_count(duration, hop, window)`` segments (none for a clip shorter
than one overlapping window); content past the end is padded:
frames by repeating the last decoded frame, audio with zeros (``PADDING`` is recorded in
every store).

A decode that stops early keeps what it decoded, with status ``partial``: a decoder
error mid-stream (``corrupt: decoding stopped at X of Y s: <error>``), or a file that
ends, or fails on a packet cut off by its end, before its declared duration less
``truncation_tolerance_s`` (``truncated: decoded X of Y s``).  Its duration is where
the streams still decoding stopped (the shortest of them), so ``n_segments`` counts
decoded segments only, and the store's ``mask`` is False past them.

Problems that leave nothing are ``DecodeError`` with a short reason (``missing``,
``cannot open``, ``no streams``, ``corrupt``, ``truncated``, ``zero-length``); a missing
audio stream is not an error (``has_audio = False``), nor is a missing video stream
(``has_video = False``).
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
DOWNMIX = "mean of the channels but LFE (a signal identical in every channel keeps its level)"
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
    problem: str = ""  # why decoding stopped early ("truncated: ...", "corrupt: ...")

    def frames(self, recipe: str) -> np.ndarray:
        """(T, F, h, w, 3) uint8 frames of ``recipe``."""
        return self.pools[self.keys[recipe]][self.index[recipe]]

    @property
    def status(self) -> str:
        if self.problem:
            return "partial"
        return "no_video" if not self.has_video else "ok" if self.has_audio else "no_audio"

    @property
    def reason(self) -> str:
        notes = [self.problem] if self.problem else []
        if not (self.has_audio and self.has_video):
            notes.append("no video stream" if not self.has_video else "no audio stream")
        return "; ".join(notes)


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
        self.step = 0.0  # the last gap between source frames
        self.last_duration = 0.0  # the last frame's duration by the container (0: unknown)

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
        known = frame.duration and frame.time_base
        self.last_duration = float(frame.duration * frame.time_base) if known else 0.0

    @property
    def end(self) -> float:
        """Seconds since the first frame where the last one ends: its own duration, else
        the last gap (a variable frame rate's last gap can be far longer than its frame)."""
        return self.last_time + (self.last_duration or self.step or 1 / 25)

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
            index[need.name] = np.asarray(rows, dtype=np.int32).reshape(
                n_segments, need.frames_per_segment
            )
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


def _stream_end(stream: av.stream.Stream | None) -> float | None:
    """Where ``stream`` ends by the file's index (seconds), if the file says."""
    if stream is None or not stream.duration or not stream.time_base:
        return None
    return float((stream.duration + (stream.start_time or 0)) * stream.time_base)


def _file_end(container: av.container.InputContainer) -> float | None:
    if not container.duration:
        return None
    return (container.duration + (container.start_time or 0)) / av.time_base


class _Audio:
    """Source audio frames in -> float32 mono at ``rate``, downmixed by ``DOWNMIX``.

    libswresample converts each frame to planar float at ``rate`` in the source's own
    layout, and the channels are averaged here: its default matrix to mono scales by
    layout (1/sqrt(2) per stereo channel, centre-weighted 5.1), so one tone measured
    RMS 0.22, 0.32 and 0.76 from mono, stereo and 5.1.  LFE channels are left out of
    the mean (band-limited below ~120 Hz; AAC encoders low-pass them).
    """

    def __init__(self, rate: int):
        self.rate = rate
        self.first: float | None = None
        self.chunks: list[np.ndarray] = []
        self.last_frame = 0  # output samples of the last source frame (bounds its padding)
        self._resampler: av.AudioResampler | None = None
        self._setup: tuple | None = None
        self._keep: list[int] = [0]  # the channels averaged (all but LFE)

    def push(self, frame: av.AudioFrame) -> None:
        if self.first is None:
            self.first = frame.time
        setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if setup != self._setup:  # the layout or rate changed mid-stream: a new resampler
            self.flush()
            self._resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=self.rate)
            self._setup = setup
            names = [c.name for c in frame.layout.channels]
            self._keep = [i for i, c in enumerate(names) if c != "LFE"] or list(range(len(names)))
        self._add(self._resampler.resample(frame))
        self.last_frame = round(frame.samples * self.rate / frame.sample_rate)

    def flush(self) -> None:
        if self._resampler is not None:
            self._add(self._resampler.resample(None))

    def _add(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            x = out.to_ndarray()  # (channels, samples)
            self.chunks.append(x[0] if len(x) == 1 else x[self._keep].mean(0, dtype=np.float32))

    def samples(self, t0: float, end: float | None) -> np.ndarray:
        """Mono audio from ``t0`` (seconds): a later start is delayed by zeros, an earlier
        one cut; samples past ``end`` (seconds since ``t0``) are dropped when they fit in
        the last frame (the encoder's padding: AAC codes whole 1024-sample frames)."""
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        if self.first is None:
            return audio
        shift = round((self.first - t0) * self.rate)
        audio = (
            np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
        )
        if end is not None:
            excess = audio.size - round(end * self.rate)
            if 0 < excess <= self.last_frame:
                audio = audio[:-excess]
        return audio


@dataclass
class _Stop:
    """What stopped decoding before the end of the file."""

    error: Exception
    stream: str  # "video" / "audio" / "" (the demuxer)
    cut: bool  # the failing packet reaches the end of the file: the file is truncated

    def describe(self) -> str:
        where = f"{self.stream} packet" if self.stream else "demuxer"
        return " ".join(f"{where}: {self.error}".split())  # one line (status.tsv)


def _decode_all(
    container: av.container.InputContainer,
    streams: list[av.stream.Stream],
    sampler: _FrameSampler,
    audio: _Audio,
    path: str | Path,
) -> tuple[float | None, _Stop | None]:
    """Decode every packet; (time of the first video frame, what stopped decoding early)."""
    first_video: float | None = None
    packet = None
    try:
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if frame.time is None:
                    continue
                if isinstance(frame, av.VideoFrame):
                    first_video = frame.time if first_video is None else first_video
                    sampler.push(frame.time - first_video, frame)
                else:
                    audio.push(frame)
        audio.flush()
    except (av.FFmpegError, ValueError) as e:
        stream = packet.stream.type if packet is not None and packet.stream else ""
        size = Path(path).stat().st_size
        cut = packet is not None and packet.pos >= 0 and packet.pos + packet.size >= size
        return first_video, _Stop(e, stream, cut)
    return first_video, None


def _problem(
    stop: _Stop | None,
    ends: dict[str, tuple[float, float | None]],
    declared: float | None,
    tol: float,
) -> tuple[float, str]:
    """(duration, problem): ``ends`` holds per decoded stream (decoded end, declared end).

    A complete decode lasts as long as its longest stream.  A decode that stopped early
    (an error, or more than ``tol`` s short of the declared duration) keeps what every
    stream that had not yet reached its declared end decoded: the shortest of these.
    """
    longest = max(end for end, _ in ends.values())
    if stop is None and (declared is None or declared - longest <= tol):
        return longest, ""
    open_ends = [end for end, want in ends.values() if want is None or end < want - tol]
    duration = min(open_ends) if open_ends else longest
    of = f"{declared:.2f}" if declared is not None else "?"
    if stop is None or stop.cut:
        why = f" ({stop.describe()})" if stop is not None else ""
        return duration, f"truncated: decoded {duration:.2f} of {of} s{why}"
    return duration, f"corrupt: decoding stopped at {duration:.2f} of {of} s: {stop.describe()}"


def decode_video(
    path: str | Path,
    grid: Grid | None = None,
    needs: tuple[VisualNeed, ...] = (),
    *,
    sample_rate: int = 16000,
    truncation_tolerance_s: float = 1.0,
    threads: int = 0,
    n_segments: int | None = None,
) -> DecodedVideo:
    """Decode ``path`` once into the frames of ``needs`` and mono audio (see the module doc).

    The video stream is always decoded (its length decides ``n_segments``, unless the
    dataset's labels fix it: ``n_segments`` given, e.g. VGGSound-AVEL100k's 10 labels,
    content past the end padded as ``PADDING``); frames are converted only for ``needs``.
    ``threads``: the decoder's slice threads (0 = FFmpeg's choice; 1 in worker
    processes, where processes give the parallelism).
    """
    grid = grid or Grid()
    if not Path(path).is_file():
        raise DecodeError("missing", f"{path}: no such file")
    if Path(path).stat().st_size == 0:
        raise DecodeError("zero-length", f"{path}: empty file (0 bytes)")
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
        sampler, audio = _FrameSampler(grid, needs), _Audio(sample_rate)
        streams = [s for s in (vstream, astream) if s is not None]
        first_video, stop = _decode_all(container, streams, sampler, audio, path)
        declared = _declared_duration(container)
        own = {"video": _stream_end(vstream), "audio": _stream_end(astream)}
        file_end = _file_end(container)
    if first_video is None and audio.first is None:
        if stop is not None:
            reason = "truncated" if stop.cut else "corrupt"
            raise DecodeError(reason, f"{path}: nothing decoded ({stop.describe()})")
        raise DecodeError("zero-length", f"{path}: no video frame or audio sample decoded")
    t0 = first_video if first_video is not None else audio.first
    has_video, has_audio = first_video is not None, audio.first is not None
    # declared ends, seconds since t0: each stream's own, else the file's
    declared_end = {k: None if t is None else t - t0 for k, t in (own | {"file": file_end}).items()}
    for k in ("video", "audio"):
        declared_end[k] = declared_end[k] if declared_end[k] is not None else declared_end["file"]
    ends = {}  # stream -> (decoded end, declared end)
    if has_video:
        ends["video"] = (sampler.end, declared_end["video"])
    # the audio's padding runs past its own end, else past the video's end (Matroska
    # declares no stream durations, and counts the padding in the file's)
    padded_from = own["audio"] is None and has_video
    samples = audio.samples(t0, ends["video"][0] if padded_from else declared_end["audio"])
    if has_audio:
        ends["audio"] = (samples.size / sample_rate, declared_end["audio"])
    duration, problem = _problem(stop, ends, declared, truncation_tolerance_s)
    if problem:
        log.warning("%s: %s", path, problem)
    n_seg = segment_count(duration, grid.hop_s, grid.window_s) if n_segments is None else n_segments
    n_samples = round(n_seg * grid.hop_s * sample_rate) + sample_rate
    samples = np.pad(samples[:n_samples], (0, max(0, n_samples - samples.size)))
    pools, index = sampler.finish(n_seg) if has_video else ({}, {})
    keys = {n.name: n.key for n in needs}
    return DecodedVideo(
        n_seg, duration, samples, has_audio, has_video, source, pools, index, keys, problem
    )


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video: crc32 of its id (not ``hash()``, which is salted per process)."""
    return zlib.crc32(video_id.encode("utf-8")) % n_shards
