"""Store codecs (avpipe.io.store_codec): writing, gathering and re-encoding a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avpipe.cli import main
from avpipe.io.chunks import ChunkFiles, read_rows
from avpipe.io.store import ArraySpec, FeatureStore, StoreWriter, gather_stores
from avpipe.io.store_codec import codec_of


def _store(path: Path, codec: str, ids: list[str]) -> np.ndarray:
    """Maps (T 3, 4x4x64) float16, one video per chunk; the second video left at zero."""
    rng = np.random.default_rng(len(ids))
    x = rng.standard_normal((len(ids), 3, 4, 4, 64)).astype(np.float16)
    x[1] = 0
    spec = {"features": ArraySpec((4, 4, 64), "float16", codec=codec)}
    with StoreWriter(path, len(ids), 3, spec, {"recipe": "r"}, flags=("has_video",)) as w:
        for i, v in enumerate(ids):
            w.add(v, 3, None if i == 1 else {"features": x[i]}, {"has_video": i != 1})
    return x


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_a_codec_is_kept_by_gather_and_changed_by_recompress(tmp_path: Path, codec: str) -> None:
    ids = [f"v{i}" for i in range(4)]
    x = _store(tmp_path / "s.zarr", codec, ids)
    gather_stores([tmp_path / "s.zarr"], tmp_path / "all.zarr", {})
    gathered = FeatureStore(tmp_path / "all.zarr").array()
    assert codec_of(gathered) == codec and ArraySpec.of(gathered).codec == codec
    assert main(["extract", "recompress", str(tmp_path / "all.zarr"), "--codec", "zstd",
                 "--out", str(tmp_path / "z.zarr")]) == 0  # fmt: skip
    src, out = FeatureStore(tmp_path / "all.zarr"), FeatureStore(tmp_path / "z.zarr")
    assert codec_of(out.array()) == "zstd" and codec_of(out.array("mask")) == "zstd"
    assert out.video_ids == ids and out.attrs == src.attrs
    assert out.has_audio is None and out.group["has_video"][:].tolist() == [1, 0, 1, 1]
    assert out.array().metadata.dimension_names == src.array().metadata.dimension_names
    got = out.array()[...]
    assert got.tobytes() == x.tobytes() == src.array()[...].tobytes()
    files = ChunkFiles.of(out.array())
    assert read_rows(out.array(), np.array([3, 1]), 3, files=files).tobytes() == x[[3, 1]].tobytes()
    raw = (tmp_path / "s.zarr" / "features" / "c" / "0" / "0" / "0" / "0" / "0").stat().st_size
    if codec == "none":
        assert raw == np.prod(src.array().chunks) * 2  # the raw bytes of a float16 chunk


def test_unknown_codecs_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown store codec 'lzma' .known: zstd, lz4, none"):
        ArraySpec((4,), "float32", codec="lzma")
    from avpipe.io.store_codec import recompress

    _store(tmp_path / "s.zarr", "zstd", ["a", "b"])
    with pytest.raises(ValueError, match="unknown store codec 'lzma'"):
        recompress(tmp_path / "s.zarr", tmp_path / "o.zarr", "lzma")
    assert not (tmp_path / "o.zarr").exists()
    with pytest.raises(FileNotFoundError, match="nope.zarr is not a feature store"):
        recompress(tmp_path / "nope.zarr", tmp_path / "o.zarr", "none")
