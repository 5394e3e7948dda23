"""A folder of unlabelled videos -> manifest (split ``unlabeled``, no classes, no events).

The real use case of the unsupervised method (Bao et al.): point avpipe at any
directory of videos.  ``videos`` (default: ``root``) is scanned for the audio and
video containers PyAV reads (``common.MEDIA_EXTENSIONS``: mp4, mkv, webm, mov,
avi, ..., m4a, mp3, wav, flac, ogg, opus, aac, ...); with ``recursive: true``
sub-folders too, and then the id is the relative path without extension
(``a/b/clip``), so equal file names in different folders do not collide.  Two files
with one id (``x.mp4`` and ``x.mkv``) are an error, and so is a media file whose name
holds a tab or a newline or is not UTF-8 (it could not go into samples.tsv).  Durations
are probed with PyAV; a file that cannot be opened keeps duration 0 and 0 segments and
is listed in ``problems.tsv``.

Nothing is dropped silently: every other entry of the folder is skipped with a log
line, counted per kind in ``meta.json`` (``skipped``), listed in ``meta.json``
(``skipped_files``) and as a ``skipped`` row of ``problems.tsv``.  Kinds:
``hidden`` (a name starting with ``.``; a hidden folder is one entry, not searched),
``not_media`` (text, image, subtitle and archive files: ``NOT_MEDIA_EXTENSIONS``),
``unknown_extension`` (anything else: rename it if it is a media file),
``subfolder`` (with ``recursive: false``) and ``not_a_file`` (broken links, sockets).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from avpipe.datasets.common import MEDIA_EXTENSIONS, DatasetConfig, DatasetError, parse_config
from avpipe.datasets.manifest import Manifest, Sample, segment_count
from avpipe.datasets.probe import probe

log = logging.getLogger(__name__)

# Text, image, subtitle and archive files: skipped as ``not_media``.
# fmt: off
NOT_MEDIA_EXTENSIONS = frozenset({
    ".txt", ".md", ".json", ".jsonl", ".csv", ".tsv", ".yaml", ".yml", ".xml", ".html", ".pdf",
    ".log", ".ini", ".db", ".nfo", ".srt", ".vtt", ".ass", ".sub", ".jpg", ".jpeg", ".png",
    ".gif", ".bmp", ".webp", ".tif", ".tiff", ".zip", ".tar", ".gz", ".7z", ".rar", ".py",
    ".sh", ".h5", ".npy", ".npz",
})
# fmt: on


def _skip_reason(p: Path, recursive: bool) -> tuple[str, str] | None:
    """``(kind, reason)`` if ``p`` is not taken as a sample, else None."""
    if p.name.startswith("."):
        what = "folder, not searched" if p.is_dir() else "file"
        return "hidden", f"hidden {what}"
    if p.is_dir():
        if p.is_symlink():
            return "subfolder", "a linked folder (links to folders are not followed)"
        return None if recursive else ("subfolder", "a folder (set recursive: true to search it)")
    if not p.is_file():
        return "not_a_file", "not a regular file (broken link, socket, ...)"
    ext = p.suffix.lower()
    if ext in MEDIA_EXTENSIONS:
        return None
    if ext in NOT_MEDIA_EXTENSIONS:
        return "not_media", f"not a media file ({ext})"
    return "unknown_extension", (
        f"extension {ext or '(none)'!r} is not a known audio/video container; "
        "rename the file if PyAV reads it"
    )


def _shown(p: Path) -> str:
    """``p`` as text, bytes that are not UTF-8 as ``\\xNN`` (tables and logs are UTF-8)."""
    return os.fsencode(p).decode("utf-8", "backslashreplace")


def _entries(folder: Path, recursive: bool) -> list[Path]:
    """Every entry of ``folder`` (and, if ``recursive``, of its visible, unlinked sub-folders)."""
    out: list[Path] = []
    stack = [folder]
    while stack:
        for p in stack.pop().iterdir():
            out.append(p)
            if recursive and p.is_dir() and not p.is_symlink() and not p.name.startswith("."):
                stack.append(p)
    return sorted(out)


def scan(folder: Path, recursive: bool) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """``{video_id: path}`` in sorted path order, and the skipped entries.

    Skipped: ``{"path", "kind", "reason"}`` per entry (see the module docstring).
    """
    if not folder.is_dir():
        raise DatasetError(f"video folder not found: {folder}")
    out: dict[str, Path] = {}
    skipped: list[dict[str, str]] = []
    for p in _entries(folder, recursive):
        why = _skip_reason(p, recursive)
        if why is not None:
            skipped.append({"path": _shown(p), "kind": why[0], "reason": why[1]})
            level = logging.WARNING if why[0] == "unknown_extension" else logging.INFO
            log.log(level, "skipped %s: %s", _shown(p), why[1])
            continue
        if p.is_dir():
            continue  # its entries are in the list
        vid = p.relative_to(folder).with_suffix("").as_posix()
        if any(c in vid for c in "\t\n\r"):
            raise DatasetError(f"{p}: a tab or newline in the file name cannot go into samples.tsv")
        if _shown(p) != str(p):
            raise DatasetError(
                f"{_shown(p)}: the file name is not UTF-8 and cannot go into samples.tsv; rename it"
            )
        if vid in out:
            raise DatasetError(f"duplicate video id {vid!r}: {out[vid]} and {p}")
        out[vid] = p
    return out, skipped


def load(cfg: DatasetConfig | dict[str, Any], name: str = "folder") -> Manifest:
    cfg = parse_config(cfg, name)
    folder = Path(cfg.videos) if cfg.videos else cfg.root_path
    found, skipped = scan(folder, cfg.recursive)
    samples = []
    for vid, path in found.items():
        info = probe(str(path), cfg.decode_check)
        duration = info.duration or 0.0
        n = segment_count(duration, cfg.segment_hop, cfg.segment_win) if duration > 0 else 0
        samples.append(Sample(vid, vid, "unlabeled", str(path), duration, n, present=True))
    counts = dict(sorted(Counter(s["kind"] for s in skipped).items()))
    log.info("%d media files in %s", len(samples), folder)
    if skipped:
        log.warning(
            "%d entries of %s skipped (%s): listed in problems.tsv",
            len(skipped),
            folder,
            ", ".join(f"{k} {n}" for k, n in counts.items()),
        )
    meta = {
        "videos": str(folder),
        "recursive": cfg.recursive,
        "anomalies": {},
        "skipped": counts,
        "skipped_files": skipped,
    }
    return Manifest(name, "folder", [], samples, [], cfg.segment_hop, cfg.segment_win, meta)
