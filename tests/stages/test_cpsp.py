"""``avpipe cpsp`` end to end on a separable toy store, then ``avpipe evaluate --task ave``."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from cpsp_toy import make_toy, tiny_config
from stream_flags import drop_stream

from avpipe.cli import main
from avpipe.io.store import FeatureStore
from avpipe.methods.cpsp.config import DataConfig
from avpipe.methods.cpsp.experiment import load_splits
from avpipe.training.checkpoint import load_checkpoint
from avpipe.training.data import fit_standardizer

W0 = {"avpsp": 0, "spsa": 0, "vpsa": 0, "ss": 0}
RUNS = {
    "cpsp_full": ("full", {"avpsp": 100, "spsa": 0.01, "vpsa": 1, "ss": 0}),
    "cpsp_weak": ("weak", {**W0, "vpsa": 1}),
}


@cache
def toy(root: Path) -> tuple[Path, Path, Path]:
    _, v, a = make_toy(root, scale=40.0)  # raw scale far from 1: standardisation must cope
    return root / "manifest", v, a


def run_stage(
    root: Path, name: str, setting: str, weights: dict, **extra: object
) -> tuple[int, Path]:
    manifest, v, a = toy(root)
    out = root / "cpsp" / name
    rc = main(
        [
            "cpsp",
            "--manifest",
            str(manifest),
            "--visual-store",
            str(v),
            "--audio-store",
            str(a),
            "--config-json",
            json.dumps(tiny_config(name, setting, weights, **extra)),
            "--seed",
            "0",
            "--out-dir",
            str(out),
        ]
    )
    return rc, out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    torch.set_num_threads(1)  # tiny models: a second OpenMP thread only adds contention
    root = tmp_path_factory.mktemp("cpsp")
    results = {}
    for name, (setting, weights) in RUNS.items():
        rc, out = run_stage(root, name, setting, weights)
        assert rc == 0
        ev = root / "evaluate" / name
        assert (
            main(
                [
                    "evaluate",
                    "--task",
                    "ave",
                    "--manifest",
                    str(toy(root)[0]),
                    "--predictions",
                    str(out / "predictions.npz"),
                    "--out-dir",
                    str(ev),
                ]
            )
            == 0
        )
        results[name] = {
            "out": out,
            "eval": ev,
            "root": root,
            "summary": json.loads((out / "summary.json").read_text()),
            "metrics": json.loads((ev / "metrics.json").read_text())["metrics"],
        }
    return results


def test_outputs_are_complete(runs: dict[str, dict]) -> None:
    r = runs["cpsp_full"]
    for f in ("model.pt", "predictions.npz", "history.tsv", "summary.json"):
        assert (r["out"] / f).is_file()
    assert (r["eval"] / "per_class.tsv").is_file()
    with np.load(r["out"] / "predictions.npz") as z:
        assert z["segment_pred"].shape == (12, 10)
        assert set(z["sample_id"].tolist()) == {
            f"s{i:03d}" for i in range(48, 60)
        }  # the test split
    ckpt = load_checkpoint(r["out"] / "model.pt")
    assert ckpt["config"]["experiment"] == "cpsp_full" and ckpt["positions"] == 9
    lines = (r["out"] / "history.tsv").read_text().splitlines()
    assert len(lines) == 1 + 12 and "val_select" in lines[0] and "vpsa" in lines[0]


@pytest.mark.parametrize("name,floor", [("cpsp_full", 85.0), ("cpsp_weak", 50.0)])
def test_accuracy_is_above_chance(runs: dict[str, dict], name: str, floor: float) -> None:
    # chance is 25 % (3 classes + background), background-everywhere ~37 %
    m = runs[name]["metrics"]
    assert m["accuracy"] > floor, m
    assert m["n_segments"] == 120
    assert runs[name]["summary"]["test_accuracy"] == pytest.approx(m["accuracy"])


def test_selection_uses_the_validation_split(runs: dict[str, dict]) -> None:
    s = runs["cpsp_full"]["summary"]
    rows = (runs["cpsp_full"]["out"] / "history.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    val = [float(r.split("\t")[header.index("val.accuracy")]) for r in rows[1:]]
    assert s["best_val_accuracy"] == pytest.approx(max(val))
    assert s["best_epoch"] == 1 + val.index(max(val))  # epochs count from 1, ties keep the first


def test_weak_setting_rejects_segment_level_losses(runs: dict[str, dict]) -> None:
    rc, out = run_stage(
        runs["cpsp_full"]["root"], "bad_weak", "weak", {**W0, "avpsp": 100}, epochs=1
    )
    assert rc == 2 and not (out / "model.pt").exists()


def test_workflow_config_resolves_into_the_stage_config(workflow_copy: Path) -> None:
    """Every default experiment (+ an experiment-level feature set) parses into CpspStage,
    with cpsp.train <- overrides.<dataset>.train <- experiment.train
    <- overrides.<dataset>.experiments.<experiment>.train."""
    import re
    import subprocess
    import sys

    import yaml

    from avpipe.config import from_dict
    from avpipe.methods.cpsp.config import CpspStage

    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["cpsp"]["experiments"]["cpsp_full_resnet"] = {
        "setting": "full",
        "data": {"visual_recipe": "resnet152_maps"},
    }
    cfg_path.write_text(yaml.safe_dump(cfg))
    targets = [f"results/cpsp/synth_ave/{e}/seed0/model.pt" for e in cfg["cpsp"]["experiments"]]
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", *targets],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = re.findall(r"avpipe cpsp .*?--config-json '(\{.*?\})'", r.stdout)
    parsed = {c.experiment: c for c in (from_dict(CpspStage, json.loads(j)) for j in jobs)}
    assert set(parsed) == set(cfg["cpsp"]["experiments"])
    weak = parsed["cpsp_weak"]
    assert weak.run.setting == "weak" and weak.run.weights.avpsp == 0
    over = cfg["cpsp"]["overrides"]["synth_ave"]["train"]
    # the experiment's own schedule wins over the dataset override (issue 14 item 7);
    # the override fills in what the experiment leaves open
    own = cfg["cpsp"]["experiments"]["cpsp_weak"]["train"]["milestones"]
    assert weak.run.train.epochs == over["epochs"] and weak.run.train.milestones == tuple(own)
    assert parsed["cpsp_full"].run.train.milestones == tuple(over["milestones"])
    assert parsed["cpsp_full"].run.weights.spsa == 0.01 and parsed["cpsp_full"].data.standardize
    assert parsed["cpsp_full_resnet"].data.visual_recipe == "resnet152_maps"
    # psp_original: its own recipe, shortened on the synthetic default by the dataset's
    # per-experiment override (applied after the dataset's train override)
    orig = parsed["psp_original"].run
    assert orig.head == "psp" and orig.train.grad_clip is None and orig.train.lr_gamma == 0.8
    assert (orig.train.epochs, orig.train.milestones) == (30, (6, 12))
    assert parsed["cpsp_full_released"].run.spsa_impl == "released_noop"
    assert "resnet152_maps.zarr" in r.stdout


def test_videos_without_a_stream_are_left_out(tmp_path: Path, caplog) -> None:
    """v001 (train) has no video stream, v020 (test) no audio stream: neither is trained
    on, predicted or counted in the statistics, and the summary names them."""
    manifest, v, a = make_toy(tmp_path, sizes=(12, 6, 6), scale=40.0)
    drop_stream(v, "has_video", ["v001"])
    drop_stream(a, "has_audio", ["v020"])
    with caplog.at_level(logging.WARNING):
        splits = load_splits(manifest, v, a, ("train", "val", "test"), DataConfig())
    assert "toy/train: 1 of 12 videos lack a stream" in caplog.text
    assert "no audio stream: 1 (v020)" in caplog.text
    assert splits["train"].sample_ids == [f"s{i:03d}" for i in range(12) if i != 1]
    assert splits["test"].sample_ids == [f"s{i:03d}" for i in range(18, 24) if i != 20]
    assert splits["train"].missing == {"no_video": ["v001"], "no_audio": []}
    assert splits["val"].missing == {"no_video": [], "no_audio": []}
    assert splits["test"].missing == {"no_video": [], "no_audio": ["v020"]}
    norm = fit_standardizer(splits["train"])
    kept = [f"v{i:03d}" for i in range(12) if i != 1]
    vis = FeatureStore(v).load(kept).reshape(-1, 16).astype(np.float64)
    aud = FeatureStore(a).load(kept).reshape(-1, 32).astype(np.float64)
    np.testing.assert_allclose(norm.mean["visual"], vis.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(norm.std["visual"], vis.std(0), rtol=1e-3)
    np.testing.assert_allclose(norm.mean["audio"], aud.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(norm.std["audio"], aud.std(0), rtol=1e-3)

    cfg = tiny_config("cpsp_full", "full", RUNS["cpsp_full"][1], epochs=1)
    out = tmp_path / "out"
    args = ["--visual-store", str(v), "--audio-store", str(a), "--seed", "0"]
    rc = main(
        ["cpsp", "--manifest", str(tmp_path / "manifest"), *args,
         "--config-json", json.dumps(cfg), "--out-dir", str(out)]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (11, 6, 5)
    assert summary["missing_stream"]["test"] == {"no_video": [], "no_audio": ["v020"]}
    with np.load(out / "predictions.npz") as z:
        assert "s020" not in z["sample_id"].tolist() and len(z["sample_id"]) == 5
