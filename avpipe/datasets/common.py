"""What every dataset adapter shares: its config, errors, anomaly log, media lookup.

One config dataclass serves every format (``config/config.yaml: datasets.<name>``,
schema ``workflow/schemas/datasets.schema.yaml``); each adapter reads the keys
that concern it.  Paths: ``root`` and ``videos`` are relative to the working
directory; the per-file keys (``annotations``, ``split_dir``, ``eval_audio``,
``eval_visual``, ``classes_file``, ``labels``) are relative to ``root``.

Bad input is never dropped silently: a line that cannot be parsed raises
:class:`DatasetError` naming the file and line; known quirks of the released
annotations (AVE's cross-split videos, LLP's unmatched dense rows, ...) go to
:class:`Anomalies`, which ``meta.json`` carries, or raise when
``on_anomaly: raise``.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from avpipe.config import from_dict
from avpipe.datasets.manifest import Sample, segment_count
from avpipe.datasets.probe import probe

log = logging.getLogger(__name__)

# Containers PyAV (FFmpeg) demuxes, in preference order when one id has several files:
# video containers first, then audio-only ones (a sample without a video stream).
VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".webm",
    ".avi",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".ts",
    ".mts",
    ".m2ts",
    ".3gp",
    ".3g2",
    ".ogv",
    ".asf",
    ".vob",
)
AUDIO_EXTENSIONS = (
    ".m4a",
    ".mka",
    ".mp3",
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".aac",
    ".ac3",
    ".wma",
    ".aif",
    ".aiff",
    ".amr",
    ".caf",
)
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
MAX_EXAMPLES = 10


class DatasetError(ValueError):
    """An annotation file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:`` in config.yaml (see datasets.schema.yaml for each key)."""

    format: str
    root: str
    videos: str | None = None
    generated: bool = False
    on_anomaly: Literal["report", "raise"] = "report"
    probe: bool = True
    decode_check: bool = True
    nominal_duration: float = 10.0
    segment_hop: float = 1.0
    segment_win: float = 1.0
    annotations: str | None = None
    classes_file: str | None = None
    splits: Literal["auto", "txt", "h5"] = "auto"
    split_dir: str | None = None
    eval_audio: str = "AVVP_eval_audio.csv"
    eval_visual: str = "AVVP_eval_visual.csv"
    labels: str | None = None
    recursive: bool = False
    # recipe -> {released, format, ...}: stores imported from released files; the
    # annotated samples are then present without video files (the import checks them)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    @property
    def videos_path(self) -> Path:
        return Path(self.videos) if self.videos else self.root_path / "videos"

    def file(self, name: str) -> Path:
        """A per-file key resolved against ``root`` (absolute paths kept)."""
        p = Path(name)
        return p if p.is_absolute() else self.root_path / p


def parse_config(cfg: DatasetConfig | dict[str, Any], name: str) -> DatasetConfig:
    if isinstance(cfg, DatasetConfig):
        return cfg
    return from_dict(DatasetConfig, dict(cfg), where=f"datasets.{name}")


class Anomalies:
    """Counts and examples of reportable problems, keyed by kind.

    ``strict=True`` (``on_anomaly: raise``) turns the first one into a DatasetError.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._items: dict[str, dict[str, Any]] = {}

    def add(self, kind: str, where: str, detail: str, description: str = "") -> None:
        if self.strict:
            raise DatasetError(
                f"{where}: {detail} ({kind}; set on_anomaly: report to record instead)"
            )
        entry = self._items.setdefault(
            kind, {"count": 0, "examples": [], "description": description}
        )
        entry["count"] += 1
        if len(entry["examples"]) < MAX_EXAMPLES:
            entry["examples"].append(f"{where}: {detail}")

    def count(self, kind: str) -> int:
        return self._items.get(kind, {}).get("count", 0)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in sorted(self._items.items())}

    def log_summary(self) -> None:
        for kind, entry in sorted(self._items.items()):
            log.warning("anomaly %s: %d (e.g. %s)", kind, entry["count"], entry["examples"][0])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_files(paths: Iterable[Path]) -> dict[str, str]:
    """``{path: sha256}`` of the annotation files a manifest was built from."""
    return {str(p): sha256(p) for p in paths}


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a file; else a DatasetError naming ``what``, the path and ``hint``."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))
    return path


def read_text(path: Path, what: str = "annotation file") -> str:
    """The UTF-8 text of ``path`` (a BOM tolerated); every failure is one DatasetError.

    A missing file names ``what``; bytes that are not UTF-8 name the line and byte
    offset of the first bad byte, so the user can find it in an editor.
    """
    require_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        bad = data[start : start + 1].hex()
        raise DatasetError(
            f"{path}:{line}: not UTF-8 text (byte 0x{bad} at byte offset {start}: {e.reason}); "
            "save the file as UTF-8"
        ) from None


