"""Complete-or-absent outputs.

Every file or directory a stage produces is written under a temporary sibling
name and renamed into place only once it is finished, so that for Snakemake
(and for a user) "the path exists" means "the output is complete".

Several processes may write the same path at once (the per-video caches of
``avpipe/io/cache.py`` are shared by concurrent jobs): each writes its own temporary
sibling, ``<name>.tmp-<host>-<pid>-<random>``, and the last rename wins; a file is
renamed over the old one in one step, a directory replaces the old one after moving
it aside.  A job that is killed midway leaves its temporary sibling behind; the next
write of the path removes it once its writer is known to be gone: a process of this
host that no longer runs, or, for other hosts (a cache on a shared file system) and
names without a pid, a sibling untouched for ``STALE_AFTER_S``.  A sibling whose
writer may still run is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
STALE_AFTER_S = 24 * 3600.0
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def is_stale(tmp: Path, now: float | None = None) -> bool:
    """Whether the writer of the temporary sibling ``tmp`` is gone (see the module doc)."""
    host, _, rest = tmp.name.rpartition(TMP_MARK)[2].partition("-")
    pid = rest.partition("-")[0]
    if host == _HOST and pid.isdigit():
        return not _running(int(pid))
    try:
        age = (time.time() if now is None else now) - tmp.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AFTER_S


def remove_stale_tmp(path: Path) -> None:
    """Delete leftovers of earlier interrupted writes of ``path`` (only whose writer is gone)."""
    for stale in path.parent.glob(f"{path.name}{TMP_MARK}*"):
        if not is_stale(stale):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _install(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, replacing what is there, even if others do the same."""
    while True:
        if tmp.is_dir() or (final.is_dir() and not final.is_symlink()):
            # rename() cannot replace a non-empty directory: move the old one aside first
            old = _tmp_sibling(final)
            with contextlib.suppress(FileNotFoundError):  # another writer moved it
                os.replace(final, old)
                _remove(old)
        try:
            os.replace(tmp, final)
            return
        except OSError as e:  # another writer's directory came in between: again
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise


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
    _install(tmp, final)


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
