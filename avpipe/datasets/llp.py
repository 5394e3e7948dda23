"""LLP (Tian et al., ECCV 2020, AVVP): weak and dense TAB CSVs -> manifest.

Format (YapengTian/AVVP-ECCV20 ``data/``): ``AVVP_train.csv``, ``AVVP_val_pd.csv``,
``AVVP_test_pd.csv`` hold ``filename<TAB>event_labels`` (comma-joined classes: weak,
video-level labels, modality ``unspecified``); ``AVVP_eval_audio.csv`` and
``AVVP_eval_visual.csv`` hold ``filename onset offset event_labels`` (one class,
integer seconds, offset exclusive) for val/test, giving ``audio`` / ``visual``
events.  ``video_id = filename[:11]`` (YouTube ids contain ``_``); ``sample_id =
video_id``.  Dense rows are matched to val/test by exact ``filename``, as the
reference evaluator does.

Classes (``common.choose_classes``): ``classes_file`` if set; else, when any weak
label is one of LLP's 25, those 25 in the reference order, and any other label is
an error naming its file and line with the closest LLP class (``Dgo`` -> ``Dog``);
else (a dataset of one's own in the LLP layout, e.g. the synthetic one without
``classes_file``) the order of first appearance.  A missing file is an error naming
the path and the option that sets it (``root``; ``eval_audio``/``eval_visual``).

The known anomalies (dense filenames matching no val/test row, zero-length or
inverted dense rows, dense classes absent from the weak label) are reported in
``meta.json`` and the events kept as written; ``on_anomaly: raise`` makes them fatal.
The eval-file version (2020 original vs the 2024 fix) is recognised by SHA-256.
"""

from __future__ import annotations

import logging
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
    sha256,
    source_files,
)
from avpipe.datasets.manifest import Event, Manifest

log = logging.getLogger(__name__)

ID_LEN = 11
WEAK_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
FULL_FILE = "AVVP_dataset_full.csv"
# Class index order hard-coded in the reference dataloader.py / main_avvp.py.
LLP_CLASSES = (
    "Speech",
    "Car",
    "Cheering",
    "Dog",
    "Cat",
    "Frying_(food)",
    "Basketball_bounce",
    "Fire_alarm",
    "Chainsaw",
    "Cello",
    "Banjo",
    "Singing",
    "Chicken_rooster",
    "Violin_fiddle",
    "Vacuum_cleaner",
    "Baby_laughter",
    "Accordion",
    "Lawn_mower",
    "Motorcycle",
    "Helicopter",
    "Acoustic_guitar",
    "Telephone_bell_ringing",
    "Baby_cry_infant_cry",
    "Blender",
    "Clapping",
)
# SHA-256 of the published eval files (YapengTian/AVVP-ECCV20 @0b28c1a and @fde5611).
EVAL_VERSIONS = {
    "249122f65501d8d611c0027a48643798fe622bedee60f7e6224b5a8e3c02f886": "2020",
    "d5435664668bec6e7eafb39059d2f424ed2682f6b55395262fc3cb691b7d0778": "2024",
    "e2274af694f3f27e38b840e0cd91a9d8d9ac85280f193e90828d26b22db69abe": "2020+2024",
}


@dataclass(frozen=True)
class WeakRow:
    filename: str
    labels: tuple[str, ...]
    split: str
    where: str


@dataclass(frozen=True)
class DenseRow:
    filename: str
    onset: int
    offset: int
    label: str
    where: str


