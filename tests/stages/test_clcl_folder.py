"""The folder adapter (no labels) through the three CLCL CLIs: pseudo-labels and
timelines for every video of the unlabeled split, --threads, no accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from clcl_fixtures import make_dataset

from avpipe.cli import main
from avpipe.training.checkpoint import load_checkpoint

CFG = {
    "data": {"n_pseudo_classes": 3, "device": "cpu"},
    "pretrain": {"epochs": 2, "batch_size": 8, "encoder": {"d_model": 8, "heads": 2}},
    "selflabel": {"hidden": 8, "top_k": 3, "epochs": 3, "batch_size": 8},
    "em": {"rounds": 2, "epochs": 2, "batch_size": 8, "annotator_epochs": 2},
}


def test_folder_dataset_gets_pseudo_labels_and_timelines(tmp_path: Path) -> None:
    make_dataset(tmp_path, n_classes=3, n_train=12, n_test=0, labelled=False)
    base = [
        "--manifest", str(tmp_path / "manifest"),
        "--visual-store", str(tmp_path / "visual.zarr"),
        "--audio-store", str(tmp_path / "audio.zarr"),
        "--seed", "3", "--threads", "1",
    ]  # fmt: skip

    def cfg(*sections: str) -> str:
        return json.dumps({k: CFG[k] for k in ("data", *sections)})

    out = tmp_path / "out"
    assert (
        main(["pretrain", *base, "--config-json", cfg("pretrain"), "--out-dir", str(out / "pre")])
        == 0
    )
    args = ["selflabel", *base, "--config-json", cfg("selflabel"),
            "--pretrain", str(out / "pre"), "--out-dir", str(out / "sl")]  # fmt: skip
    assert main(args) == 0
    for k in (1, 2):
        prev = ["--previous", str(out / f"round{k - 1}")] if k > 1 else []
        args = ["em", *base, "--config-json", cfg("selflabel", "em"), "--round", str(k),
                "--pretrain", str(out / "pre"), "--selflabel", str(out / "sl"), *prev,
                "--out-dir", str(out / f"round{k}")]  # fmt: skip
        assert main(args) == 0
    r2 = out / "round2"
    with np.load(r2 / "pseudo_labels.npz") as z:
        assert z["z"].shape == (12, 3)
    with np.load(r2 / "predictions.npz") as z:
        assert set(z["split"].tolist()) == {"unlabeled"}
        assert z["train_sample_id"].shape == (12,)
    rows = (r2 / "timelines.tsv").read_text().splitlines()
    assert len(rows) > 12
    assert {r.split("\t")[0] for r in rows[1:]} == {f"v{i:03d}" for i in range(12)}
    assert load_checkpoint(r2 / "localizer.pt")["config"]["data"]["num_threads"] == 1
