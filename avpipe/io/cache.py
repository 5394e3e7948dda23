"""Content-addressed per-video cache of extracted features (outside Snakemake's outputs).

Snakemake deletes a job's outputs before it runs the job, and it reruns an extraction
shard job when the manifest changes (adding videos) or when any recipe of the dataset
changes.  This cache lets such a job compute only what it has not computed before: one
entry per (video, recipe), at ``<root>/<key[:2]>/<key>.npz``, holding the per-video
arrays exactly as they go into the store; and one ``DecodeCache`` entry per video
(``.json``: segments, duration, streams, status), so that a video whose recipes are all
cached is not even decoded.

The key (sha256) covers everything the arrays depend on:

* the video file's content (``file_digest``: sha256 of its bytes, about 1 ms per MB;
  cheaper than decoding and independent of the path);
* ``material``: the recipe, its resolved options and spec (weights, grid), the decoding
  settings, where frames are resized (workers or device), the device type and precision,
  and ``source_hash`` of the feature and decoding code.

An entry that cannot be read, or whose arrays do not have the expected names, shapes and
dtypes, is ignored (the video is recomputed and the entry rewritten).  Entries are written
atomically (``avpipe/utils/atomic.py``), so concurrent jobs (the last writer of an entry
wins) and interrupted writes are safe.
Nothing ever expires: delete the folder to reclaim space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avpipe.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

_N = "__n_segments__"


def file_digest(path: str | Path, block: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Per-video feature arrays keyed by (video file content, ``material``)."""

    def __init__(self, root: str | Path, material: Mapping[str, Any]):
        self.root = Path(root)
        blob = json.dumps(material, sort_keys=True, default=str).encode()
        self._base = hashlib.sha256(blob).digest()
        self.hits = 0
        self.misses = 0
        self.ignored = 0  # unreadable or mismatched entries (then recomputed)

    def key(self, digest: str) -> str:
        """The entry name of the video whose file has ``file_digest`` ``digest``."""
        return hashlib.sha256(self._base + digest.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(
        self,
        key: str,
        n_segments: int,
        expect: Mapping[str, tuple[int, ...]],
        *,
        count: bool = True,
    ) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None when absent, unreadable or not of the ``expect`` shapes."""
        path = self.path(key)
        if not path.is_file():
            self.misses += count
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            n = int(data.pop(_N))
            if n != n_segments or set(data) != set(expect):
                raise ValueError(f"holds {sorted(data)} for {n} segments")
            for k, shape in expect.items():
                if data[k].shape != tuple(shape) or not np.isfinite(data[k]).all():
                    raise ValueError(f"{k!r} is {data[k].shape}, or not finite")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("cache entry %s ignored (%s): recomputing", path, e)
            self.ignored += count
            self.misses += count
            return None
        self.hits += count
        return data

    def put(self, key: str, n_segments: int, arrays: Mapping[str, np.ndarray]) -> None:
        path = self.path(key)
        # a file object: given a name, np.savez would append ".npz" to the temporary name
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(fh, **{_N: np.int64(n_segments)}, **dict(arrays))


class DecodeCache:
    """What decoding found out about a video (``.json``), keyed by (file content, ``material``)."""

    def __init__(self, root: str | Path, material: Mapping[str, Any]):
        self.root = Path(root)
        blob = json.dumps(material, sort_keys=True, default=str).encode()
        self._base = hashlib.sha256(blob).digest()

    def path(self, digest: str) -> Path:
        key = hashlib.sha256(self._base + digest.encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, digest: str) -> dict[str, Any] | None:
        path = self.path(digest)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("cache entry %s ignored (%s): decoding again", path, e)
            return None

    def put(self, digest: str, info: Mapping[str, Any]) -> None:
        write_json(self.path(digest), dict(info))
