"""StoreWriter (sequential, chunk-aligned, complete-or-absent), gather_stores and the
segment-grid check of stores against a dataset's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from avpipe.io.store import (
    ArraySpec,
    FeatureStore,
    GridMismatchError,
    StoreWriter,
    check_grid,
    gather_stores,
    write_store,
)


def _rows(n: int, t: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(1, t + 1)), 4)).astype(np.float32) for _ in range(n)]


def _write(
    path: Path,
    ids: list[str],
    rows: list[np.ndarray],
    t_max: int,
    attrs: dict,
    fail_at: int | None = None,
) -> None:
    spec = {"features": ArraySpec((4,), "float32"), "frames": ArraySpec((4,), "float16", frames=2)}
    with StoreWriter(path, len(ids), t_max, spec, attrs, flags=("has_audio",)) as w:
        for i, (v, x) in enumerate(zip(ids, rows, strict=True)):
            if i == fail_at:
                raise RuntimeError("injected")
            arrays = (
                None
                if i == 1
                else {"features": x, "frames": np.repeat(x, 2, axis=0).astype(np.float16)}
            )
            w.add(v, len(x), arrays, {"has_audio": i != 1})


def test_writer_matches_write_store_and_keeps_missing_rows_zero(tmp_path: Path) -> None:
    ids = [f"v{i:03d}" for i in range(40)]  # small vectors: many videos per chunk
    rows = _rows(40, 5, 0)
    _write(tmp_path / "w.zarr", ids, rows, 5, {"recipe": "x"})
    s = FeatureStore(tmp_path / "w.zarr")
    assert s.video_ids == ids and s.attrs["recipe"] == "x"
    assert s.array().chunks[0] > 1  # several videos per chunk, each written once
    feats = s.load()
    for i, x in enumerate(rows):
        if i == 1:
            assert not feats[i].any()
        else:
            np.testing.assert_array_equal(feats[i, : len(x)], x)
            assert not feats[i, len(x) :].any()
    assert s.n_segments.tolist() == [len(x) for x in rows]
    np.testing.assert_array_equal(s.mask, np.arange(5)[None] < s.n_segments[:, None])
    assert s.has_audio.tolist() == [i != 1 for i in range(40)]
    assert s.array("frames").shape == (40, 5, 2, 4)
    for i, x in enumerate(rows):  # frame j of segment t is row 2 t + j of what was added
        want = 0 if i == 1 else np.repeat(x, 2, axis=0).astype(np.float16).reshape(len(x), 2, 4)
        np.testing.assert_array_equal(s.load([ids[i]], "frames")[0, : len(x)], want)
    # same layout as the one-shot writer
    padded = np.zeros((40, 5, 4), np.float32)
    for i, x in enumerate(rows):
        if i != 1:
            padded[i, : len(x)] = x
    write_store(tmp_path / "ref.zarr", {"features": padded}, ids, [len(x) for x in rows], {})
    np.testing.assert_array_equal(FeatureStore(tmp_path / "ref.zarr").load(), feats)
    lazy = s.dask()  # the same numbers, read lazily a chunk at a time
    assert lazy.shape == feats.shape and lazy.chunks[0][0] == s.array().chunks[0]
    np.testing.assert_array_equal(lazy[:3].compute(), feats[:3])


def test_writer_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="injected"):
        _write(tmp_path / "w.zarr", ["a", "b", "c"], _rows(3, 4, 1), 4, {}, fail_at=2)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_shapes_and_counts(tmp_path: Path) -> None:
    spec = {"features": ArraySpec((4,), "float32")}
    with (
        pytest.raises(ValueError, match="expected"),
        StoreWriter(tmp_path / "a.zarr", 1, 3, spec, {}) as w,
    ):
        w.add("a", 2, {"features": np.zeros((3, 4))})
    with (
        pytest.raises(ValueError, match="announced"),
        StoreWriter(tmp_path / "b.zarr", 2, 3, spec, {}) as w,
    ):
        w.add("a", 1, {"features": np.zeros((1, 4))})
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_gather_sorts_pads_and_keeps_flags(tmp_path: Path) -> None:
    rows = _rows(7, 6, 2)
    ids = ["e", "a", "g", "c", "b", "f", "d"]
    parts = [(0, 3, 4), (3, 7, 6)]  # shard 0 has T_max 4, shard 1 T_max 6
    shards = []
    for k, (lo, hi, t) in enumerate(parts):
        sub_ids = ids[lo:hi]
        sub = [x[:t] for x in rows[lo:hi]]
        order = np.argsort(sub_ids)
        path = tmp_path / f"shard{k}.zarr"
        _write(
            path,
            [sub_ids[i] for i in order],
            [sub[i] for i in order],
            t,
            {"config_hash": "h", "recipe": "r"},
        )
        shards.append(path)
    gather_stores(shards, tmp_path / "all.zarr", {"gathered": True})
    g = FeatureStore(tmp_path / "all.zarr")
    assert g.video_ids == sorted(ids) and g.attrs["gathered"] and g.attrs["recipe"] == "r"
    assert g.array().shape == (7, 6, 4) and g.array("frames").shape == (7, 6, 2, 4)
    for path in shards:
        s = FeatureStore(path)
        for v in s.video_ids:
            n = int(s.n_segments[s.rows([v])[0]])
            assert int(g.n_segments[g.rows([v])[0]]) == n
            np.testing.assert_array_equal(g.load([v])[0, :n], s.load([v])[0, :n])
            np.testing.assert_array_equal(
                g.load([v], "frames")[0, :n], s.load([v], "frames")[0, :n]
            )
            assert g.has_audio[g.rows([v])[0]] == s.has_audio[s.rows([v])[0]]
    # readable without avpipe
    z = zarr.open_group(str(tmp_path / "all.zarr"), mode="r")
    assert z["mask"][:].sum() == g.n_segments.sum()


def test_gather_refuses_shards_with_different_settings(tmp_path: Path) -> None:
    for k, h in enumerate("xy"):
        _write(tmp_path / f"s{k}.zarr", [f"v{k}"], _rows(1, 2, k), 2, {"config_hash": h})
    with pytest.raises(ValueError, match="different settings"):
        gather_stores([tmp_path / "s0.zarr", tmp_path / "s1.zarr"], tmp_path / "all.zarr", {})
    assert not (tmp_path / "all.zarr").exists()


def _grid(hop: float, win: float) -> dict:
    return {"grid": {"hop_s": hop, "window_s": win, "placement": "segment"}}


@pytest.mark.parametrize(
    ("attrs", "hop", "win"),
    [
        (_grid(1.0, 1.0), 1.0, 1.0),
        (_grid(1.0 + 5e-7, 1.0 - 5e-7), 1.0, 1.0),  # within the 1e-6-s tolerance
        (_grid(0.32, 0.96), 0.32, 0.96),
        # a grid attribute wins over the legacy hop_s/window_s of the extractor spec
        ({**_grid(1.0, 1.0), "modality": "audio", "hop_s": 0.96, "window_s": 0.975}, 1.0, 1.0),
        ({"modality": "visual", "hop_s": 1.0, "window_s": 1.0}, 1.0, 1.0),
        # a legacy audio store is checked on its hop only (VGGish's window was 0.975 s)
        ({"modality": "audio", "hop_s": 1.0, "window_s": 0.975}, 1.0, 1.0),
        ({"modality": "audio", "hop_s": 0.32, "window_s": 0.975}, 0.32, 0.96),
        ({}, 0.32, 0.96),  # written by hand, without provenance: nothing to check
        ({"recipe": "toy"}, 1.0, 1.0),
    ],
)
def test_check_grid_accepts_stores_on_the_dataset_grid(attrs: dict, hop: float, win: float) -> None:
    assert check_grid(attrs, hop, win, "s.zarr") is None


@pytest.mark.parametrize(
    ("attrs", "hop", "win", "message"),
    [
        (_grid(0.32, 0.96), 1.0, 1.0, r"grid \(hop 0.32 s, window 0.96 s\) differs"),
        (_grid(1.0, 0.96), 1.0, 1.0, r"window 0.96 s\) differs from the dataset's \(hop 1 s, win"),
        (_grid(1.0 + 2e-6, 1.0), 1.0, 1.0, r"hop 1 s, window 1 s\) differs"),
        (
            {"modality": "audio", "hop_s": 0.96, "window_s": 0.975},
            1.0,
            1.0,
            r"\(hop 0.96 s, window 0.975 s, no 'grid' attribute\) was written before extraction",
        ),
        # a legacy visual store's window was its hop: 0.32 s, not the UnAV-100 0.96 s
        (
            {"modality": "visual", "hop_s": 0.32, "window_s": 0.32},
            0.32,
            0.96,
            r"\(hop 0.32 s, window 0.32 s, no 'grid'.*\(hop 0.32 s, window 0.96 s\)",
        ),
        ({"modality": "visual", "hop_s": 0.5}, 1.0, 1.0, r"hop 0.5 s, window 0.5 s"),
    ],
)
def test_check_grid_rejects_stores_off_the_dataset_grid(
    attrs: dict, hop: float, win: float, message: str
) -> None:
    with pytest.raises(GridMismatchError, match=message) as e:
        check_grid(attrs, hop, win, "results/extract/ave/x.zarr")
    assert str(e.value).startswith("results/extract/ave/x.zarr: ")
    assert "re-extract" in str(e.value)
    if "grid" in attrs:
        assert "segment_hop/segment_win" in str(e.value)


@pytest.mark.parametrize("grid", [{"hop_s": 1.0}, [1.0, 1.0], {"hop_s": "a", "window_s": 1}])
def test_check_grid_refuses_a_malformed_grid(grid: object) -> None:
    with pytest.raises(ValueError, match="attribute 'grid'") as e:
        check_grid({"grid": grid}, 1.0, 1.0, "s.zarr")
    assert not isinstance(e.value, GridMismatchError)


def test_feature_store_checks_its_own_grid(tmp_path: Path) -> None:
    rows = _rows(3, 4, 0)
    ids = ["a", "b", "c"]
    _write(tmp_path / "on.zarr", ids, rows, 4, _grid(1.0, 1.0))
    _write(tmp_path / "off.zarr", ids, rows, 4, _grid(0.32, 0.96))
    FeatureStore(tmp_path / "on.zarr").check_grid(1.0, 1.0)
    with pytest.raises(GridMismatchError, match=f"^{tmp_path / 'off.zarr'}: "):
        FeatureStore(tmp_path / "off.zarr").check_grid(1.0, 1.0)
    # gathering keeps the shards' grid
    gather_stores([tmp_path / "off.zarr"], tmp_path / "all.zarr", {})
    with pytest.raises(GridMismatchError, match="all.zarr"):
        FeatureStore(tmp_path / "all.zarr").check_grid(1.0, 1.0)
    FeatureStore(tmp_path / "all.zarr").check_grid(0.32, 0.96)
