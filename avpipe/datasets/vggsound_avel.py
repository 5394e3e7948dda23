"""VGGSound-AVEL100k / 50k (Zhou et al., CPSP, TPAMI 2022) -> manifest.

Format (from the ``jasongief/CPSP`` loaders and issues):

- ``vggsound-avel100k.csv``: comma CSV with a header; the columns ``category``,
  ``video_id`` and ``split`` (train/val/test) are used, extra columns tolerated.
- segment labels (``labels`` key, optional): JSON ``{video_id: {"label": [0,1,...]}}``;
  also accepted ``{video_id: [0,1,...]}`` and the ``[1,10]`` / ``[10,1]`` nested
  vectors of the original pickles.  One 0/1 entry per 1-s segment; each run of 1s
  becomes an ``audio-visual`` event ``[start, end)`` of the video's category.
  The vector fixes the video's segments: T = its length whatever the probed duration
  (an 8.2-s clip keeps its 10th label), and extraction pads (or cuts) the features to
  it, as CPSP's loader pads its audio to 10 segments and scores all 10 (``jasongief/CPSP``
  ``vggsound_avel_dataset.py``); a clip whose duration gives another count is reported
  (``duration_differs_from_labels``).
  Without a labels file (the first release was video-level only, CPSP#1) each
  video gets a weak event of its category.
- classes: ``classes_file`` (``VggsoundAVEL100kCategories.txt``, one per line,
  used when present in root) or the CSV's first-appearance order.

Media: ``<video_id>.<ext>`` or, as VGGSound names its clips,
``<video_id>_<start:06d>.<ext>``; with several clips of one id the one with the
later start is taken (the author's advice, CPSP#3) and the choice is reported.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from avpipe.datasets.common import (
    Anomalies,
    DatasetConfig,
    DatasetError,
    index_videos,
    make_sample,
    parse_config,
    read_class_file,
    read_text,
    source_files,
)
from avpipe.datasets.manifest import Event, Manifest, segment_count

log = logging.getLogger(__name__)

DEFAULT_FILE = "vggsound-avel100k.csv"
DEFAULT_CLASSES = "VggsoundAVEL100kCategories.txt"
SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
COLUMNS = ("category", "video_id", "split")
_CLIP = re.compile(r"^(?P<id>.+)_(?P<start>\d{6})$")


def read_list(path: Path) -> list[tuple[str, str, str, str]]:
    """``(where, category, video_id, split)`` per data row."""
    with io.StringIO(read_text(path, "VGGSound-AVEL list"), newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}:1: header {reader.fieldnames} lacks column(s) {missing}")
        rows = []
        for rec in reader:
            where = f"{path}:{reader.line_num}"
            if None in rec or any(rec[c] is None for c in COLUMNS):
                raise DatasetError(
                    f"{where}: expected {len(reader.fieldnames or [])} comma-separated fields"
                )
            cat, vid, split = (rec[c].strip() for c in COLUMNS)
            if not cat or not vid:
                raise DatasetError(f"{where}: empty category or video_id")
            if split not in SPLITS:
                raise DatasetError(f"{where}: split {split!r} is not one of {sorted(SPLITS)}")
            rows.append((where, cat, vid, SPLITS[split]))
    return rows


def read_labels(path: Path) -> dict[str, list[int]]:
    """``{video_id: [0/1 per segment]}`` from any of the documented JSON layouts."""
    text = read_text(path, "VGGSound-AVEL segment labels")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object {{video_id: labels}}")
    out = {}
    for vid, value in data.items():
        vec = value.get("label") if isinstance(value, dict) else value
        if isinstance(vec, list) and vec and all(isinstance(v, list) for v in vec):
            vec = [x for v in vec for x in v]  # [1,10] or [10,1]
        if (
            not isinstance(vec, list)
            or not vec
            or any(v not in (0, 1) or isinstance(v, float) for v in vec)
        ):
            raise DatasetError(
                f"{path}: labels of {vid!r} must be a non-empty list of 0/1, got {value!r}"
            )
        out[vid] = [int(v) for v in vec]
    return out


def runs(mask: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of 1s as ``[start, end)`` segment indices: [0,1,1,0,1] -> [(1,3), (4,5)]."""
    out, start = [], None
    for t, v in enumerate([*mask, 0]):
        if v and start is None:
            start = t
        elif not v and start is not None:
            out.append((start, t))
            start = None
    return out