def read_lines(path: Path, what: str = "annotation file") -> list[str]:
    """Lines without line endings (CRLF tolerated); a trailing empty line is dropped."""
    return read_text(path, what).splitlines()


@dataclass(frozen=True)
class ClassList:
    """A dataset's classes (index = position), how they were chosen and where from.

    ``order`` is ``file`` (``classes_file``), ``<format>-reference`` (the published
    list) or ``first-appearance``; ``source`` names the list in error messages.
    """

    names: list[str]
    order: str
    source: str

    def check(self, where: str, label: str) -> None:
        """Raise naming ``where``, the label and the closest known class if ``label`` is unknown."""
        if label in self.names:
            return
        close = difflib.get_close_matches(label, self.names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"{where}: unknown class {label!r} (not in {self.source}){hint}")


def choose_classes(
    cfg: DatasetConfig, labels: list[tuple[str, str]], reference: tuple[str, ...], fmt: str
) -> ClassList:
    """The class list of a format with a published one, checked against ``labels``.

    ``labels``: ``(where, label)`` in file order.  The rule:

    1. ``classes_file`` set: that list; any other label is an error.
    2. else, if any label is one of the ``reference`` classes, the data is that
       dataset: the reference list in reference order; any other label (a typo)
       is an error naming its file and line, with the closest reference class.
    3. else (a layout of one's own, e.g. the synthetic data): first appearance,
       unchecked; set ``classes_file`` to have the labels checked.
    """
    if cfg.classes_file is not None:
        path = cfg.file(cfg.classes_file)
        classes = ClassList(read_class_file(path), "file", f"classes_file {path}")
    elif any(label in reference for _, label in labels):
        classes = ClassList(
            list(reference),
            f"{fmt}-reference",
            f"the {len(reference)} {fmt.upper()} classes; "
            "set classes_file for a class list of your own",
        )
    else:
        names = list(dict.fromkeys(label for _, label in labels))
        log.info(
            "no %s class name in the labels: %d classes in first-appearance order",
            fmt.upper(),
            len(names),
        )
        return ClassList(names, "first-appearance", "the classes of the labels")
    for where, label in labels:
        classes.check(where, label)
    return classes


def parse_number(text: str, where: str, what: str, integer: bool) -> float:
    """``text`` as a number; raises naming ``where`` when it is not one."""
    pattern = r"[+-]?\d+" if integer else r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
    if not re.fullmatch(pattern, text.strip()):
        kind = "an integer" if integer else "a number"
        raise DatasetError(f"{where}: {what} {text!r} is not {kind}")
    return float(text)


def read_class_file(path: Path) -> list[str]:
    classes: list[str] = []
    for i, line in enumerate(read_lines(path, "class list (classes_file)"), 1):
        name = line.strip()
        if not name:
            continue
        if name in classes:
            raise DatasetError(f"{path}:{i}: duplicate class {name!r}")
        classes.append(name)
    if not classes:
        raise DatasetError(f"{path}: no class names")
    return classes


# -- media --------------------------------------------------------------------------
def index_videos(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the media files in ``folder`` (earlier ``MEDIA_EXTENSIONS`` win)."""
    if not folder.is_dir():
        log.warning("video folder %s does not exist: every video counts as missing", folder)
        return {}
    rank = {ext: i for i, ext in enumerate(MEDIA_EXTENSIONS)}
    out: dict[str, Path] = {}
    for p in folder.iterdir():
        ext = p.suffix.lower()
        if ext not in rank or not p.is_file():
            continue
        old = out.get(p.stem)
        if old is None or rank[ext] < rank[old.suffix.lower()]:
            out[p.stem] = p
    return out


def make_sample(
    cfg: DatasetConfig,
    media: dict[str, Path],
    sample_id: str,
    video_id: str,
    split: str,
    duration: float,
    row: int | None = None,
    n_segments: int | None = None,
) -> Sample:
    """A Sample whose path, presence and (probed) duration come from the video folder.

    With released features (``cfg.features``) every annotated sample is present: its
    features come from the release, whose import fails on a missing video.

    ``duration`` is the nominal/annotated length, used when the file is absent or
    cannot be probed.  ``n_segments`` follows the config's segment grid, unless given
    (segments fixed by the labels: VGGSound-AVEL100k).
    """
    path = media.get(video_id)
    present = path is not None or bool(cfg.features)
    if path is None:
        path = cfg.videos_path / f"{video_id}.mp4"
    elif cfg.probe:
        info = probe(str(path), cfg.decode_check)
        if info.duration is not None and info.duration > 0:
            duration = info.duration
    return Sample(
        sample_id=sample_id,
        video_id=video_id,
        split=split,
        path=str(path),
        duration=duration,
        n_segments=(
            segment_count(duration, cfg.segment_hop, cfg.segment_win)
            if n_segments is None
            else n_segments
        ),
        present=present,
        row=row,
    )
