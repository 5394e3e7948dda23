"""A folder of unlabelled videos -> manifest (split ``unlabeled``, no classes, no events).

The real use case of the unsupervised method (Bao et al.): point avpipe at any
directory of videos.  ``videos`` (default: ``root``) is scanned for the
extensions in ``common.VIDEO_EXTENSIONS``; with ``recursive: true`` sub-folders too,
and then the id is the relative path without extension (``a/b/clip``), so equal
file names in different folders do not collide.  Two files with one id (``x.mp4``
and ``x.mkv``) are an error.  Durations are probed with PyAV; a file that cannot
be opened keeps duration 0 and 0 segments and is listed in ``problems.tsv``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from avpipe.datasets.common import VIDEO_EXTENSIONS, DatasetConfig, DatasetError, parse_config
from avpipe.datasets.manifest import Manifest, Sample, segment_count
from avpipe.datasets.probe import probe

log = logging.getLogger(__name__)


def scan(folder: Path, recursive: bool) -> dict[str, Path]:
    """``{video_id: path}`` in sorted path order."""
    if not folder.is_dir():
        raise DatasetError(f"video folder not found: {folder}")
    files = sorted(folder.rglob("*") if recursive else folder.iterdir())
    out: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in VIDEO_EXTENSIONS or not p.is_file():
            continue
        vid = p.relative_to(folder).with_suffix("").as_posix()
        if any(c in vid for c in "\t\n\r"):
            raise DatasetError(f"{p}: a tab or newline in the file name cannot go into samples.tsv")
        if vid in out:
            raise DatasetError(f"duplicate video id {vid!r}: {out[vid]} and {p}")
        out[vid] = p
    return out


def load(cfg: DatasetConfig | dict[str, Any], name: str = "folder") -> Manifest:
    cfg = parse_config(cfg, name)
    folder = Path(cfg.videos) if cfg.videos else cfg.root_path
    found = scan(folder, cfg.recursive)
    samples = []
    for vid, path in found.items():
        info = probe(str(path), cfg.decode_check)
        duration = info.duration or 0.0
        n = segment_count(duration, cfg.segment_hop) if duration > 0 else 0
        samples.append(Sample(vid, vid, "unlabeled", str(path), duration, n, present=True))
    log.info("%d videos in %s", len(samples), folder)
    meta = {"videos": str(folder), "recursive": cfg.recursive, "anomalies": {}}
    return Manifest(name, "folder", [], samples, [], cfg.segment_hop, cfg.segment_win, meta)
