"""avpipe's one manifest format, shared by every dataset adapter.

A manifest is a folder (``results/manifest/<dataset>/``) with

``samples.tsv``  one row per labelled sample:
    ``sample_id  video_id  split  path  duration_s  n_segments  present  row``
    ``sample_id`` is unique; ``video_id`` is the media key (features are stored
    per video).  They differ only where one video carries several samples: AVE has
    4,143 annotation rows but 4,097 videos, so its second row of a video is
    ``<video_id>#2``.  ``row`` is the 0-based line in the source annotation file
    (empty where that means nothing).  ``split`` is train, val, test or unlabeled.
``events.tsv``   one row per labelled event:
    ``sample_id  label  modality  onset_s  offset_s``
    ``modality`` is audio, visual, audio-visual or unspecified; onset/offset are
    seconds, offset exclusive.  Empty onset/offset = a video-level (weak) label.
``classes.txt``  class names, one per line; the line number is the class index.
``meta.json``    dataset name, format, segment grid (hop and window, seconds),
    source files with their SHA-256, eval-file version, anomalies found on ingest.

The segment grid is data, not a constant: segment ``t`` covers
``[t * hop, t * hop + win)`` seconds and a sample has ``n_segments`` of them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avpipe.utils import atomic

MODALITIES = ("audio", "visual", "audio-visual", "unspecified")
SPLITS = ("train", "val", "test", "unlabeled")

SAMPLE_COLUMNS = [
    "sample_id",
    "video_id",
    "split",
    "path",
    "duration_s",
    "n_segments",
    "present",
    "row",
]
EVENT_COLUMNS = ["sample_id", "label", "modality", "onset_s", "offset_s"]


class ManifestError(ValueError):
    """A manifest file is malformed; the message names the file and line."""


def segment_count(
    duration: float, hop: float = 1.0, window: float | None = None, tolerance: float = 0.1
) -> int:
    """Number of real segments on the grid for a clip of ``duration`` seconds.

    Two kinds of grid (``window`` defaults to ``hop``):

    * segments that tile the timeline (``window <= hop``: the 1-s grid of AVE, LLP and
      VGGSound-AVEL100k): a trailing partial segment counts when it holds more than
      ``tolerance`` of a hop, and every clip has at least one (10.03 s -> 10,
      9.6 s -> 10, 0.2 s -> 1);
    * overlapping windows (``window > hop``: UnAV-100's 0.96-s windows every 0.32 s):
      only windows that end inside the clip are real, ``floor((duration - window) / hop)
      + 1``, and a clip shorter than one window has none (10 s -> 29, 60 s -> 185,
      0.2 s -> 0).  This is the reference features' T: video_features computes an I3D
      stack or a VGGish example only from a full window (ttgeng233/UnAV, UnAV#7).
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    window = hop if window is None else window
    if window <= hop:
        return max(1, math.ceil(duration / hop - tolerance))
    if duration < window - 1e-6:
        return 0
    # 1e-6: a duration on the grid (0.96 + 0.32 k) must not lose its last window to rounding
    return math.floor((duration - window) / hop + 1e-6) + 1


@dataclass(frozen=True)
class Sample:
    sample_id: str
    video_id: str
    split: str
    path: str
    duration: float
    n_segments: int
    present: bool = True
    row: int | None = None


@dataclass(frozen=True)
class Event:
    sample_id: str
    label: str
    modality: str
    onset: float | None = None
    offset: float | None = None

    @property
    def is_weak(self) -> bool:
        return self.onset is None


@dataclass
class Manifest:
    dataset: str
    format: str
    classes: list[str]
    samples: list[Sample]
    events: list[Event]
    segment_hop: float = 1.0
    segment_win: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- consistency ---------------------------------------------------------------
    def validate(self) -> None:
        seen: set[str] = set()
        for s in self.samples:
            if s.sample_id in seen:
                raise ManifestError(f"{self.dataset}: duplicate sample_id {s.sample_id!r}")
            seen.add(s.sample_id)
            if s.split not in SPLITS:
                raise ManifestError(
                    f"{self.dataset}: sample {s.sample_id!r} has split {s.split!r}, "
                    f"expected one of {SPLITS}"
                )
        known = set(self.classes)
        for e in self.events:
            if e.sample_id not in seen:
                raise ManifestError(f"{self.dataset}: event for unknown sample {e.sample_id!r}")
            if e.label not in known:
                raise ManifestError(
                    f"{self.dataset}: event of {e.sample_id!r} has unknown class {e.label!r}"
                )
            if e.modality not in MODALITIES:
                raise ManifestError(
                    f"{self.dataset}: event of {e.sample_id!r} has modality {e.modality!r}"
                )

    # -- views ---------------------------------------------------------------------
    @property
    def class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def events_by_sample(self) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = defaultdict(list)
        for e in self.events:
            out[e.sample_id].append(e)
        return out

    @property
    def video_ids(self) -> list[str]:
        """Distinct media keys, in first-appearance order."""
        return list(dict.fromkeys(s.video_id for s in self.samples))

    def segment_targets(
        self,
        samples: Iterable[Sample],
        modalities: Iterable[str] = ("audio-visual",),
        n_segments: int | None = None,
        min_overlap: float = 0.5,
    ) -> np.ndarray:
        """Binary segment labels ``(N, T, C)`` float32 for events of the given modalities.

        A segment is positive for an event when their overlap is at least
        ``min(min_overlap * window, the event's largest overlap with a real segment)``
        and not zero.  For events that cover ``min_overlap`` of some window this is the
        plain rule (whole-second events on a 1-s grid: exactly ``onset <= t < offset``);
        an event shorter than that (UnAV-100 has events of 0.2 s, shorter than half a
        0.96-s window) is marked on the segments that hold most of it instead of
        vanishing while the video-level label keeps it.  Only an event that overlaps
        no real segment has none: a zero-length one, one past the last real window,
        or one of a clip shorter than a window (0 segments on UnAV-100's grid).
        ``T`` defaults to the largest ``n_segments`` among ``samples``; segments beyond
        a sample's length stay 0.
        """
        samples = list(samples)
        mods = set(modalities)
        T = n_segments or max((s.n_segments for s in samples), default=0)
        C = len(self.classes)
        out = np.zeros((len(samples), T, C), dtype=np.float32)
        by = self.events_by_sample()
        idx = self.class_index
        starts = np.arange(T) * self.segment_hop
        ends = starts + self.segment_win
        for i, s in enumerate(samples):
            for e in by.get(s.sample_id, ()):
                if e.is_weak or e.modality not in mods:
                    continue
                overlap = np.clip(np.minimum(ends, e.offset) - np.maximum(starts, e.onset), 0, None)
                overlap[s.n_segments :] = 0.0
                need = min(min_overlap * self.segment_win, float(overlap.max(initial=0.0)))
                hit = (overlap > 1e-9) & (overlap >= need - 1e-9)
                out[i, hit, idx[e.label]] = 1.0
        return out

    def video_targets(
        self, samples: Iterable[Sample], modalities: Iterable[str] | None = None
    ) -> np.ndarray:
        """Video-level multi-hot labels ``(N, C)`` float32 from weak and dense events.

        ``modalities=None`` takes every event; otherwise only those modalities
        (weak labels have modality ``unspecified``).
        """
        samples = list(samples)
        mods = None if modalities is None else set(modalities)
        out = np.zeros((len(samples), len(self.classes)), dtype=np.float32)
        by = self.events_by_sample()
        idx = self.class_index
        for i, s in enumerate(samples):
            for e in by.get(s.sample_id, ()):
                if mods is not None and e.modality not in mods:
                    continue
                if (
                    not e.is_weak
                    and e.offset is not None
                    and e.onset is not None
                    and e.offset <= e.onset
                ):
                    continue
                out[i, idx[e.label]] = 1.0
        return out

    # -- files ---------------------------------------------------------------------
    def write(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_tsv(
            folder / "samples.tsv",
            SAMPLE_COLUMNS,
            [
                [
                    s.sample_id,
                    s.video_id,
                    s.split,
                    s.path,
                    f"{s.duration:.3f}",
                    s.n_segments,
                    int(s.present),
                    s.row,
                ]
                for s in self.samples
            ],
        )
        atomic.write_tsv(
            folder / "events.tsv",
            EVENT_COLUMNS,
            [
                [e.sample_id, e.label, e.modality, _fmt_time(e.onset), _fmt_time(e.offset)]
                for e in self.events
            ],
        )
        atomic.write_text(folder / "classes.txt", "".join(f"{c}\n" for c in self.classes))
        meta = dict(self.meta)
        meta.update(
            dataset=self.dataset,
            format=self.format,
            segment_hop_s=self.segment_hop,
            segment_win_s=self.segment_win,
            n_samples=len(self.samples),
            n_videos=len(self.video_ids),
            n_events=len(self.events),
        )
        atomic.write_json(folder / "meta.json", meta)

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        classes = [ln for ln in (folder / "classes.txt").read_text().splitlines() if ln]
        samples = [
            Sample(
                sample_id=r["sample_id"],
                video_id=r["video_id"],
                split=r["split"],
                path=r["path"],
                duration=float(r["duration_s"]),
                n_segments=int(r["n_segments"]),
                present=r["present"] == "1",
                row=int(r["row"]) if r["row"] else None,
            )
            for r in _read_tsv(folder / "samples.tsv", SAMPLE_COLUMNS)
        ]
        events = [
            Event(
                sample_id=r["sample_id"],
                label=r["label"],
                modality=r["modality"],
                onset=float(r["onset_s"]) if r["onset_s"] else None,
                offset=float(r["offset_s"]) if r["offset_s"] else None,
            )
            for r in _read_tsv(folder / "events.tsv", EVENT_COLUMNS)
        ]
        return cls(
            dataset=meta.pop("dataset"),
            format=meta.pop("format"),
            classes=classes,
            samples=samples,
            events=events,
            segment_hop=float(meta.pop("segment_hop_s")),
            segment_win=float(meta.pop("segment_win_s")),
            meta={k: v for k, v in meta.items() if k not in ("n_samples", "n_videos", "n_events")},
        )

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)


def _fmt_time(t: float | None) -> str:
    return "" if t is None else f"{t:.3f}".rstrip("0").rstrip(".")


def _read_tsv(path: Path, columns: list[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames != columns:
            raise ManifestError(f"{path}: header {reader.fieldnames} != expected {columns}")
        return list(reader)
