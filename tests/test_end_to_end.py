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
    # same rules and code paths as cpsp_full / psp_full / coleaf: left out to keep this
    # test's time (the variants' resolution: test_workflow.py's dry run)
    for exp in ("cpsp_full_released", "psp_original"):
        cfg["cpsp"]["experiments"].pop(exp, None)
        cfg["cpsp"]["overrides"]["synth_ave"].get("experiments", {}).pop(exp, None)
    cfg["avvp"]["methods"] = [m for m in cfg["avvp"]["methods"] if m != "coleaf_cmpae"]
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
    for name in ("cpsp_full", "psp_weak", "clcl", "han", "coleaf", "published"):
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
    LLP-format stores). CoLeaF's Anchor is HAN, so both methods rerun."""
    path = study.wd / "avpipe/methods/han/model.py"
    original = path.read_text()
    try:
        study.edit_source("methods/han/model.py")
        assert study.planned() == {"avvp": 2, "evaluate_avvp": 2, "report": 1}
    finally:
        path.write_text(original)
    assert study.planned() == {}


# -- avpipe localize on the study's test videos -------------------------------------------

# folder dataset (links to a synthetic dataset's test videos) -> one model of each family
LOCALIZE_RUNS = {
    "ave_new": ["cpsp/synth_ave/cpsp_full/seed0", "em/synth_ave/seed0/round2"],
    "llp_new": ["avvp/synth_llp/han/seed0"],
}
LOCALIZE_SOURCE = {"ave_new": "synth_ave", "llp_new": "synth_llp"}


@pytest.fixture(scope="module")
def localized(study: WorkflowCopy) -> WorkflowCopy:
    """The localize rule on two `folder` datasets holding the synthetic test videos; the
    study's config is restored afterwards (its `all` stays as it was)."""
    from avpipe.datasets.manifest import Manifest

    original = study.config()
    cfg = study.config()
    for ds, source in LOCALIZE_SOURCE.items():
        folder = study.wd / "data" / ds
        folder.mkdir(parents=True, exist_ok=True)
        for s in Manifest.read(study.wd / f"results/manifest/{source}").split("test"):
            link = folder / Path(s.path).name
            if not link.exists():
                link.symlink_to((study.wd / s.path).resolve())
        cfg["datasets"][ds] = {"format": "folder", "root": f"data/{ds}"}
    cfg["localize"] = {"runs": LOCALIZE_RUNS, "avvp_setting": "fixed"}
    study.write_config(cfg)
    try:
        targets = [
            f"results/localize/{ds}/{m}/timelines.tsv"
            for ds, models in LOCALIZE_RUNS.items()
            for m in models
        ]
        study.snakemake("--cores", "2", *targets)
    finally:
        study.write_config(original)
    return study


