"""Complete-or-absent outputs.

Every file or directory a stage produces is written under a temporary sibling
name and renamed into place only once it is finished, so that for Snakemake
(and for a user) "the path exists" means "the output is complete".  A job that
is killed midway leaves at most a ``.tmp-*`` sibling, which the next run removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")


def remove_stale_tmp(path: Path) -> None:
    """Delete leftovers of earlier interrupted writes of ``path``."""
    for stale in path.parent.glob(f"{path.name}{TMP_MARK}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on error delete it.

    ``directory=True`` creates the temporary directory first (for Zarr stores and
    other directory outputs).  An existing ``path`` is replaced.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(final)
    tmp = _tmp_sibling(final)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final.exists():
        _remove(final)
    os.replace(tmp, final)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_tsv(path: str | os.PathLike[str], header: list[str], rows: list[list[Any]]) -> None:
    """Write a tab-separated table with a header row; ``None`` becomes an empty cell."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        s = str(v)
        if "\t" in s or "\n" in s:
            raise ValueError(f"TSV cell contains a tab or newline: {s!r}")
        return s

    lines = ["\t".join(header)] + ["\t".join(cell(v) for v in row) for row in rows]
    write_text(path, "\n".join(lines) + "\n")
