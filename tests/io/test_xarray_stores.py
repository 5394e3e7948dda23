"""Every kind of feature store avpipe writes opens with ``xarray.open_zarr`` in a process
that never imports avpipe: named dimensions, the ``video_id`` and ``segment_start_s``
coordinates, the mask as a variable, the provenance attributes, the same numbers as plain
``zarr``, and no warning on writing or reading, even with Snakemake's timestamp file inside."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from avpipe.io.released import import_ave_h5, import_folder
from avpipe.io.store import ArraySpec, FeatureStore, StoreWriter, gather_stores

pytest.importorskip("xarray")

IDS = ["vid_c", "vid_a", "a-much-longer-video-id-than-sixteen-bytes"]
DIMS = {
    "audio": ("video", "segment", "channel"),
    "maps": ("video", "segment", "y", "x", "channel"),
    "frames": ("video", "segment", "frame", "channel"),
}

# Runs with -W error and must not import avpipe: what a user with only xarray does.
READER = """
import json, sys
import numpy as np
import xarray as xr

out = {}
for path, video_id, npz in json.loads(sys.argv[1]):
    ds = xr.open_zarr(path).set_xindex("video_id")
    one = ds.sel(video_id=video_id)
    np.savez(
        npz,
        **{name: one[name].values for name in ds.data_vars},
        segment_start_s=ds.segment_start_s.values,
        masked=one.features.where(one.mask).values,
    )
    out[path] = {
        "dims": {name: list(v.dims) for name, v in ds.variables.items()},
        "coords": sorted(ds.coords),
        "data_vars": sorted(ds.data_vars),
        "attrs": ds.attrs,
        "video_ids": [str(v) for v in ds.video_id.values],
    }
assert "avpipe" not in sys.modules, "the reader imported avpipe"
print(json.dumps(out))
"""


@pytest.fixture
def errors() -> Iterator[None]:
    """Every warning is an error inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _segments(i: int, t_max: int) -> int:
    return max(1, t_max - i)


def _writer_store(path: Path, kind: str, ids: list[str], t_max: int, seed: int) -> Path:
    """A store as extraction writes it: ``audio`` vectors with has_audio (0.5-s hop),
    ``maps`` (H, W, C) with has_video, or ``frames``: resnet152_llp's features and
    k = 3 frames per segment."""
    rng = np.random.default_rng(seed)
    shape = {"audio": (6,), "maps": (2, 3, 4), "frames": (5,)}[kind]
    specs = {"features": ArraySpec(shape, "float16" if kind == "maps" else "float32")}
    if kind == "frames":
        specs["frames"] = ArraySpec(shape, "float16", frames=3)
    flag = "has_audio" if kind == "audio" else "has_video"
    hop = 0.5 if kind == "audio" else 1.0
    attrs = {"recipe": kind, "config_hash": "h", "grid": {"hop_s": hop, "window_s": 1.0}}
    with StoreWriter(path, len(ids), t_max, specs, attrs, flags=(flag,)) as w:
        for i, v in enumerate(ids):
            n = _segments(i, t_max)
            arrays = {k: rng.normal(size=(n * a.steps, *a.shape)) for k, a in specs.items()}
            if kind == "frames":
                arrays["features"] = arrays["frames"].reshape(n, 3, *shape).mean(1)
            w.add(v, n, None if i == 1 else arrays, {flag: i != 1})
    (path / ".snakemake_timestamp").touch()  # as Snakemake leaves in directory() outputs
    return path


@pytest.fixture
def stores(tmp_path: Path, errors: None) -> dict[str, Path]:
    out = {
        kind: _writer_store(tmp_path / f"{kind}.zarr", kind, IDS, 4, k)
        for k, kind in enumerate(("audio", "maps", "frames"))
    }
    shards = [
        _writer_store(tmp_path / "shard0.zarr", "frames", ["x_b", "x_d"], 3, 10),
        _writer_store(tmp_path / "shard1.zarr", "frames", ["x_a", "x_c"], 5, 11),
    ]
    out["gathered"] = gather_stores(shards, tmp_path / "gathered.zarr", {"gathered": True})
    with h5py.File(tmp_path / "visual_feature.h5", "w") as f:
        f["avadataset"] = np.random.default_rng(5).random((2, 10, 2, 2, 3))
    out["released_h5"] = import_ave_h5(
        tmp_path / "visual_feature.h5", tmp_path / "v.zarr", "vgg19_pool5"
    )
    folder = tmp_path / "res152"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for v, t in (("yt_b", 10), ("yt_a", 5)):
        np.save(folder / f"{v}.npy", rng.random((8 * t, 4)))
    out["released_npy"] = import_folder(folder, tmp_path / "r.zarr", "resnet152_llp", "llp_npy")
    for path in out.values():
        (path / ".snakemake_timestamp").touch()
    return out