def index_clips(folder: Path, anomalies: Anomalies) -> dict[str, Path]:
    """Media by video id: exact stems, plus ``<id>_<start:06d>`` clips (latest start wins)."""
    exact = index_videos(folder)
    clips: dict[str, list[tuple[int, Path]]] = {}
    for stem, p in exact.items():
        m = _CLIP.match(stem)
        if m:
            clips.setdefault(m["id"], []).append((int(m["start"]), p))
    out = dict(exact)
    for vid, found in clips.items():
        if vid in exact:
            continue
        found.sort()
        out[vid] = found[-1][1]
        if len(found) > 1:
            anomalies.add(
                "several_clips_per_id",
                vid,
                f"{[str(p.name) for _, p in found]}: took the latest start",
            )
    return out


def load(cfg: DatasetConfig | dict[str, Any], name: str = "vggsound_avel") -> Manifest:
    cfg = parse_config(cfg, name)
    path = cfg.file(cfg.annotations or DEFAULT_FILE)
    rows = read_list(path)
    cls_path = cfg.file(cfg.classes_file or DEFAULT_CLASSES)
    if cfg.classes_file or cls_path.is_file():
        classes, order, files = read_class_file(cls_path), "file", [path, cls_path]
    else:
        classes, order, files = list(dict.fromkeys(r[1] for r in rows)), "first-appearance", [path]
    labels = read_labels(cfg.file(cfg.labels)) if cfg.labels else None
    if cfg.labels:
        files.append(cfg.file(cfg.labels))
    anomalies = Anomalies(cfg.on_anomaly == "raise")
    media = index_clips(cfg.videos_path, anomalies)
    known, first_line = set(classes), {}
    samples, events = [], []
    for where, cat, vid, split in rows:
        if cat not in known:
            raise DatasetError(f"{where}: unknown class {cat!r}")
        if vid in first_line:
            raise DatasetError(f"{where}: duplicate video_id {vid!r} (first at {first_line[vid]})")
        first_line[vid] = where
        mask = labels.get(vid) if labels is not None else None
        duration = float(len(mask)) * cfg.segment_hop if mask else cfg.nominal_duration
        sample = make_sample(
            cfg, media, vid, vid, split, duration, n_segments=len(mask or ()) or None
        )
        probed = segment_count(sample.duration, cfg.segment_hop, cfg.segment_win)
        if mask and sample.present and probed != len(mask):
            anomalies.add(
                "duration_differs_from_labels",
                where,
                f"{vid}: {sample.duration:.2f} s gives {probed} segments, its label vector "
                f"{len(mask)}: T = {len(mask)} (features padded or cut, as CPSP)",
            )
        samples.append(sample)
        if labels is not None and mask is None:
            anomalies.add(
                "no_segment_labels", where, f"{vid} has no entry in {cfg.labels}; weak label only"
            )
        if mask is None:
            events.append(Event(vid, cat, "unspecified"))
            continue
        if not any(mask):
            anomalies.add("no_event_segment", where, f"{vid}: label vector is all 0")
        hop = cfg.segment_hop
        events += [Event(vid, cat, "audio-visual", s * hop, e * hop) for s, e in runs(mask)]
    anomalies.log_summary()
    meta = {
        "annotations": str(path),
        "class_order": order,
        "segment_labels": "dense" if labels is not None else "video-level only",
        "segments_from_labels": labels is not None,
        "source_files": source_files(files),
        "anomalies": anomalies.to_dict(),
    }
    return Manifest(
        name, "vggsound_avel", classes, samples, events, cfg.segment_hop, cfg.segment_win, meta
    )
