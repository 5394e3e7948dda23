"""How the per-video arrays of a feature store are compressed, and re-encoding a store.

Three choices, named in ``codec`` options (``avpipe extract import --codec``,
``avpipe extract recompress``, :class:`~avpipe.io.store.ArraySpec`):

``zstd``  zarr's default for numbers (Zstandard level 0), the default: the smallest store;
          decoding a (10, 7, 7, 512) float16 map costs about 0.45 ms of CPU on the
          development box, more than the rest of a training loader's work together.
``lz4``   Blosc with LZ4 and byte shuffle: decodes about 6 times faster than zstd, and
          compresses less.
``none``  raw little-endian bytes: the largest store, read at the speed of the disk or
          the page cache.

docs/benchmarks.md ("Store codecs") has the measured sizes and loader costs.  The
index arrays (ids, masks, segment counts) are small and keep zarr's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr
from zarr.codecs import BloscCodec, ZstdCodec

CODECS = ("zstd", "lz4", "none")
DEFAULT_CODEC = "zstd"


def compressors(codec: str) -> Any:
    """The ``compressors`` argument of ``zarr.Group.create_array`` for store codec ``codec``."""
    if codec == "zstd":
        return "auto"  # zarr's default: ZstdCodec(level=0), as stores have always had
    if codec == "lz4":
        return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)
    if codec == "none":
        return None
    raise ValueError(f"unknown store codec {codec!r} (known: {', '.join(CODECS)})")


def codec_of(z: zarr.Array) -> str:
    """The store codec name of array ``z``; ``ValueError`` for compressors avpipe does not
    write (the array reads fine, it only cannot be named here)."""
    comp = tuple(z.compressors)
    if not comp:
        return "none"
    if len(comp) == 1 and isinstance(comp[0], ZstdCodec) and comp[0].level == 0:
        return "zstd"
    if len(comp) == 1 and isinstance(comp[0], BloscCodec) and comp[0].cname.value == "lz4":
        return "lz4"
    raise ValueError(f"{z.store_path}: compressors {comp} are none of {', '.join(CODECS)}")


def recompress(src: str | Path, out: str | Path, codec: str) -> Path:
    """Copy the feature store ``src`` to ``out`` with its per-video arrays in ``codec``
    (same values, chunks, attributes and index), one chunk in memory at a time; ``out`` is
    complete or absent."""
    from avpipe.io.store_layout import INDEX_ARRAYS, consolidate
    from avpipe.utils.atomic import atomic_path

    compressors(codec)  # an unknown name fails before anything is written
    src, out = Path(src), Path(out)
    if not (src / "zarr.json").exists():
        raise FileNotFoundError(f"{src} is not a feature store (no zarr.json)")
    group = zarr.open_group(str(src), mode="r")
    with atomic_path(out, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        root.attrs.update(dict(group.attrs))
        for name in group.array_keys():
            a = group[name]
            z = root.create_array(
                name,
                shape=a.shape,
                dtype=a.dtype,
                chunks=a.chunks,
                fill_value=a.fill_value,
                dimension_names=a.metadata.dimension_names,
                attributes=dict(a.attrs),
                compressors="auto" if name in INDEX_ARRAYS else compressors(codec),
            )
            step = int(a.chunks[0])
            for lo in range(0, a.shape[0], step):
                z[lo : lo + step] = a[lo : lo + step]
        consolidate(root.store)
    return out
