"""UnAV-100 end to end: a tiny dataset in the UnAV-100 layout through the real workflow
(manifest -> extract on the 0.32-s/0.96-s grid -> CoLeaF -> evaluate, task unav100).

Checks T, labels and metrics for the test clips of 0.2, 3.7, 10 and 25 s: the 0.2-s clip
has no segment, is left out of training and predictions and recorded as such, and its
event still counts in the detection mAP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from unav_fixtures import CLIPS, write_unav_dataset
from workflow_helpers import WorkflowCopy, drop_undefined_datasets

from avpipe.datasets.manifest import Manifest
from avpipe.metrics import get_task

pytestmark = pytest.mark.slow

DS = "unav"
TARGET = f"results/evaluate/avvp/{DS}/coleaf/seed0/metrics.json"
# the clips' T on the grid: floor((d - 0.96) / 0.32) + 1 whole windows, none for 0.2 s
TEST_T = {"clip0p2_005": 0, "clip3p7_006": 9, "clip10s_007": 29, "clip25s_008": 76}
SMALL = {"d_model": 16, "ffn": 16}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> WorkflowCopy:
    wf = WorkflowCopy(tmp_path_factory.mktemp("unav"))
    write_unav_dataset(wf.wd / "data/unav")
    cfg = wf.config()
    cfg["run"].update(seeds=[0], device="cpu")
    cfg["datasets"] = {
        DS: {
            "format": "unav100",
            "root": "data/unav",
            "videos": "data/unav/videos",
            "segment_hop": 0.32,
            "segment_win": 0.96,
        }
    }
    cfg["decode"]["shards"] = 1
    cfg["extract"]["stores"] = {DS: ["vggish", "resnet152_llp", "r2plus1d18"]}
    cfg["extract"]["overrides"] = {
        DS: {
            "vggish": {"weights": "random"},
            "resnet152_llp": {
                "weights": "random",
                "frames_per_segment": 1,
                "input_size": 32,
                "readout": "layer2",
            },
            "r2plus1d18": {
                "weights": "random",
                "frames_per_segment": 1,
                "input_size": 32,
                "readout": "layer1",
            },
        }
    }
    av = cfg["avvp"]
    av.update(datasets=[DS], methods=["coleaf"])
    av["overrides"] = {
        DS: {
            "data": {"standardize": True},
            "coleaf": {
                "anchor": SMALL,
                "reference": SMALL,
                "train": {"epochs": 2, "batch_size": 2, "lr_step": 100},
            },
        }
    }
    wf.write_config(drop_undefined_datasets(cfg))
    wf.snakemake("--cores", "2", TARGET, timeout=900)
    return wf


def test_segments_follow_the_window(study: WorkflowCopy) -> None:
    m = Manifest.read(study.wd / f"results/manifest/{DS}")
    assert {s.sample_id: s.n_segments for s in m.split("test")} == TEST_T
    store = zarr.open_group(str(study.wd / f"results/extract/{DS}/vggish.zarr"), mode="r")
    ids = [str(v) for v in store["video_id"][:]]
    n = dict(zip(ids, store["n_segments"][:].tolist(), strict=True))
    assert {k: n[k] for k in TEST_T} == TEST_T
    problems = (study.wd / f"results/manifest/{DS}/problems.tsv").read_text().splitlines()
    assert [p.split("\t")[3] for p in problems if p.startswith("clip0p2_005")] == ["no_segment"]


def test_labels_keep_short_events(study: WorkflowCopy) -> None:
    m = Manifest.read(study.wd / f"results/manifest/{DS}")
    test = {s.sample_id: s for s in m.split("test")}
    ids = ["clip3p7_006", "clip10s_007", "clip25s_008"]
    y = m.segment_targets([test[i] for i in ids])  # (3, 76, 2): beep, buzz
    beep, buzz = m.class_index["beep"], m.class_index["buzz"]
    # buzz [1.0, 1.2] of the 3.7-s clip: wholly inside windows 1-3 ([0.32, 1.28] ...)
    assert np.flatnonzero(y[0, :, buzz]).tolist() == [1, 2, 3]
    assert np.flatnonzero(y[1, :, buzz]).tolist() == [7, 8, 9]  # [3.0, 3.2]
    assert y[0, :9, beep].all() and y[1, :29, beep].all() and not y[2, :, beep].any()
    assert np.flatnonzero(y[2, :, buzz]).tolist() == list(range(32, 76))  # [10.5, 25]
    # the 0.2-s clip: no segment, its video-level label kept
    assert m.video_targets([test["clip0p2_005"]]).tolist() == [[1.0, 0.0]]


def test_metrics(study: WorkflowCopy) -> None:
    out = study.wd / TARGET
    data = json.loads(out.read_text())
    assert data["task"] == "unav100"
    metrics, info = data["metrics"], data["info"]
    assert info["videos_without_predictions"] == ["clip0p2_005"]
    assert info["n_events"] == sum(len(e) for s, _, e in CLIPS.values() if s == "test")
    assert not [k for k in metrics if k.endswith(("Ao", "Vo", "AVo"))]
    run = study.wd / f"results/avvp/{DS}/coleaf/seed0"
    with np.load(run / "predictions.npz") as npz:
        pred = {k: npz[k] for k in npz.files}
    test = pred["split"] == "test"
    n_pred = dict(
        zip(pred["sample_id"][test].tolist(), pred["n_segments"][test].tolist(), strict=True)
    )
    assert n_pred == {k: v for k, v in TEST_T.items() if v}
    ckpt = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    assert ckpt["missing_stream"]["test"]["no_segment"] == ["clip0p2_005"]
    # beep has 3 test events and one (the 0.2-s clip's) cannot be found: AP <= 2/3
    for setting in ("fixed", "han", "selected"):
        for t in (0.1, 0.5, 0.9):
            assert 0.0 <= metrics[f"{setting}.detection@tIoU{t:g}.mAP"] <= 100 * (2 / 3 + 1) / 2
        mean = np.mean([metrics[f"{setting}.detection@tIoU{t / 10:g}.mAP"] for t in range(1, 10)])
        assert metrics[f"{setting}.detection.mAP"] == pytest.approx(mean, abs=1e-9)
    # the stage's numbers are the library's on the same inputs
    cfg = {k: v for k, v in study.config()["avvp"]["evaluate"].items()}
    again = get_task("unav100")(Manifest.read(study.wd / f"results/manifest/{DS}"), pred, cfg)
    assert again.metrics == pytest.approx(metrics, abs=1e-9)
