"""``avpipe avvp`` + ``avpipe evaluate --task avvp`` end to end on a tiny class-coded dataset."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from avvp_fixtures import DIMS, make_avvp_dataset, small_config
from grid_cases import CASES, ONE_SECOND, stamp
from stream_flags import drop_stream

from avpipe.cli import main
from avpipe.datasets.manifest import Manifest
from avpipe.io.store import GridMismatchError
from avpipe.metrics import avvp

METHODS = ("han", "coleaf")
CHECKED = ("segment.A", "segment.V", "segment.Type@AV", "segment.Event@AV", "event.A", "event.V")


def _store_args(paths: dict[str, Path]) -> list[str]:
    return [
        "--manifest", str(paths["manifest"]), "--audio-store", str(paths["audio"]),
        "--frames-store", str(paths["frames"]), "--motion-store", str(paths["motion"]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("avvp")
    paths = make_avvp_dataset(root)
    out: dict = {"paths": paths, "root": root, "times": {}}
    for method in METHODS:
        t0 = time.perf_counter()
        run_dir = root / method
        cfg = {"data": {"device": "cpu", "num_threads": 1}, method: small_config(method, epochs=30)}
        rc = main(
            [
                "avvp",
                "--method",
                method,
                *_store_args(paths),
                "--seed",
                "0",
                "--config-json",
                json.dumps(cfg),
                "--out-dir",
                str(run_dir),
            ]
        )
        assert rc == 0
        rc = main(
            [
                "evaluate",
                "--task",
                "avvp",
                "--manifest",
                str(paths["manifest"]),
                "--predictions",
                str(run_dir / "predictions.npz"),
                "--out-dir",
                str(run_dir / "eval"),
            ]
        )
        assert rc == 0
        out[method] = json.loads((run_dir / "eval" / "metrics.json").read_text())["metrics"]
        out["times"][method] = time.perf_counter() - t0
    return out


def _trivial(paths: dict[str, Path], preds: Path, value: float) -> dict[str, float]:
    with np.load(preds) as z:
        p = {
            k: (np.full(z[k].shape, value) if k.startswith(("seg_prob", "video_prob")) else z[k])
            for k in z.files
        }
    return avvp.evaluate(
        Manifest.read(paths["manifest"]), p, {"selected": {"enabled": False}}
    ).metrics


@pytest.mark.parametrize("method", METHODS)
def test_clearly_above_trivial_predictors(runs: dict, method: str) -> None:
    preds = runs["root"] / method / "predictions.npz"
    nothing, everything = _trivial(runs["paths"], preds, 0.0), _trivial(runs["paths"], preds, 1.0)
    got = runs[method]
    print(
        method, f"{runs['times'][method]:.1f}s", {k: round(got[f"fixed.{k}"], 1) for k in CHECKED}
    )
    for k in CHECKED:
        floor = max(nothing[f"fixed.{k}"], everything[f"fixed.{k}"])
        assert got[f"fixed.{k}"] > floor + 15.0, (k, got[f"fixed.{k}"], floor)


@pytest.mark.parametrize("method", METHODS)
def test_outputs(runs: dict, method: str) -> None:
    d = runs["root"] / method
    with np.load(d / "predictions.npz") as z:
        assert z["seg_prob_audio"].shape == (48, 10, 6) and z["video_prob_visual"].shape == (48, 6)
        assert set(z["split"].tolist()) == {"val", "test"}
        assert np.all((z["seg_prob_audio"] >= 0) & (z["seg_prob_audio"] <= 1))
    ckpt = torch.load(d / "model.pt", weights_only=False)
    assert ckpt["config"]["method"] == method and 1 <= ckpt["best_epoch"] <= 30
    # the deployed model only: CoLeaF's Reference branch is not in the checkpoint
    assert not any(k.startswith("refs") or "tokens" in k for k in ckpt["state_dict"])
    lines = (d / "history.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert {"epoch", "loss", "val_select", "val.segment.Type@AV"} <= set(header)
    val = [float(r.split("\t")[header.index("val_select")]) for r in lines[1:]]
    summary = json.loads((d / "summary.json").read_text())
    # epochs count from 1; equal val scores keep the last epoch (the released scripts' >=)
    assert summary["best_epoch"] == ckpt["best_epoch"] == len(val) - val[::-1].index(max(val))
    assert summary["select_ties"] == "last" and summary["best_val_score"] == pytest.approx(max(val))
    # the resolved config the report names the run's variant from
    assert summary["config"][method] == ckpt["config"][method] and summary["config_hash"]
    if method == "coleaf":
        assert {"ref_audio", "ref_visual", "ea_audio", "ea_visual", "cc_audio", "cc_visual"} <= set(
            header
        )
    scores = (d / "eval" / "scores.tsv").read_text().splitlines()
    assert scores[0].split("\t")[:4] == ["setting", "level", "A", "Ao"] and len(scores) == 1 + 3 * 2
    assert (d / "eval" / "thresholds.tsv").exists()
    assert runs[method]["n_videos"] == 24


def test_unknown_config_key_is_an_error(runs: dict, tmp_path: Path) -> None:
    cfg = {"han": {"train": {"epochz": 1}}}
    rc = main(
        [
            "avvp",
            "--method",
            "han",
            *_store_args(runs["paths"]),
            "--config-json",
            json.dumps(cfg),
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert rc == 2 and not (tmp_path / "model.pt").exists()


def test_data_targets_and_frames(runs: dict) -> None:
    from avpipe.datasets import avvp as data
    from avpipe.io.store import FeatureStore

    p = runs["paths"]
    man, splits, dims = data.load(p["manifest"], p["audio"], p["frames"], p["motion"])
    assert (dims.audio, dims.frames, dims.motion, dims.frames_per_segment, dims.n_classes) == (
        16,
        24,
        12,
        2,
        6,
    )
    test = splits["test"]
    by = man.events_by_sample()
    for i, sid in enumerate(test.sample_ids[:5]):
        weak = {e.label for e in by[sid] if e.is_weak}
        assert {man.classes[c] for c in np.flatnonzero(test.labels[i])} == weak
        for e in by[sid]:
            if e.modality == "audio":
                c = man.class_index[e.label]
                assert test.dense_audio[i, int(e.onset) : int(e.offset), c].all()
    # frames (N, T, k, Df): their mean over k is the per-segment feature
    st = FeatureStore(p["frames"])
    feats = st.load(test.sample_ids[:3])
    assert np.allclose(test.frames[:3].astype(np.float32).mean(2), feats, atol=1e-2)
    assert len(splits["train"]) == 64 and not splits["train"].dense_audio.any()


def test_data_accepts_stores_on_the_manifest_grid(tmp_path: Path) -> None:
    """Hand-made stores (no grid attributes) and stores on the 1-s grid give the same data."""
    from avpipe.datasets import avvp as data

    p = make_avvp_dataset(tmp_path, sizes=(4, 2, 2))
    stores = (p["audio"], p["frames"], p["motion"])
    _, plain, _ = data.load(p["manifest"], *stores)
    for store in stores:
        stamp(store, ONE_SECOND)
    _, on_grid, dims = data.load(p["manifest"], *stores)
    assert dims.frames_per_segment == 2 and len(on_grid["test"]) == 2
    for name in ("train", "val", "test"):
        for x in ("audio", "frames", "motion", "dense_audio"):
            np.testing.assert_array_equal(getattr(on_grid[name], x), getattr(plain[name], x))
    assert np.abs(on_grid["test"].motion.astype(np.float32)).sum() > 0


@pytest.mark.parametrize(
    ("case", "which"),
    [
        ("grid hop 0.32", "audio"),
        ("grid hop 0.32", "frames"),
        ("grid hop 0.32", "motion"),
        ("legacy vggish", "audio"),
    ],
)
def test_data_refuses_stores_off_the_manifest_grid(tmp_path: Path, case: str, which: str) -> None:
    from avpipe.datasets import avvp as data

    p = make_avvp_dataset(tmp_path, sizes=(4, 2, 2))
    for store in {"audio", "frames", "motion"} - {which}:
        stamp(p[store], ONE_SECOND)
    attrs, message = CASES[case]
    stamp(p[which], attrs)
    with pytest.raises(GridMismatchError, match=message) as e:
        data.load(p["manifest"], p["audio"], p["frames"], p["motion"])
    assert str(e.value).startswith(f"{p[which]}: ")


def test_standardize_uses_train_statistics(runs: dict) -> None:
    from avpipe.datasets import avvp as data

    p = runs["paths"]
    _, splits, _ = data.load(p["manifest"], p["audio"], p["frames"], p["motion"])
    raw_test = splits["test"].audio.astype(np.float32).copy()
    stats = data.standardize(splits)
    a = splits["train"].audio.astype(np.float32).reshape(-1, 16)
    assert np.allclose(a.mean(0), 0, atol=1e-2) and np.allclose(a.std(0), 1, atol=1e-2)
    want = (raw_test - stats["audio_mean"]) / stats["audio_std"]
    assert np.allclose(splits["test"].audio.astype(np.float32), want, atol=1e-2)
    assert stats["frames_mean"].shape == (24,)


def test_videos_without_a_stream_are_left_out(tmp_path: Path, caplog) -> None:
    """vid003 (train) has no video stream, vid026 (test) no audio stream: neither is
    trained on, in the standardisation statistics or scored; model.pt names them."""
    from avpipe.datasets import avvp as data
    from avpipe.io.store import FeatureStore
    from avpipe.training.checkpoint import load_checkpoint

    p = make_avvp_dataset(tmp_path, sizes=(16, 8, 8))
    for name in ("frames", "motion"):
        drop_stream(p[name], "has_video", ["vid003"])
    drop_stream(p["audio"], "has_audio", ["vid026"])
    with caplog.at_level(logging.WARNING):
        _, splits, _ = data.load(p["manifest"], p["audio"], p["frames"], p["motion"])
    assert "toy_llp/test: 1 of 8 videos lack a stream" in caplog.text and "vid026" in caplog.text
    kept = [f"vid{i:03d}" for i in range(16) if i != 3]
    assert splits["train"].sample_ids == kept
    assert splits["test"].sample_ids == [f"vid{i:03d}" for i in range(24, 32) if i != 26]
    assert splits["train"].missing == {"no_video": ["vid003"], "no_audio": []}
    assert splits["test"].missing == {"no_video": [], "no_audio": ["vid026"]}
    stats = data.standardize(splits)
    for name in ("audio", "motion"):
        x = FeatureStore(p[name]).load(kept).reshape(-1, DIMS[name])
        np.testing.assert_allclose(stats[f"{name}_mean"], x.mean(0), atol=2e-3)
        np.testing.assert_allclose(stats[f"{name}_std"], x.std(0), rtol=2e-3)
    x = FeatureStore(p["frames"]).load(kept, name="frames").reshape(-1, DIMS["frames"])
    np.testing.assert_allclose(stats["frames_mean"], x.mean(0), atol=2e-3)

    out = tmp_path / "han"
    cfg = {"data": {"device": "cpu", "num_threads": 1}, "han": small_config("han", epochs=1)}
    args = ["--seed", "0", "--config-json", json.dumps(cfg), "--out-dir", str(out)]
    assert main(["avvp", "--method", "han", *_store_args(p), *args]) == 0
    missing = load_checkpoint(out / "model.pt")["missing_stream"]
    assert missing["train"] == {"no_video": ["vid003"], "no_audio": []}
    assert missing["test"] == {"no_video": [], "no_audio": ["vid026"]}
    with np.load(out / "predictions.npz") as z:
        ids = z["sample_id"].tolist()
    assert len(ids) == 15 and "vid026" not in ids
