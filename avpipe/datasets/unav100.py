"""UnAV-100 (Geng et al., CVPR 2023): ActivityNet-style JSON -> manifest.

Format (as read by ``ttgeng233/UnAV libs/datasets/unav100.py``)::

    {"database": {"<vid>": {"subset": "train"|"validation"|"test", "duration": <s>,
                            "annotations": [{"segment": [s, e], "label": "...", "label_id": k}]}}}

Float seconds, events may overlap, videos last 0.2-60 s, so ``n_segments`` follows
each video's duration on the configured grid (``segment_hop``; the reference
features use 0.32 s).  The class list is built from the ``label``/``label_id``
pairs, ordered by ``label_id``.  Events are ``audio-visual``.  JSON has no useful
line numbers, so errors name the file and the video key.
"""

from __future__ import annotations

import json
import logging
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
from avpipe.datasets.manifest import Event, Manifest

log = logging.getLogger(__name__)

SUBSETS = {
    "train": "train",
    "training": "train",
    "validation": "val",
    "val": "val",
    "test": "test",
    "testing": "test",
}
DEFAULT_FILE = "unav100_annotations.json"


def _no_duplicate_keys(path: Path):  # noqa: ANN202 - json object_pairs_hook
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise DatasetError(f"{path}: duplicate key {k!r} in a JSON object")
            out[k] = v
        return out

    return hook


def read_database(path: Path) -> dict[str, Any]:
    text = read_text(path, "UnAV-100 annotation file")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise DatasetError(f"{path}: expected a top-level object with a 'database' mapping")
    return data["database"]


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{where}: {what} {value!r} is not a number")
    return float(value)


def class_list(db: dict[str, Any], path: Path) -> list[str]:
    """Class names ordered by ``label_id``; a label with two ids (or the reverse) is an error."""
    by_id: dict[int, str] = {}
    by_label: dict[str, int] = {}
    for vid, entry in db.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("annotations", []), list):
            raise DatasetError(
                f"{path}: database[{vid!r}] must be an object with an 'annotations' list"
            )
        for k, a in enumerate(entry.get("annotations", [])):
            if not isinstance(a, dict):
                raise DatasetError(f"{path}: database[{vid!r}].annotations[{k}] must be an object")
            where = f"{path}: database[{vid!r}].annotations[{k}]"
            label, lid = a.get("label"), a.get("label_id")
            if not isinstance(label, str) or isinstance(lid, bool) or not isinstance(lid, int):
                raise DatasetError(
                    f"{where}: needs a string 'label' and an integer 'label_id', "
                    f"got {label!r}, {lid!r}"
                )
            if by_id.setdefault(lid, label) != label or by_label.setdefault(label, lid) != lid:
                raise DatasetError(
                    f"{where}: label {label!r} / label_id {lid} conflicts with an earlier pair "
                    f"(label_id {lid} is {by_id[lid]!r}, "
                    f"label {label!r} has id {by_label.get(label, lid)})"
                )
    return [by_id[i] for i in sorted(by_id)]


def load(cfg: DatasetConfig | dict[str, Any], name: str = "unav100") -> Manifest:
    cfg = parse_config(cfg, name)
    path = cfg.file(cfg.annotations or DEFAULT_FILE)
    db = read_database(path)
    classes = (
        read_class_file(cfg.file(cfg.classes_file)) if cfg.classes_file else class_list(db, path)
    )
    known = set(classes)
    anomalies = Anomalies(cfg.on_anomaly == "raise")
    if cfg.classes_file is None:
        used = sorted({a["label_id"] for e in db.values() for a in e.get("annotations", [])})
        if used != list(range(len(used))):
            anomalies.add(
                "label_ids_not_contiguous",
                str(path),
                f"label_id values {used} are not 0..{len(used) - 1}; "
                "class index = rank of label_id",
            )
    media = index_videos(cfg.videos_path)
    samples, events = [], []
    for vid, entry in db.items():
        where = f"{path}: database[{vid!r}]"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
        subset = entry.get("subset")
        if subset not in SUBSETS:
            raise DatasetError(f"{where}: subset {subset!r} is not one of {sorted(SUBSETS)}")
        duration = _number(entry.get("duration"), where, "duration")
        if duration <= 0:
            raise DatasetError(f"{where}: duration {duration} must be positive")
        sample = make_sample(cfg, media, vid, vid, SUBSETS[subset], duration)
        if sample.present and abs(sample.duration - duration) > 1.0:
            anomalies.add(
                "duration_mismatch",
                where,
                f"annotated {duration:.2f} s, file {sample.duration:.2f} s",
            )
        samples.append(sample)
        events += _events(entry.get("annotations", []), vid, duration, known, where, anomalies)
    anomalies.log_summary()
    meta = {
        "annotations": str(path),
        "class_order": "file" if cfg.classes_file else "label_id",
        "source_files": source_files([path]),
        "anomalies": anomalies.to_dict(),
    }
    return Manifest(
        name, "unav100", classes, samples, events, cfg.segment_hop, cfg.segment_win, meta
    )


def _events(
    annotations: Any, vid: str, duration: float, known: set[str], where: str, anomalies: Anomalies
) -> list[Event]:
    if not isinstance(annotations, list):
        raise DatasetError(f"{where}.annotations: expected a list")
    out = []
    for k, a in enumerate(annotations):
        w = f"{where}.annotations[{k}]"
        seg = a.get("segment") if isinstance(a, dict) else None
        if not isinstance(seg, list) or len(seg) != 2:
            raise DatasetError(f"{w}: 'segment' must be [start, end] in seconds, got {seg!r}")
        start, end = _number(seg[0], w, "segment start"), _number(seg[1], w, "segment end")
        if end < start:
            raise DatasetError(f"{w}: segment [{start}, {end}] ends before it starts")
        if a.get("label") not in known:
            raise DatasetError(f"{w}: unknown class {a.get('label')!r}")
        if end == start:
            anomalies.add(
                "zero_length_event", w, f"{a['label']} [{start}, {end}]: kept, covers no segment"
            )
        if start < 0 or end > duration + 1e-6:
            anomalies.add("event_outside_duration", w, f"[{start}, {end}] outside [0, {duration}]")
        out.append(Event(vid, a["label"], "audio-visual", start, end))
    return out
