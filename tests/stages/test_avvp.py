"""``avpipe avvp`` + ``avpipe evaluate --task avvp`` end to end on a tiny class-coded dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from avvp_fixtures import make_avvp_dataset, small_config

from avpipe.cli import main
from avpipe.datasets.manifest import Manifest
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
    header = (d / "history.tsv").read_text().splitlines()[0].split("\t")
    assert {"epoch", "loss", "val_select", "val.segment.Type@AV"} <= set(header)
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