def _table(path: Path, columns: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``(where, fields)`` per data line of a TAB file whose header must be ``columns``."""
    lines = read_lines(path)
    if not lines or tuple(c.strip() for c in lines[0].split("\t")) != columns:
        got = lines[0] if lines else "<empty file>"
        raise DatasetError(
            f"{path}:1: header {got!r}, expected {chr(9).join(columns)!r} (TAB-separated)"
        )
    out = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DatasetError(
                f"{path}:{n}: expected {len(columns)} TAB-separated fields, "
                f"got {len(fields)}: {line!r}"
            )
        out.append((f"{path}:{n}", [f.strip() for f in fields]))
    return out


def read_weak(path: Path, split: str) -> list[WeakRow]:
    rows = []
    for where, (filename, labels) in _table(path, ("filename", "event_labels")):
        if len(filename) < ID_LEN:
            raise DatasetError(
                f"{where}: filename {filename!r} is shorter than an {ID_LEN}-character YouTube id"
            )
        names = tuple(c.strip() for c in labels.split(",") if c.strip())
        rows.append(WeakRow(filename, names, split, where))
    return rows


def read_dense(path: Path) -> list[DenseRow]:
    rows = []
    for where, (filename, onset, offset, label) in _table(
        path, ("filename", "onset", "offset", "event_labels")
    ):
        on = int(parse_number(onset, where, "onset", integer=True))
        off = int(parse_number(offset, where, "offset", integer=True))
        rows.append(DenseRow(filename, on, off, label, where))
    return rows


def class_list(cfg: DatasetConfig, weak: list[WeakRow]) -> ClassList:
    """The class list by ``common.choose_classes``, LLP's reference 25 as the known list."""
    labels = [(r.where, c) for r in weak for c in r.labels]
    return choose_classes(cfg, labels, LLP_CLASSES, "llp")


def eval_file_info(path: Path) -> dict[str, str]:
    digest = sha256(path)
    return {"path": str(path), "sha256": digest, "version": EVAL_VERSIONS.get(digest, "unknown")}


def load(cfg: DatasetConfig | dict[str, Any], name: str = "llp") -> Manifest:
    cfg = parse_config(cfg, name)
    for split, fname in WEAK_FILES.items():
        require_file(cfg.file(fname), f"LLP {split} file", f"fixed name in datasets.{name}.root")
    eval_paths = {"audio": cfg.file(cfg.eval_audio), "visual": cfg.file(cfg.eval_visual)}
    for modality, path in eval_paths.items():
        require_file(
            path,
            f"LLP {modality} eval file",
            f"set by datasets.{name}.eval_{modality}, relative to root",
        )
    anomalies = Anomalies(cfg.on_anomaly == "raise")
    weak: list[WeakRow] = []
    for split, fname in WEAK_FILES.items():
        weak += read_weak(cfg.file(fname), split)
    classes = class_list(cfg, weak)
    by_filename = _index_weak(weak)
    _check_full_list(cfg, by_filename, anomalies)

    media = index_videos(cfg.videos_path)
    samples, events = [], []
    for r in weak:
        vid = r.filename[:ID_LEN]
        samples.append(make_sample(cfg, media, vid, vid, r.split, cfg.nominal_duration))
        if not r.labels:
            anomalies.add("no_weak_label", r.where, f"{r.filename} has no class")
        events += [Event(vid, c, "unspecified") for c in r.labels]

    eval_files, unmatched = {}, {}
    for modality, path in eval_paths.items():
        dense = read_dense(path)
        eval_files[modality] = eval_file_info(path)
        unmatched[modality] = sorted({d.filename for d in dense} - set(by_filename))
        events += _dense_events(dense, modality, by_filename, classes, cfg, anomalies)
    anomalies.log_summary()
    versions = {v["version"] for v in eval_files.values()}
    meta = {
        "class_order": classes.order,
        "eval_version": eval_files["audio"]["version"],
        "eval_files": eval_files,
        "eval_versions_seen": sorted(versions),
        "dense_rows": _dense_counts(samples, events),
        "dense_unmatched_filenames": unmatched,
        "source_files": source_files([cfg.file(f) for f in WEAK_FILES.values()]),
        "anomalies": anomalies.to_dict(),
    }
    return Manifest(
        name, "llp", classes.names, samples, events, cfg.segment_hop, cfg.segment_win, meta
    )


def _dense_counts(samples: list, events: list[Event]) -> dict[str, dict[str, int]]:
    """Dense event rows kept per split and modality (val 1,451 audio / 856 visual on LLP)."""
    split = {s.sample_id: s.split for s in samples}
    out: dict[str, dict[str, int]] = {}
    for e in events:
        if not e.is_weak:
            per = out.setdefault(split[e.sample_id], {})
            per[e.modality] = per.get(e.modality, 0) + 1
    return out


def _index_weak(weak: list[WeakRow]) -> dict[str, WeakRow]:
    """filename -> row; a repeated filename or video id is an error naming both lines."""
    by_filename: dict[str, WeakRow] = {}
    by_id: dict[str, WeakRow] = {}
    for r in weak:
        vid = r.filename[:ID_LEN]
        if r.filename in by_filename:
            raise DatasetError(
                f"{r.where}: duplicate filename {r.filename!r} "
                f"(first at {by_filename[r.filename].where})"
            )
        if vid in by_id:
            raise DatasetError(
                f"{r.where}: duplicate video id {vid!r} (first at {by_id[vid].where})"
            )
        by_filename[r.filename] = by_id[vid] = r
    return by_filename


def _check_full_list(
    cfg: DatasetConfig, by_filename: dict[str, WeakRow], anomalies: Anomalies
) -> None:
    """``AVVP_dataset_full.csv``, when present, must be the union of the three splits."""
    path = cfg.file(FULL_FILE)
    if not path.is_file():
        return
    full = read_weak(path, "full")
    names = {r.filename for r in full}
    for r in full:
        if r.filename not in by_filename:
            anomalies.add("full_list_not_in_split", r.where, f"{r.filename} is in no split file")
    for fn, r in by_filename.items():
        if fn not in names:
            anomalies.add("split_row_not_in_full_list", r.where, f"{fn} is not in {FULL_FILE}")


def _dense_events(
    rows: list[DenseRow],
    modality: str,
    by_filename: dict[str, WeakRow],
    classes: ClassList,
    cfg: DatasetConfig,
    anomalies: Anomalies,
) -> list[Event]:
    out = []
    for d in rows:
        classes.check(d.where, d.label)
        weak = by_filename.get(d.filename)
        if weak is None or weak.split not in ("val", "test"):
            anomalies.add(
                "dense_filename_not_in_val_test",
                d.where,
                f"{d.filename!r} matches no val/test row; row ignored",
                "the reference evaluator ignores these rows too",
            )
            continue
        if d.offset <= d.onset:
            anomalies.add(
                "dense_empty_or_inverted",
                d.where,
                f"{d.label} [{d.onset}, {d.offset}): kept, covers no segment",
            )
        if d.onset < 0 or d.offset > cfg.nominal_duration:
            anomalies.add(
                "event_outside_duration",
                d.where,
                f"[{d.onset}, {d.offset}) outside [0, {cfg.nominal_duration}]",
            )
        if d.label not in weak.labels:
            anomalies.add(
                "dense_class_not_in_weak_label",
                d.where,
                f"{d.label} not in weak label of {d.filename}",
            )
        out.append(Event(d.filename[:ID_LEN], d.label, modality, float(d.onset), float(d.offset)))
    return out
