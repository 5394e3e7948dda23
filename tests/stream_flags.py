"""Mark videos of a test store as lacking its stream, as extraction does: the store's
``has_audio`` / ``has_video`` flag False and the video's feature rows all zero."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

from avpipe.io.store_layout import INDEX_ARRAYS, consolidate, create_array


def drop_stream(store: Path, flag: str, video_ids: Sequence[str]) -> None:
    """Set ``flag`` False (True for the other videos) and zero every per-video array
    of ``video_ids`` in ``store``."""
    g = zarr.open_group(str(store), mode="a")
    ids = [str(v) for v in g["video_id"][:]]
    rows = [ids.index(v) for v in video_ids]
    for name in [k for k in g.array_keys() if k not in INDEX_ARRAYS]:
        for r in rows:
            g[name][r] = 0
    flags = np.asarray(g[flag][:], bool) if flag in g else np.ones(len(ids), bool)
    flags[rows] = False
    if flag in g:
        g[flag][:] = flags
    else:
        create_array(g, flag, flags.shape, bool, ("video",), flags.shape)[:] = flags
        consolidate(str(store))  # a new array: list it in the consolidated metadata
