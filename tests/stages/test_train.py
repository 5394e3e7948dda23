"""``avpipe train``: a method family registered in avpipe/methods/registry.py, run by the
generic stage on the toy AVE-format data (tests/clcl_fixtures.py), in process."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from clcl_fixtures import make_dataset

from avpipe.cli import main
from avpipe.methods import registry
from avpipe.metrics.ave import segment_accuracy, segment_labels

TOY = registry.Method(
    family="toyave",
    stage="train",
    config="toy_method:Config",
    trainer="toy_method:fit",
    predict="toy_method:predict",
    task="ave",
    code=(),
    stores=("audio_recipe",),
)


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setitem(registry.METHODS, "toyave", TOY)
    make_dataset(tmp_path, n_train=24, n_test=8)
    return tmp_path / "manifest", tmp_path / "audio.zarr"


def test_writes_model_predictions_and_history(toy: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, audio = toy
    out = tmp_path / "out"
    rc = main(
        [
            "train",
            "--method",
            "toyave",
            "--config-json",
            '{"epochs": 12}',
            "--set",
            "lr=0.3",
            "--manifest",
            str(manifest),
            "--store",
            f"audio_recipe={audio}",
            "--seed",
            "1",
            "--out-dir",
            str(out),
        ]
    )
    assert rc == 0
    ckpt = torch.load(out / "model.pt", weights_only=False)
    assert ckpt["method"] == "toyave" and ckpt["seed"] == 1
    assert ckpt["config"]["epochs"] == 12 and ckpt["config"]["lr"] == 0.3
    with (out / "history.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    from avpipe.datasets.manifest import Manifest

    man = Manifest.read(manifest)
    with np.load(out / "predictions.npz") as npz:
        samples = [s for s in man.samples if s.sample_id in set(npz["sample_id"].tolist())]
        pred = npz["segment_pred"]
    assert len(samples) == 8
    target = segment_labels(man, samples, n_segments=pred.shape[1])
    assert segment_accuracy(pred, target, np.ones_like(target, dtype=bool)) > 80


def test_bad_store_key_and_unknown_setting_are_named(
    toy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, audio = toy
    common = ["train", "--method", "toyave", "--manifest", str(manifest)]
    common += ["--out-dir", str(tmp_path / "out")]
    assert main([*common, "--config-json", "{}", "--store", f"visual={audio}"]) == 2
    err = capsys.readouterr().err
    assert "--store 'visual=" in err and "['audio_recipe']" in err
    assert main([*common, "--config-json", '{"epoch": 3}', "--store", f"audio_recipe={audio}"]) == 2
    assert "toyave: unknown key(s) 'epoch'" in capsys.readouterr().err
