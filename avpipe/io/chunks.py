"""Whole-chunk reads of store arrays, straight from the chunk files.

``z[rows, :T]`` through zarr costs, per chunk, an indexing plan, an asyncio round trip
and a copy of the decoded chunk into the result: about 0.3-0.5 ms of CPU per
one-video chunk on the development box, as much as decoding it (docs/benchmarks.md).
A training loader reads every video once per epoch, so for a local Zarr v3 array whose
chunks hold whole rows (``chunks = (k, *shape[1:])``: the layout of
:mod:`avpipe.io.store`) :class:`ChunkFiles` does what the Zarr v3 specification
("Chunk key encoding", "Codecs") says a reader does, and nothing else: it finds each
chunk's file by the array's chunk key encoding, reads its bytes and undoes the declared
codecs (``bytes`` in little-endian or for one-byte types, then at most one of
``zstd``, ``blosc``, ``gzip``, decoded by numcodecs, the library zarr-python itself
calls for them), writing a one-video chunk straight into the caller's buffer.  A
missing chunk file is the fill value, as in zarr; the last chunk is stored whole (the
specification pads edge chunks), so its rows sit where they sit in any chunk.

Anything else (sharding, transposes, checksums, big-endian bytes, Zarr v2, a store
that is not a local directory, chunks split inside a row) returns ``None`` from
:meth:`ChunkFiles.of`, and :func:`read_rows` then indexes with zarr: the same values,
only slower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import LocalStore

ENABLED = True  # False: every read goes through zarr's indexing (benchmarks compare the two)


def _numcodec(codec: Any) -> Any:
    """The numcodecs decoder of a zarr bytes-to-bytes codec, or None when not handled."""
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    if isinstance(codec, BloscCodec):
        return numcodecs.Blosc()  # a blosc frame describes its own compressor and shuffle
    if isinstance(codec, GzipCodec):
        return numcodecs.GZip(level=codec.level)
    return None


class ChunkFiles:
    """Reader of the chunk files of a local Zarr v3 array chunked along its first axis
    only (module docstring).  Build it with :meth:`of`."""

    def __init__(self, z: zarr.Array, decoders: list[Any]):
        self.root = Path(z.store.root) / z.path
        self.meta: ArrayV3Metadata = z.metadata
        self.rows_per_chunk = int(z.chunks[0])
        self.n = int(z.shape[0])
        self.chunk_shape = tuple(int(c) for c in z.chunks)
        self.dtype = np.dtype(z.dtype)
        self.fill = np.asarray(self.meta.fill_value, dtype=self.dtype)
        self.decoders = decoders
        self.nbytes = int(np.prod(self.chunk_shape)) * self.dtype.itemsize
        self._buf = bytearray()

    @classmethod
    def of(cls, z: zarr.Array) -> ChunkFiles | None:
        """A reader for ``z``, or None when ``z`` needs zarr's own indexing."""
        meta = z.metadata
        if not (ENABLED and isinstance(meta, ArrayV3Metadata) and isinstance(z.store, LocalStore)):
            return None
        if tuple(z.chunks[1:]) != tuple(z.shape[1:]) or z.ndim < 2:
            return None
        first, *rest = meta.codecs
        if not isinstance(first, BytesCodec):  # array-to-array codecs (transpose), sharding
            return None
        dtype = np.dtype(z.dtype)
        if dtype.itemsize > 1 and (first.endian is None or first.endian.value != sys.byteorder):
            return None
        decoders = [_numcodec(c) for c in rest]
        if len(decoders) > 1 or any(d is None for d in decoders):
            return None
        return cls(z, decoders)

    def _path(self, chunk: int) -> Path:
        return self.root / self.meta.encode_chunk_key((chunk,) + (0,) * (len(self.chunk_shape) - 1))

    def _read(self, path: Path, dest: np.ndarray) -> bool:
        """Read and decode the chunk file ``path`` into ``dest`` (the chunk's shape,
        C-contiguous); False when there is no such file (the chunk is the fill value)."""
        try:
            f = path.open("rb", buffering=0)
        except FileNotFoundError:
            return False
        with f:
            size = os.fstat(f.fileno()).st_size
            if not self.decoders:  # raw bytes: read straight into dest
                if size != self.nbytes:
                    raise ValueError(f"{path}: {size} bytes, expected {self.nbytes} (uncompressed)")
                _read_fully(f, memoryview(dest.reshape(-1).view(np.uint8)), path)
                return True
            if len(self._buf) < size:  # one buffer for the compressed bytes, reused
                self._buf = bytearray(size)
            data = memoryview(self._buf)[:size]
            _read_fully(f, data, path)
        try:
            self.decoders[0].decode(data, out=dest)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: chunk does not decode to {self.chunk_shape}: {e}") from e
        return True

    def read_into(self, rows: np.ndarray, T: int, out: np.ndarray) -> None:
        """``out[i] = z[rows[i], :T]`` for every i (``out`` C-contiguous); each chunk is
        read and decoded once."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"{self.root}: rows outside 0..{self.n - 1}")
        if not out.flags.c_contiguous:
            raise ValueError("read_into needs a C-contiguous output array")
        direct = self.rows_per_chunk == 1 and self.chunk_shape[1] == T
        chunk = rows // self.rows_per_chunk
        order = np.argsort(chunk, kind="stable")
        bounds = np.flatnonzero(np.diff(chunk[order])) + 1
        block = None if direct else np.empty(self.chunk_shape, self.dtype)
        for where in np.split(order, bounds):
            if not where.size:
                continue
            c = int(chunk[where[0]])
            dest = out[where[0]].reshape(self.chunk_shape) if direct else block
            if not self._read(self._path(c), dest):
                out[where] = self.fill
            elif direct:
                out[where[1:]] = out[where[0]]
            else:
                out[where] = block[rows[where] - c * self.rows_per_chunk, :T]


def _read_fully(f: Any, view: memoryview, path: Path) -> None:
    """Fill ``view`` from the open file ``f`` (a raw read may return less than asked)."""
    n = 0
    while n < len(view):
        got = f.readinto(view[n:])
        if not got:
            raise ValueError(f"{path}: file ended after {n} of {len(view)} bytes")
        n += got


def read_rows(
    z: zarr.Array,
    rows: np.ndarray,
    T: int,
    out: np.ndarray | None = None,
    files: ChunkFiles | None = None,
) -> np.ndarray:
    """``z[rows, :T]`` in the store's dtype, into ``out`` when given (C-contiguous,
    ``(len(rows), T, *z.shape[2:])``), reading each chunk once: through ``files``
    (:class:`ChunkFiles` of ``z``) when given, else with zarr (a multi-video chunk is
    decoded once for all of its rows the batch needs, not once per row)."""
    rows = np.asarray(rows, dtype=np.int64)
    if out is None:
        out = np.empty((len(rows), T, *z.shape[2:]), dtype=z.dtype)
    if files is not None:
        files.read_into(rows, T, out)
        return out
    cs = int(z.chunks[0])
    if cs == 1:
        for i, r in enumerate(rows):
            out[i] = z[int(r), :T]
        return out
    chunk = rows // cs
    for c in np.unique(chunk):
        where = np.flatnonzero(chunk == c)
        lo = int(c) * cs
        block = z[lo : min(lo + cs, z.shape[0]), :T]
        out[where] = block[rows[where] - lo]
    return out
