"""AVE (Tian et al., ECCV 2018): ``Annotations.txt`` + split files -> manifest.

Format (YapengTian/AVE-ECCV18 ``data/Annotations.txt``):
``Category&VideoID&Quality&StartTime&EndTime``,
one event per row, integer seconds, end exclusive, segment t = [t, t+1).  The
dataset-zip copy starts with that line as a header, the repository copy does not;
the header is detected.  Categories contain commas, so lines split on ``&`` only.

Labels are per ROW (4,143) and media per VIDEO (4,097): the first row of a video
has ``sample_id = video_id``, its later rows ``<video_id>#2``, ``#3``; ``row`` is the
0-based data row, the index used by every released ``*.h5`` file.

Splits come from ``trainSet/valSet/testSet.txt`` (same 5-field lines) or from
``train/val/test_order.h5`` (dataset ``order``: 0-based rows of the header-less file).
Each split-file line takes one annotation row; a line listed more often than the
annotation file holds it (a duplicate within or across split files) is an error
naming both lines.

Classes (``common.choose_classes``): ``classes_file`` if set; else, when any
category is one of AVE's 28, those 28 in ``categories.txt`` order, and any other
category is an error naming its line with the closest AVE class (``Church bel``
-> ``Church bell``); else (a dataset of one's own in the AVE layout, e.g. the
synthetic one without ``classes_file``) the order of first appearance.  Reported, not
fixed: the zero-length row and the 18 videos whose rows fall into different splits
(published numbers use the official split as is).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avpipe.datasets.common import (
    Anomalies,
    ClassList,
    DatasetConfig,
    DatasetError,
    choose_classes,
    index_videos,
    make_sample,
    parse_config,
    parse_number,
    read_lines,
    require_file,
    source_files,
)
from avpipe.datasets.manifest import Event, Manifest

log = logging.getLogger(__name__)

HEADER = ("category", "videoid", "quality", "starttime", "endtime")
SPLITS = ("train", "val", "test")
TXT_NAMES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
H5_NAMES = {"train": "train_order.h5", "val": "val_order.h5", "test": "test_order.h5"}
# categories.txt of AVE.zip = order of first appearance in Annotations.txt (YapengTian/AVE-ECCV18).
AVE_CLASSES = (
    "Church bell",
    "Male speech, man speaking",
    "Bark",
    "Fixed-wing aircraft, airplane",
    "Race car, auto racing",
    "Female speech, woman speaking",
    "Helicopter",
    "Violin, fiddle",
    "Flute",
    "Ukulele",
    "Frying (food)",
    "Truck",
    "Shofar",
    "Motorcycle",
    "Acoustic guitar",
    "Train horn",
    "Clock",
    "Banjo",
    "Goat",
    "Baby cry, infant cry",
    "Bus",
    "Chainsaw",
    "Cat",
    "Horse",
    "Toilet flush",
    "Rodents, rats, mice",
    "Accordion",
    "Mandolin",
)


@dataclass(frozen=True)
class Row:
    """One annotation line; ``start``/``end`` in whole seconds, end exclusive."""

    category: str
    video_id: str
    quality: str
    start: int
    end: int

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return (self.category, self.video_id, self.quality, self.start, self.end)


def is_header(line: str) -> bool:
    return tuple(f.strip().lower() for f in line.split("&")) == HEADER


def parse_line(line: str, where: str) -> Row:
    fields = line.split("&")
    if len(fields) != 5:
        raise DatasetError(
            f"{where}: expected 5 '&'-separated fields "
            f"(Category&VideoID&Quality&StartTime&EndTime), got {len(fields)}: {line!r}"
        )
    category, video_id, quality = (f.strip() for f in fields[:3])
    if not category or not video_id:
        raise DatasetError(f"{where}: empty category or video id: {line!r}")
    start = int(parse_number(fields[3], where, "StartTime", integer=True))
    end = int(parse_number(fields[4], where, "EndTime", integer=True))
    if start < 0 or end < start:
        raise DatasetError(
            f"{where}: event [{start}, {end}) is impossible (need 0 <= start <= end)"
        )
    return Row(category, video_id, quality, start, end)


def read_rows(path: Path, what: str = "AVE annotation file") -> tuple[list[Row], bool]:
    """Data rows of an AVE annotation file and whether it had a header line."""
    lines = read_lines(path, what)
    while lines and not lines[-1].strip():
        lines.pop()
    header = bool(lines) and is_header(lines[0])
    rows = []
    for i, line in enumerate(lines[1:] if header else lines, 2 if header else 1):
        if not line.strip():
            raise DatasetError(f"{path}:{i}: empty line inside the annotation table")
        rows.append(parse_line(line, f"{path}:{i}"))
    if not rows:
        raise DatasetError(f"{path}: no annotation rows")
    return rows, header


def split_source(cfg: DatasetConfig, folder: Path) -> str:
    if cfg.splits != "auto":
        return cfg.splits
    for kind, names in (("txt", TXT_NAMES), ("h5", H5_NAMES)):
        if all((folder / n).is_file() for n in names.values()):
            return kind
    raise DatasetError(
        f"no AVE split files in {folder}: expected {', '.join(TXT_NAMES.values())} "
        f"or {', '.join(H5_NAMES.values())}"
    )


def splits_from_txt(
    folder: Path, rows: list[Row], where: list[str]
) -> tuple[dict[int, str], list[Path]]:
    """Row -> split by matching each split-file line to an unused identical annotation row.

    ``where[i]``: ``file:line`` of annotation row ``i``, for the messages.
    """
    free: dict[tuple, deque[int]] = defaultdict(deque)
    for i, r in enumerate(rows):
        free[r.key].append(i)
    listed: dict[tuple, list[str]] = defaultdict(list)  # key -> split-file lines so far
    out: dict[int, str] = {}
    files = []
    for split in SPLITS:
        path = require_file(folder / TXT_NAMES[split], f"AVE {split} split file")
        files.append(path)
        for n, line in enumerate(read_lines(path, f"AVE {split} split file"), 1):
            if not line.strip():
                continue
            row = parse_line(line, f"{path}:{n}")
            if row.key not in free:
                raise DatasetError(f"{path}:{n}: {line!r} matches no row of the annotation file")
            if not free[row.key]:
                raise _listed_twice(row.key, listed[row.key], f"{path}:{n}", line, rows, where)
            listed[row.key].append(f"{path}:{n}")
            out[free[row.key].popleft()] = split
    return out, files


def _listed_twice(
    key: tuple, earlier: list[str], here: str, line: str, rows: list[Row], where: list[str]
) -> DatasetError:
    """A split line whose annotation rows are all taken: blame the duplicate, name the rest.

    A repeat within one file is that file's later line; across files both are named,
    as either may be the wrong one.
    """
    rows_at = [w for w, r in zip(where, rows, strict=True) if r.key == key]
    same_file = [w for w in earlier if w.rsplit(":", 1)[0] == here.rsplit(":", 1)[0]]
    if same_file:
        first = f"duplicates line {same_file[0].rsplit(':', 1)[1]} of the same file"
    else:
        first = f"is also listed at {', '.join(earlier)}"
    return DatasetError(
        f"{here}: {line!r} {first}; the annotation file has it {len(rows_at)} time(s) "
        f"({', '.join(rows_at)}) and each row belongs to one split"
    )


def splits_from_h5(folder: Path, n_rows: int) -> tuple[dict[int, str], list[Path]]:
    """Row -> split from the ``order`` datasets (0-based row indices)."""
    import h5py

    out: dict[int, str] = {}
    files = []
    for split in SPLITS:
        path = require_file(folder / H5_NAMES[split], f"AVE {split} split file")
        files.append(path)
        with h5py.File(path, "r") as f:
            if "order" not in f:
                raise DatasetError(f"{path}: no HDF5 dataset 'order' (found {sorted(f)})")
            order = f["order"][()].reshape(-1)
        for pos, idx in enumerate(order.tolist()):
            if not 0 <= idx < n_rows:
                raise DatasetError(
                    f"{path}: order[{pos}] = {idx} is outside the {n_rows} annotation rows"
                )
            if idx in out:
                raise DatasetError(
                    f"{path}: order[{pos}] = row {idx}, already in split {out[idx]!r}"
                )
            out[idx] = split
    return out, files


def load(cfg: DatasetConfig | dict[str, Any], name: str = "ave") -> Manifest:
    cfg = parse_config(cfg, name)
    path = cfg.file(cfg.annotations or "Annotations.txt")
    require_file(path, "AVE annotation file", f"datasets.{name}.annotations, relative to root")
    rows, header = read_rows(path)
    where = [f"{path}:{i + 1 + header}" for i in range(len(rows))]
    classes: ClassList = choose_classes(
        cfg, [(w, r.category) for w, r in zip(where, rows, strict=True)], AVE_CLASSES, "ave"
    )
    folder = cfg.file(cfg.split_dir) if cfg.split_dir else cfg.root_path
    kind = split_source(cfg, folder)
    split_of, split_files = (
        splits_from_txt(folder, rows, where) if kind == "txt" else splits_from_h5(folder, len(rows))
    )
    anomalies = Anomalies(cfg.on_anomaly == "raise")
    media = index_videos(cfg.videos_path)

    samples, events = [], []
    seen: dict[str, int] = defaultdict(int)
    for i, r in enumerate(rows):
        seen[r.video_id] += 1
        sample_id = r.video_id if seen[r.video_id] == 1 else f"{r.video_id}#{seen[r.video_id]}"
        if i not in split_of:
            anomalies.add(
                "row_in_no_split", where[i], f"row {i} ({r.video_id}) is in no split file; left out"
            )
            continue
        if r.end == r.start:
            anomalies.add(
                "zero_length_event",
                where[i],
                f"{r.category} [{r.start}, {r.end}): kept, all background",
            )
        if r.end > cfg.nominal_duration:
            anomalies.add(
                "event_outside_duration", where[i], f"end {r.end} > {cfg.nominal_duration} s"
            )
        samples.append(
            make_sample(cfg, media, sample_id, r.video_id, split_of[i], cfg.nominal_duration, row=i)
        )
        events.append(Event(sample_id, r.category, "audio-visual", float(r.start), float(r.end)))
    _report_cross_split(rows, split_of, anomalies)
    anomalies.log_summary()
    meta = {
        "annotations": str(path),
        "header": header,
        "split_source": kind,
        "class_order": classes.order,
        "n_rows": len(rows),
        "source_files": source_files([path, *split_files]),
        "anomalies": anomalies.to_dict(),
    }
    return Manifest(
        name, "ave", classes.names, samples, events, cfg.segment_hop, cfg.segment_win, meta
    )


def _report_cross_split(rows: list[Row], split_of: dict[int, str], anomalies: Anomalies) -> None:
    by_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, r in enumerate(rows):
        if i in split_of:
            by_video[r.video_id].append((i, split_of[i]))
    for vid, parts in by_video.items():
        if len({s for _, s in parts}) > 1:
            detail = ", ".join(f"row {i} in {s}" for i, s in parts)
            anomalies.add(
                "video_in_several_splits",
                vid,
                detail,
                "rows of one video fall into different official splits (kept as published)",
            )