def _read_with_xarray(targets: list[tuple[Path, str, Path]]) -> dict[str, dict]:
    arg = json.dumps([[str(p), v, str(npz)] for p, v, npz in targets])
    r = subprocess.run(
        [sys.executable, "-W", "error", "-c", READER, arg],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_every_store_kind_opens_with_xarray_alone(stores: dict[str, Path], tmp_path: Path) -> None:
    picks = {name: zarr.open_group(str(p), mode="r")["video_id"][-1] for name, p in stores.items()}
    targets = [(p, str(picks[name]), tmp_path / f"{name}.npz") for name, p in stores.items()]
    seen = _read_with_xarray(targets)
    for (path, video_id, npz), name in zip(targets, stores, strict=True):
        info = seen[str(path)]
        g = zarr.open_group(str(path), mode="r")
        row = [str(v) for v in g["video_id"][:]].index(video_id)
        kind = (
            "audio" if name == "audio" else "maps" if name in ("maps", "released_h5") else "frames"
        )
        flag = "has_audio" if name == "audio" else "has_video"
        # named dimensions, coordinates, the mask and the flags as variables
        assert info["coords"] == ["segment_start_s", "video_id"]
        assert set(info["data_vars"]) == {"features", "mask", "n_segments", flag} | (
            {"frames"} if kind == "frames" else set()
        )
        assert info["dims"]["features"] == list(DIMS[kind if kind != "frames" else "audio"])
        if kind == "frames":
            assert info["dims"]["frames"] == list(DIMS["frames"])
        assert info["dims"]["mask"] == ["video", "segment"]
        assert (
            info["dims"]["video_id"]
            == info["dims"]["n_segments"]
            == info["dims"][flag]
            == ["video"]
        )
        assert info["dims"]["segment_start_s"] == ["segment"]
        assert info["attrs"] == dict(g.attrs)
        assert info["video_ids"] == [str(v) for v in g["video_id"][:]]
        # the same numbers as plain zarr
        got = np.load(npz)
        for var in ("features", "mask", "n_segments", flag, *(["frames"] * (kind == "frames"))):
            np.testing.assert_array_equal(got[var], g[var][row], err_msg=f"{name}: {var}")
        hop = float(g.attrs["grid"]["hop_s"])
        np.testing.assert_allclose(got["segment_start_s"], np.arange(g["mask"].shape[1]) * hop)
        mask = g["mask"][row]
        assert np.isnan(got["masked"][~mask]).all()
        np.testing.assert_array_equal(got["masked"][mask], g["features"][row][mask])


def test_video_ids_have_a_specified_zarr_3_type(stores: dict[str, Path]) -> None:
    """Variable-length UTF-8 ("string"), not numpy's fixed-width UTF-32, which has no Zarr 3
    specification; all the metadata is consolidated into the root zarr.json."""
    for path in stores.values():
        meta = json.loads((path / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
        assert meta["video_id"]["data_type"] == "string", path
        assert meta["features"]["dimension_names"][:2] == ["video", "segment"]
        assert set(meta) == {p.name for p in path.iterdir() if p.is_dir()}, path


def test_reading_raises_no_warning_with_the_snakemake_timestamp_inside(
    stores: dict[str, Path],
) -> None:
    for path in stores.values():
        assert (path / ".snakemake_timestamp").exists()
        s = FeatureStore(path)
        assert s.load().shape[0] == len(s) and s.mask.shape == s.array().shape[:2]
        g = zarr.open_group(str(path), mode="r")
        assert {"features", "video_id", "mask"} <= set(g.array_keys())
        assert g["features"].shape == s.array().shape


def test_frames_are_stored_per_segment_and_frame(stores: dict[str, Path]) -> None:
    """(N, T, k, D): frame j of segment t is row t * k + j of the per-video frames, and
    the gathered store keeps each shard's rows."""
    g = FeatureStore(stores["gathered"])
    assert g.video_ids == ["x_a", "x_b", "x_c", "x_d"] and g.array("frames").shape == (4, 5, 3, 5)
    for shard in ("shard0.zarr", "shard1.zarr"):
        s = FeatureStore(stores["gathered"].parent / shard)
        for v in s.video_ids:
            n = int(s.n_segments[s.rows([v])[0]])
            np.testing.assert_array_equal(
                g.load([v], "frames")[0, :n], s.load([v], "frames")[0, :n]
            )
            assert not g.load([v], "frames")[0, n:].any()
    r = FeatureStore(stores["released_npy"])
    frames = r.load(["yt_a"], "frames")[0]
    np.testing.assert_allclose(frames[:5].mean(1), r.load(["yt_a"])[0, :5], rtol=1e-6)
    assert frames.shape == (10, 8, 4) and not frames[5:].any()
