"""The whole default DAG, from generated MP4s to the report, on the smoke preset.

This is command 1 of the README on a smaller dataset: every rule kind runs for real
(synthetic -> manifest -> extract -> pretrain/selflabel/em, cpsp, avvp ->
evaluate -> report), then a second dry run must find nothing to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr
from workflow_helpers import NOTHING_TO_DO, WorkflowCopy

pytestmark = pytest.mark.slow


def smoke_config(cfg: dict) -> dict:
    cfg["synthetic"]["preset"] = "smoke"
    cfg["run"]["seeds"] = [0]
    over = cfg["unsupervised"]["overrides"]["synth_ave"]
    over["pretrain"]["epochs"] = 3
    over["selflabel"].update({"epochs": 4, "top_k": 2})
    over["em"].update({"epochs": 3, "annotator_epochs": 3})
    cfg["unsupervised"]["em"]["rounds"] = 2
    cfg["cpsp"]["overrides"]["synth_ave"].setdefault("train", {})["epochs"] = 2
    # same rule and code path as cpsp_full / psp_full: left out to keep this test's time
    for exp in ("cpsp_full_released", "psp_original"):
        cfg["cpsp"]["experiments"].pop(exp, None)
        cfg["cpsp"]["overrides"]["synth_ave"].get("experiments", {}).pop(exp, None)
    for method in cfg["avvp"]["methods"]:
        method_over = cfg["avvp"]["overrides"]["synth_llp"].setdefault(method, {})
        method_over.setdefault("train", {})["epochs"] = 2
    return cfg


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> WorkflowCopy:
    wf = WorkflowCopy(tmp_path_factory.mktemp("e2e"))
    wf.write_config(smoke_config(wf.config()))
    wf.snakemake("--cores", "2", "all", timeout=1200)
    return wf


def test_every_evaluation_and_the_report_are_written(study: WorkflowCopy) -> None:
    metrics = sorted((study.wd / "results/evaluate").rglob("metrics.json"))
    stages = {p.relative_to(study.wd / "results/evaluate").parts[0] for p in metrics}
    assert stages == {"unsupervised", "cpsp", "avvp"}, metrics
    for path in metrics:
        values = json.loads(path.read_text())["metrics"]
        assert values and all(v == v for v in values.values() if isinstance(v, float)), path
    summary = (study.wd / "results/report/summary.md").read_text()
    for name in ("cpsp_full", "psp_weak", "clcl", "han", "coleaf", "coleaf_cmpae", "published"):
        assert name in summary, name
    figures = (study.wd / "results/report/figures.txt").read_text().split()
    assert any(f.endswith(".png") for f in figures)


def test_stores_say_which_weights_made_them(study: WorkflowCopy) -> None:
    stores = sorted((study.wd / "results/extract").glob("*/*.zarr"))
    names = {(p.parent.name, p.stem) for p in stores}
    assert {
        ("synth_ave", "vggish"),
        ("synth_ave", "vgg19_pool5"),
        ("synth_llp", "resnet152_llp"),
        ("synth_llp", "r2plus1d18"),
    } <= names
    for path in stores:
        group = zarr.open_group(str(path), mode="r")
        assert group.attrs["weights"].startswith("random(seed="), path
        n = group["video_id"].shape[0]
        assert n > 0 and group["features"].shape[0] == n


XARRAY_CHECK = """
import json, sys, warnings
warnings.simplefilter("error")
import numpy as np, xarray as xr, zarr
out = {}
for path in sys.argv[1:]:
    ds = xr.open_zarr(path).set_xindex("video_id")
    g = zarr.open_group(path, mode="r")
    ids = [str(v) for v in g["video_id"][:]]
    row = len(ids) // 2
    picked = ds.features.sel(video_id=ids[row]).values
    same = bool(np.array_equal(picked, g["features"][row], equal_nan=True))
    out[path] = [same, list(ds.features.dims), bool(ds.mask.sel(video_id=ids[row]).any())]
assert "avpipe" not in sys.modules
print(json.dumps(out))
"""


def test_every_store_of_the_run_opens_in_xarray_without_avpipe(study: WorkflowCopy) -> None:
    """Each store kind of the synthetic run: xr.open_zarr in a process that never imports
    avpipe, a video selected by id, the same numbers as plain zarr, no warning."""
    import subprocess
    import sys

    pytest.importorskip("xarray")
    stores = sorted(str(p) for p in (study.wd / "results/extract").glob("*/*.zarr"))
    r = subprocess.run(
        [sys.executable, "-c", XARRAY_CHECK, *stores], capture_output=True, text=True, cwd="/"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert len(got) == len(stores) == 5  # vggish x 2, vgg19_pool5, resnet152_llp, r2plus1d18
    for path, (same, dims, real) in got.items():
        assert same and real, path
        assert dims[:2] == ["video", "segment"], (path, dims)


def test_a_finished_study_has_nothing_to_do(study: WorkflowCopy) -> None:
    r = study.snakemake("-n", "--cores", "1", "all")
    assert NOTHING_TO_DO in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def test_every_rule_ran(study: WorkflowCopy) -> None:
    logs = {p.parts[len(Path(study.wd / "logs").parts)] for p in (study.wd / "logs").rglob("*.log")}
    expected = {
        "synthetic",
        "manifest",
        "extract",
        "pretrain",
        "selflabel",
        "em",
        "cpsp",
        "avvp",
        "evaluate",
        "report",
    }
    assert expected <= logs, expected - logs


def test_editing_avvp_code_reruns_only_the_avvp_stages(study: WorkflowCopy) -> None:
    """The AVVP counterpart of tests/test_rerun.py's code-edit tests (that toy study has no
    LLP-format stores). CoLeaF's Anchors (HAN, and CMPAE, built from HAN's layers) import
    it, so all three AVVP runs rerun: han, coleaf, coleaf_cmpae."""
    path = study.wd / "avpipe/methods/han/model.py"
    original = path.read_text()
    try:
        study.edit_source("methods/han/model.py")
        assert study.planned() == {"avvp": 3, "evaluate_avvp": 3, "report": 1}
    finally:
        path.write_text(original)
    assert study.planned() == {}
