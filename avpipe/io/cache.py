"""Content-addressed per-video cache of extracted features (outside Snakemake's outputs).

Snakemake deletes a job's outputs before it runs the job, and it reruns every decode and
extract shard job when the manifest changes (adding videos).  This cache lets a rerun
shard job compute only the videos it has not seen: one entry per (video, recipe), at
``<root>/<key[:2]>/<key>.npz``, holding the per-video arrays exactly as they were passed
to the store writer.

The key (sha256) covers everything the arrays depend on:

* the extractor's input for that video, i.e. the decoded segments it would read (frames
  picked for the recipe, or the audio windows), with their shape and dtype: this covers
  the video file's content, the decode plan and the decoder (the decoded shard holds no
  file paths, and hashing what the model sees is cheaper than hashing the source file);
* ``material``: the recipe, its resolved options, the extractor spec (weights included),
  the decode plan, the device type and precision, and ``source_hash("features")``.

An entry that cannot be read, or whose arrays do not have the expected names, shapes and
dtypes, is ignored (the video is recomputed and the entry rewritten).  Entries are written
atomically (``avpipe/utils/atomic.py``), so concurrent jobs and interrupted writes are safe.
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

from avpipe.utils.atomic import atomic_path

log = logging.getLogger(__name__)

_N = "__n_segments__"


class FeatureCache:
    """Per-video feature arrays keyed by (extractor input, ``material``)."""

    def __init__(self, root: str | Path, material: Mapping[str, Any]):
        self.root = Path(root)
        blob = json.dumps(material, sort_keys=True, default=str).encode()
        self._base = hashlib.sha256(blob).digest()
        self.hits = 0
        self.misses = 0
        self.ignored = 0  # unreadable or mismatched entries (then recomputed)

    def key(self, inputs: np.ndarray, n_segments: int) -> str:
        """The entry name of a video whose extractor input is ``inputs``."""
        a = np.ascontiguousarray(inputs)
        h = hashlib.sha256(self._base)
        h.update(f"{n_segments}|{a.dtype.str}|{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
        return h.hexdigest()

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
