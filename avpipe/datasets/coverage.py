"""Coverage report: per split, how many videos are listed, present, decodable, with audio.

``coverage.tsv``: ``split  samples  listed  present  decodable  with_audio`` (videos are
counted once per split; AVE's train split has 3,339 samples but fewer videos), plus
a final ``all`` row over distinct videos.  ``problems.tsv``: one line per video and
problem with the reason, so that no video is dropped silently by later stages:
``missing`` (no file), ``unreadable`` (PyAV cannot open it: that one line only),
``undecodable`` (opens, no video frame decodes), ``no_audio`` (opens, no audio
stream), ``no_segment`` (shorter than one window of an overlapping grid, e.g. UnAV-100's
0.96-s windows: no feature, left out of training; its events still count in the
detection mAP), and ``skipped`` for the folder entries an adapter did not take as media
(``meta.json: skipped_files``; ``video_id`` and ``split`` empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avpipe.datasets.manifest import SPLITS, Manifest
from avpipe.datasets.probe import probe
from avpipe.utils import atomic

COVERAGE_COLUMNS = ["split", "samples", "listed", "present", "decodable", "with_audio"]
PROBLEM_COLUMNS = ["video_id", "split", "path", "problem", "reason"]


@dataclass(frozen=True)
class VideoStatus:
    present: bool
    decodable: bool
    with_audio: bool
    reason: str
    readable: bool = True


def video_status(path: str, present: bool, decode: bool) -> VideoStatus:
    # a dataset with released features has its samples present without video files
    if not present or not Path(path).is_file():
        return VideoStatus(False, False, False, "file not found", readable=False)
    info = probe(path, decode)
    decodable = bool(info.decodable) if decode else info.has_video
    return VideoStatus(True, decodable, info.has_audio, info.error, info.opened)


def build(manifest: Manifest, decode: bool = True) -> tuple[list[list], list[list]]:
    """Rows of ``coverage.tsv`` and ``problems.tsv`` (see the module docstring)."""
    status: dict[str, VideoStatus] = {}
    splits_of: dict[str, list[str]] = {}
    path_of: dict[str, str] = {}
    for s in manifest.samples:
        if s.video_id not in status:
            status[s.video_id] = video_status(s.path, s.present, decode)
            path_of[s.video_id] = s.path
        splits_of.setdefault(s.video_id, [])
        if s.split not in splits_of[s.video_id]:
            splits_of[s.video_id].append(s.split)
    coverage = []
    for split in [*SPLITS, "all"]:
        samples = [s for s in manifest.samples if split in (s.split, "all")]
        if not samples:
            continue
        vids = list(dict.fromkeys(s.video_id for s in samples))
        st = [status[v] for v in vids]
        coverage.append(
            [split, len(samples), len(vids)]
            + [sum(getattr(x, k) for x in st) for k in ("present", "decodable", "with_audio")]
        )
    problems = []
    for vid, st in status.items():
        split = ",".join(splits_of[vid])
        if not st.present:
            problems.append([vid, split, path_of[vid], "missing", st.reason])
            continue
        if not st.readable:
            problems.append([vid, split, path_of[vid], "unreadable", st.reason])
            continue
        if not st.decodable:
            problems.append(
                [vid, split, path_of[vid], "undecodable", st.reason or "no video frame"]
            )
        if not st.with_audio:
            problems.append([vid, split, path_of[vid], "no_audio", "no audio stream"])
    for vid in dict.fromkeys(s.video_id for s in manifest.samples if s.n_segments == 0):
        # An unreadable file's duration is unknown: it is reported as unreadable only.
        if status[vid].present and status[vid].readable:
            sample = next(s for s in manifest.samples if s.video_id == vid)
            problems.append(
                [
                    vid,
                    ",".join(splits_of[vid]),
                    path_of[vid],
                    "no_segment",
                    f"{sample.duration:.2f} s is shorter than one {manifest.segment_win:g}-s "
                    "window: no segment",
                ]
            )
    for entry in manifest.meta.get("skipped_files", []):
        problems.append(["", "", entry["path"], "skipped", f"{entry['kind']}: {entry['reason']}"])
    return coverage, problems


def write(manifest: Manifest, folder: str | Path, decode: bool = True) -> list[list]:
    """Write ``coverage.tsv`` and ``problems.tsv`` into ``folder``; returns the coverage rows."""
    coverage, problems = build(manifest, decode)
    folder = Path(folder)
    atomic.write_tsv(folder / "coverage.tsv", COVERAGE_COLUMNS, coverage)
    atomic.write_tsv(
        folder / "problems.tsv", PROBLEM_COLUMNS, [[_clean(c) for c in r] for r in problems]
    )
    return coverage


def _clean(value: object) -> object:
    """FFmpeg messages may hold tabs or newlines; a TSV cell may not."""
    return " ".join(value.split()) if isinstance(value, str) else value
