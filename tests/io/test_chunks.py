"""Whole-chunk reads from the chunk files (avpipe.io.chunks) against zarr's indexing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec, TransposeCodec

from avpipe.io.chunks import ChunkFiles, read_rows

COMPRESSORS = {
    "zstd": "auto",
    "none": None,
    "blosc_lz4": (BloscCodec(cname="lz4", shuffle="shuffle"),),
    "blosc_zstd": (BloscCodec(cname="zstd", shuffle="bitshuffle"),),
    "gzip": (GzipCodec(level=1),),
}


def _array(root: Path, name: str, per_chunk: int, dtype: str = "float16", **kw) -> zarr.Array:
    """(11, 4, 3, 5) random values, 9 as fill value; rows 4 and 5 all fill value (their
    chunk is not written when it holds nothing else); the last chunk is partial for
    per_chunk 2 or 3."""
    a = np.random.default_rng(per_chunk).standard_normal((11, 4, 3, 5)).astype(dtype)
    a[4:6] = 9
    g = zarr.open_group(str(root), mode="a")
    z = g.create_array(name, shape=a.shape, chunks=(per_chunk, 4, 3, 5), dtype=dtype,
                       fill_value=9, **kw)  # fmt: skip
    z[...] = a
    return z


@pytest.mark.parametrize("codec", list(COMPRESSORS))
@pytest.mark.parametrize("per_chunk", [1, 2, 3])
def test_chunk_files_read_what_zarr_reads_bit_for_bit(
    tmp_path: Path, codec: str, per_chunk: int
) -> None:
    z = _array(tmp_path / "s.zarr", "x", per_chunk, compressors=COMPRESSORS[codec])
    files = ChunkFiles.of(z)
    assert files is not None
    if per_chunk == 1:
        assert not (files.root / "c" / "4").exists()  # a missing chunk: the fill value
    rows = np.array([10, 4, 0, 5, 7, 0, 9, 3])  # repeats, unsorted, the partial last chunk
    for T in (4, 2):
        want = z[...][rows, :T]
        out = np.full((len(rows), T, 3, 5), np.nan, np.float16)
        got = read_rows(z, rows, T, out=out, files=files)
        assert got is out
        assert got.tobytes() == want.tobytes()  # bit for bit (NaN-free, -0.0 kept)


def test_arrays_zarr_must_index_read_the_same_through_zarr(tmp_path: Path) -> None:
    root = tmp_path / "s.zarr"
    sharded = _array(root, "sharded", 1, shards=(2, 4, 3, 5))
    transposed = _array(root, "t", 1, filters=(TransposeCodec(order=(0, 1, 3, 2)),))
    split_rows = zarr.open_group(str(root), mode="a").create_array(
        "rows", shape=(6, 4, 3), chunks=(1, 2, 3), dtype="float32", fill_value=0
    )
    split_rows[...] = np.arange(72, dtype=np.float32).reshape(6, 4, 3)
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(3, 2), dtype="int32")
    for z in (sharded, transposed, split_rows, memory):
        assert ChunkFiles.of(z) is None
        rows = np.array([2, 0, 1])
        assert np.array_equal(read_rows(z, rows, 2), z[...][rows, :2])


def test_a_damaged_chunk_file_names_the_file(tmp_path: Path) -> None:
    z = _array(tmp_path / "s.zarr", "x", 1)
    files = ChunkFiles.of(z)
    (files.root / "c" / "2" / "0" / "0" / "0").write_bytes(b"not zstd")
    with pytest.raises(ValueError, match=r"c/2/0/0/0: chunk does not decode"):
        read_rows(z, np.array([2]), 4, files=files)
    raw = ChunkFiles.of(_array(tmp_path / "s.zarr", "raw", 1, compressors=None))
    (raw.root / "c" / "1" / "0" / "0" / "0").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match=r"c/1/0/0/0: 10 bytes, expected 120"):
        raw.read_into(np.array([1]), 4, np.empty((1, 4, 3, 5), np.float16))