def _localized(study: WorkflowCopy, ds: str, model: str) -> tuple[list[dict], dict]:
    """Rows of timelines.tsv and the arrays of predictions.npz that localize wrote."""
    import numpy as np

    from avpipe.report.collect import read_tsv

    out = study.wd / f"results/localize/{ds}/{model}"
    with np.load(out / "predictions.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return read_tsv(out / "timelines.tsv"), arrays


def _cells(rows: list[dict], modalities: tuple[str, ...]) -> set[tuple[str, str, int]]:
    """(video, class, segment) of every event row of ``modalities`` (1-s segments)."""
    return {
        (r["video"], r["class"], t)
        for r in rows
        if r["modality"] in modalities
        for t in range(round(float(r["onset_s"])), round(float(r["offset_s"])))
    }


def _test_rows(study: WorkflowCopy, predictions: Path) -> tuple[dict, list[str], list[str]]:
    """The evaluated predictions of the test samples, their video ids and the classes."""
    import numpy as np

    from avpipe.datasets.manifest import Manifest

    manifest = Manifest.read(study.wd / f"results/manifest/{predictions.parts[-4]}")
    with np.load(predictions) as z:
        pred = {k: z[k] for k in z.files}
    by_id = {s.sample_id: s for s in manifest.samples}
    keep = [i for i, s in enumerate(pred["sample_id"]) if by_id[str(s)].split == "test"]
    n = len(pred["sample_id"])
    sub = {k: v[keep] if v.ndim and len(v) == n else v for k, v in pred.items()}
    return sub, [by_id[str(pred["sample_id"][i])].video_id for i in keep], manifest.classes


def test_localize_cpsp_agrees_with_the_evaluated_predictions(localized: WorkflowCopy) -> None:
    import numpy as np

    model = "cpsp/synth_ave/cpsp_full/seed0"
    rows, arrays = _localized(localized, "ave_new", model)
    pred, videos, classes = _test_rows(localized, localized.wd / f"results/{model}/predictions.npz")
    order = [list(arrays["sample_id"]).index(v) for v in videos]
    np.testing.assert_array_equal(arrays["segment_pred"][order], pred["segment_pred"])
    C = len(classes)
    expected = {
        (v, classes[c], t)
        for v, seg in zip(videos, pred["segment_pred"], strict=True)
        for t, c in enumerate(seg)
        if c < C
    }
    assert expected and {r["modality"] for r in rows} == {"audio-visual"}
    assert _cells(rows, ("audio-visual",)) == expected


def test_localize_avvp_agrees_with_the_evaluated_predictions(localized: WorkflowCopy) -> None:
    from avpipe.report import figure_data as fd
    from avpipe.report.collect import Run

    model = "avvp/synth_llp/han/seed0"
    rows, _ = _localized(localized, "llp_new", model)
    pred, videos, classes = _test_rows(localized, localized.wd / f"results/{model}/predictions.npz")
    metrics = localized.wd / f"results/evaluate/{model}/metrics.json"
    run = Run(metrics, "avvp", "synth_llp", "han", 0, None, "avvp", {})
    lanes = fd.predicted_lanes(run, pred, classes, fd.avvp_binarisation(run, "fixed", classes))
    for lane, modalities in (
        ("audio", ("audio", "audio-visual")),
        ("visual", ("visual", "audio-visual")),
    ):
        n, t, c = lanes[lane].nonzero()
        expected = {(videos[i], classes[k], j) for i, j, k in zip(n, t, c, strict=True)}
        assert expected, lane
        assert _cells(rows, modalities) == expected, lane


def test_localize_clcl_agrees_with_the_em_round_and_its_mapping(localized: WorkflowCopy) -> None:
    import numpy as np

    from avpipe.report.collect import read_tsv

    model = "em/synth_ave/seed0/round2"
    rows, arrays = _localized(localized, "ave_new", model)
    pred, videos, _ = _test_rows(localized, localized.wd / f"results/{model}/predictions.npz")
    order = [list(arrays["sample_id"]).index(v) for v in videos]
    np.testing.assert_array_equal(arrays["foreground"][order], pred["foreground"])
    np.testing.assert_array_equal(arrays["video_pseudo"][order], pred["video_pseudo"])
    mapping = read_tsv(
        localized.wd / "results/evaluate/unsupervised/synth_ave/clcl/seed0/round2/mapping.tsv"
    )
    name = {int(r["pseudo_class"]): r["class"] or f"pseudo{r['pseudo_class']}" for r in mapping}
    own = read_tsv(localized.wd / f"results/{model}/timelines.tsv")
    expected = [
        (r["video_id"], name[int(r["pseudo_class"])], r["onset_s"], r["offset_s"], r["score"])
        for r in own
        if r["video_id"] in set(videos)
    ]
    got = [(r["video"], r["class"], r["onset_s"], r["offset_s"], r["score"]) for r in rows]
    assert expected and sorted(got) == sorted(expected)
    assert {r["modality"] for r in rows} == {"audio-visual"}
