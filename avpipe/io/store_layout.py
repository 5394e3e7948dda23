"""Dimension names, coordinates and index arrays of the feature-store layout.

:mod:`avpipe.io.store` describes the layout; this module makes a store open as an
``xarray.Dataset`` (``xarray.open_zarr``) without avpipe: Zarr 3 ``dimension_names``
on every array, ``video_id`` and ``segment_start_s`` named in the per-video arrays'
``coordinates`` attribute, variable-length UTF-8 ids (the fixed-width numpy unicode dtype
has no Zarr 3 specification and zarr warns about it), and consolidated metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from avpipe.io.store_codec import DEFAULT_CODEC, compressors

INDEX_ARRAYS = ("video_id", "segment_start_s", "n_segments", "mask", "has_audio", "has_video")
VIDEO, SEGMENT, FRAME = "video", "segment", "frame"
TRAILING_DIMS = {1: ("channel",), 3: ("y", "x", "channel")}  # vectors, maps (H, W, C)
COORDINATES = {"video_id": (VIDEO,), "segment_start_s": (SEGMENT,)}


def dimension_names(ndim: int, per_frame: bool = False) -> tuple[str, ...]:
    """Axis names of an (N, T[, k], ...) store array: video, segment[, frame], then channel
    (vectors) or y, x, channel (maps); other trailing axes are ``dim_<axis>``."""
    lead = ((VIDEO, SEGMENT, FRAME) if per_frame else (VIDEO, SEGMENT))[:ndim]
    rest = ndim - len(lead)
    return lead + TRAILING_DIMS.get(rest, tuple(f"dim_{len(lead) + i}" for i in range(rest)))


def check_sizes(layout: Mapping[str, tuple[tuple[str, ...], tuple[int, ...]]], where: str) -> None:
    """A dimension name has one size in a store (xarray refuses a store where it has two)."""
    seen: dict[str, tuple[str, int]] = {}
    for name, (dims, shape) in layout.items():
        for dim, size in zip(dims, shape, strict=True):
            first, n = seen.setdefault(dim, (name, size))
            if n != size:
                raise ValueError(
                    f"{where}: dimension {dim!r} has size {n} in array {first!r} "
                    f"but {size} in {name!r}; the arrays of a store must agree"
                )


def create_array(
    root: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    dims: tuple[str, ...],
    chunks: tuple[int, ...] | None,
    fill_value: Any = None,
    attributes: Mapping[str, Any] | None = None,
    codec: str = DEFAULT_CODEC,
) -> zarr.Array:
    """Array ``name`` with named dimensions ``dims``, compressed with store codec ``codec``
    (:mod:`avpipe.io.store_codec`); its ``coordinates`` attribute lists the store's
    coordinates along those dimensions, for xarray."""
    coords = " ".join(c for c, d in COORDINATES.items() if c != name and set(d) <= set(dims))
    return root.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        fill_value=fill_value,
        dimension_names=dims,
        compressors=compressors(codec),
        attributes={**(attributes or {}), **({"coordinates": coords} if coords else {})},
    )


def _hop_s(attrs: Mapping[str, Any]) -> float:
    """The store's segment hop: ``grid.hop_s``, or the 1-s segments of stores without a grid."""
    grid = attrs.get("grid")
    return float(grid["hop_s"]) if isinstance(grid, Mapping) and "hop_s" in grid else 1.0


def write_index(
    root: zarr.Group,
    video_ids: Sequence[str],
    n_segments: np.ndarray,
    t_max: int,
    flags: Mapping[str, Sequence[bool] | np.ndarray],
) -> None:
    """The index arrays and coordinates (module doc), then the consolidated metadata."""
    index = {
        "video_id": (np.asarray(video_ids, dtype=np.dtypes.StringDType()), (VIDEO,)),
        "segment_start_s": (np.arange(t_max) * _hop_s(root.attrs), (SEGMENT,)),
        "n_segments": (n_segments, (VIDEO,)),
        "mask": (np.arange(t_max)[None, :] < n_segments[:, None], (VIDEO, SEGMENT)),
        **{f: (np.asarray(v, dtype=bool), (VIDEO,)) for f, v in flags.items()},
    }
    about = {"segment_start_s": {"description": "start of segment t in s: t * grid.hop_s"}}
    for name, (a, dims) in index.items():
        chunks = a.shape if a.size else None
        z = create_array(root, name, a.shape, a.dtype, dims, chunks, attributes=about.get(name))
        if a.size:
            z[...] = a
    consolidate(root.store)


def consolidate(store: Any) -> None:
    """Write the consolidated metadata of the group at ``store`` (a path or zarr store):
    the last step of writing a store, and again after adding an array to one."""
    with warnings.catch_warnings():
        # zarr 3.1 calls consolidated metadata "not part of the Zarr format 3 specification";
        # zarr-python and xarray read it, and other readers still find every array's zarr.json
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(store)
