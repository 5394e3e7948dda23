"""Rerun only what changed (the workflow's code and parameter hashes): one real run of
a small study, then dry runs after one change each, asserting exactly which rules Snakemake plans.

Snakemake tracks params and shell text, not the modules a command imports: every rule
passes its config slice (``as_json``) and a hash of the avpipe sources it runs
(``code(...)``) as params, which is what these tests check.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import browser
import pytest
from workflow_helpers import (
    NOTHING_TO_DO,
    REPO,
    TOY,
    TOY_CPSP_EXPERIMENT,
    WorkflowCopy,
    drop_undefined_datasets,
    job_counts,
    planned_by,
    rule_names,
    seed_upstream,
    snakemake_at_once,
)

from avpipe.io.store import FeatureStore

pytestmark = pytest.mark.slow
RULES = rule_names()
UNSUP_ROUNDS = 2
SEEDS = (0,)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowCopy]:
    """The small study run to completion once; each test restores the copy it changes."""
    wf = WorkflowCopy(tmp_path_factory.mktemp("rerun"))
    seed_upstream(wf, SEEDS)
    wf.run("all")
    assert (wf.wd / "results/report/summary.md").is_file()
    yield wf


@pytest.fixture
def wf(finished: WorkflowCopy) -> Iterator[WorkflowCopy]:
    cfg = finished.config_path.read_text()
    sources = {p: p.read_text() for p in (finished.wd / "avpipe").rglob("*.py")}
    yield finished
    finished.config_path.write_text(cfg)
    for p, text in sources.items():
        if p.read_text() != text:
            p.write_text(text)


def per_seed_round(n: int = 1) -> int:
    return n * len(SEEDS) * UNSUP_ROUNDS


PlannedAfter = Callable[[str], subprocess.CompletedProcess[str]]  # the fixture below


def _double(stage: str, key: str) -> Callable[[WorkflowCopy], None]:
    def edit(wf: WorkflowCopy) -> None:
        cfg = wf.config()
        over = cfg["unsupervised"]["overrides"][TOY].setdefault(stage, {})
        over[key] = over.get(key, cfg["unsupervised"][stage][key]) * 2
        wf.write_config(cfg)

    return edit


def _precision(wf: WorkflowCopy) -> None:
    cfg = wf.config()
    cfg["report"]["precision"] = 3
    wf.write_config(cfg)


@pytest.fixture(scope="module")
def planned_after(finished: WorkflowCopy, tmp_path_factory: pytest.TempPathFactory) -> PlannedAfter:
    """The dry run of ``all`` after one change of the finished study, by the change's
    name: "nothing" (the study itself), "<stage>.<key>" (HYPERPARAMETERS),
    "report.precision", or a source file (CODE_EDITS, METHOD_EDITS).  The first call
    makes each change in its own copy of the study (results and Snakemake's records
    included) and starts all the dry runs together: on 2 cores they take the time of
    half of them one after another."""
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def get(name: str) -> subprocess.CompletedProcess[str]:
        if not results:
            edits: dict[str, Callable[[WorkflowCopy], None]] = {
                **{f"{stage}.{key}": _double(stage, key) for stage, key, _ in HYPERPARAMETERS},
                "report.precision": _precision,
                **{
                    src: lambda wf, src=src: wf.edit_source(src)
                    for src, _ in (*CODE_EDITS, *METHOD_EDITS)
                    if (finished.wd / "avpipe" / src).is_file()
                },
            }
            copies = {"nothing": finished}
            for change, edit in edits.items():
                copies[change] = WorkflowCopy(tmp_path_factory.mktemp("changed"), of=finished)
                edit(copies[change])
            runs = [(wf.wd, wf.env, ("-n", "--cores", "1", "all")) for wf in copies.values()]
            results.update(zip(copies, snakemake_at_once(*runs), strict=True))
        return results[name]

    return get


def test_finished_dag_reruns_nothing(planned_after: PlannedAfter) -> None:
    r = planned_after("nothing")
    assert NOTHING_TO_DO in r.stdout + r.stderr


def test_report_figures_and_tables_exist(wf: WorkflowCopy) -> None:
    rep = wf.wd / "results/report"
    assert (rep / f"tables/unsupervised__{TOY}__clcl.md").is_file()
    figs = {p.relative_to(rep).as_posix() for p in rep.glob("figures/*/*.png")}
    kinds = {
        f"unsupervised__{TOY}__clcl": ("em_rounds", "per_class", "timelines", "training", "tsne"),
        f"cpsp__{TOY}__{TOY_CPSP_EXPERIMENT}": ("per_class", "timelines", "training"),
    }
    assert figs == {f"figures/{k}/{name}.png" for name, ks in kinds.items() for k in ks}


def test_the_html_report_shows_the_summary_table(wf: WorkflowCopy) -> None:
    """``snakemake --report``, opened in headless Chromium as a reader would (Summary, then
    the entry's eye button), shows the summary's numbers as table text on the page."""
    exe = browser.chromium()
    wf.snakemake("--report", "report.html")
    with (wf.wd / "results/report/summary.tsv").open() as fh:
        ours = [r for r in csv.DictReader(fh, delimiter="\t") if r["source"] == "ours"]
    shown = browser.shown_frame_text(exe, wf.wd / "report.html", "Summary", "Results summary")
    assert shown["width"] > 300 and shown["height"] > 300, shown
    assert shown["left"] < shown["viewport"][0] and shown["top"] < shown["viewport"][1], shown
    ave, em, avvp, *intervals = shown["tables"]
    assert ave.startswith("AVE event localization") and em.startswith("Unsupervised")
    assert intervals and intervals[0].startswith("Headline metrics with 95% confidence")
    for row in ours:
        text = {"ave_accuracy": ave, "em_rounds": em, "avvp": avvp}[row["section"]]
        cell = f"{float(row['mean']):.1f}"
        if int(row["n_seeds"]) > 1:
            cell += f" ± {float(row['std']):.1f}"
        assert f"\t{cell}\t" in text, (row, text)
    assert "\t77.8\t" in ave  # a published row (PSP, fully supervised)
    label = f"unsupervised · {TOY} · clcl"
    (table,) = browser.shown_frame_text(exe, wf.wd / "report.html", "Tables", label)["tables"]
    assert table.startswith(label) and "\n2\t" in table  # the row of EM round 2


HYPERPARAMETERS = [
    (
        "em",
        "epochs",
        {"em": per_seed_round(), "evaluate_unsupervised": per_seed_round(), "report": 1},
    ),
    (
        "selflabel",
        "epochs",
        {
            "selflabel": len(SEEDS),
            "em": per_seed_round(),
            "evaluate_unsupervised": per_seed_round(),
            "report": 1,
        },
    ),
    (
        "pretrain",
        "lr",
        {
            "pretrain": len(SEEDS),
            "selflabel": len(SEEDS),
            "em": per_seed_round(),
            "evaluate_unsupervised": per_seed_round(),
            "report": 1,
        },
    ),
]


@pytest.mark.parametrize(("stage", "key", "expected"), HYPERPARAMETERS)
def test_training_hyperparameter_reruns_that_stage_and_dependents(
    planned_after: PlannedAfter, stage: str, key: str, expected: dict[str, int]
) -> None:
    assert planned_by(planned_after(f"{stage}.{key}")) == expected


def test_report_setting_reruns_only_the_report(planned_after: PlannedAfter) -> None:
    assert planned_by(planned_after("report.precision")) == {"report": 1}


CODE_EDITS = [
    (
        "stages/em.py",
        {"em": per_seed_round(), "evaluate_unsupervised": per_seed_round(), "report": 1},
    ),
    (
        "methods/clcl/model.py",
        {
            "pretrain": len(SEEDS),
            "selflabel": len(SEEDS),
            "em": per_seed_round(),
            "evaluate_unsupervised": per_seed_round(),
            "report": 1,
        },
    ),
    ("metrics/unsupervised.py", {"evaluate_unsupervised": per_seed_round(), "report": 1}),
    ("report/figures.py", {"report": 1}),
]


@pytest.mark.parametrize(("source", "expected"), CODE_EDITS)
def test_editing_code_reruns_the_stages_that_run_it(
    planned_after: PlannedAfter, source: str, expected: dict[str, int]
) -> None:
    assert planned_by(planned_after(source)) == expected


METHOD_EDITS = [
    ("methods/cpsp/model.py", {"cpsp": len(SEEDS), "evaluate_cpsp": len(SEEDS), "report": 1}),
    # the AVE metric: PSP's validation selection, its evaluation, and the unsupervised
    # evaluation, which maps pseudo-classes onto the same segment labels
    (
        "metrics/ave.py",
        {
            "cpsp": len(SEEDS),
            "evaluate_cpsp": len(SEEDS),
            "evaluate_unsupervised": per_seed_round(),
            "report": 1,
        },
    ),
]


@pytest.mark.parametrize(("source", "expected"), METHOD_EDITS)
def test_editing_a_method_reruns_only_its_stages(
    planned_after: PlannedAfter, source: str, expected: dict[str, int]
) -> None:
    if "cpsp" not in RULES or not (REPO / "avpipe" / source).is_file():
        pytest.skip(f"rule cpsp or avpipe/{source} is not there")
    assert planned_by(planned_after(source)) == expected


# A fourth method family, added as docs/extending.md says: its package, one registry
# entry and its config section -- three files, no rule file, no schema, no report code.
TOY_METHOD = {
    "avpipe/methods/toyave/__init__.py": (Path(__file__).parent / "toy_method.py").read_text(),
    "avpipe/methods/registry.py": """
METHODS["toyave"] = Method(
    family="toyave",
    stage="train",
    config="avpipe.methods.toyave:Config",
    trainer="avpipe.methods.toyave:fit",
    predict="avpipe.methods.toyave:predict",
    task="ave",
    code=("methods/toyave",),
    stores=("audio_recipe",),
)
""",
    "config/config.yaml": f"\ntoyave:\n  datasets: [{TOY}]\n  epochs: 40\n",
}


def test_a_fourth_method_family_runs_train_evaluate_report(wf: WorkflowCopy) -> None:
    """Three files added to (the registry and the config appended to): the workflow plans
    the new method's training and evaluation, reruns nothing else but the report, and
    the report's AVE table shows it; then a dry run has nothing to do."""
    package = wf.wd / "avpipe/methods/toyave"
    try:
        for rel, text in TOY_METHOD.items():
            path = wf.wd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((path.read_text() if path.exists() else "") + text)
        run = wf.run("all")  # its job table: what was planned (one dry run less)
        assert job_counts(run.stdout + run.stderr) == {
            "train": len(SEEDS),
            "evaluate_train": len(SEEDS),
            "report": 1,
        }
        metrics = json.loads(
            (wf.wd / f"results/evaluate/train/{TOY}/toyave/seed0/metrics.json").read_text()
        )
        # audio prototypes 2 std apart: well above the all-background answer (~45 %)
        assert metrics["task"] == "ave" and metrics["metrics"]["accuracy"] > 80, metrics
        history = (wf.wd / f"results/train/{TOY}/toyave/seed0/history.tsv").read_text()
        assert len(history.splitlines()) == 1 + 40  # epochs from the config section
        with (wf.wd / "results/report/summary.tsv").open() as fh:
            rows = [r for r in csv.DictReader(fh, delimiter="\t") if "toyave" in r["method"]]
        assert [r["section"] for r in rows] == ["ave_accuracy"], rows
        assert float(rows[0]["mean"]) == pytest.approx(metrics["metrics"]["accuracy"]), rows
        assert wf.planned() == {}
    finally:
        shutil.rmtree(package, ignore_errors=True)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> WorkflowCopy:
    """The synthetic AVE part (smoke preset, one shard) up to its two feature stores."""
    if not {"synthetic", "extract", "extract_gather"} <= RULES:
        pytest.skip("rules synthetic, extract and extract_gather are not all there")
    wf = WorkflowCopy(tmp_path_factory.mktemp("extract"))
    cfg = wf.config()
    cfg["synthetic"]["preset"] = "smoke"
    cfg["run"] = {**cfg["run"], "seeds": [0], "device": "cpu"}
    cfg["datasets"] = {"synth_ave": cfg["datasets"]["synth_ave"]}
    cfg["extract"]["stores"] = {"synth_ave": cfg["extract"]["stores"]["synth_ave"]}
    cfg["decode"].setdefault("overrides", {}).setdefault("synth_ave", {})["shards"] = 1
    for section in ("unsupervised", "cpsp", "avvp"):
        cfg[section]["datasets"] = []
    wf.write_config(drop_undefined_datasets(cfg))
    wf.run("all")
    assert wf.planned() == {}
    return wf


def _shard_log(wf: WorkflowCopy) -> tuple[int, dict[str, tuple[int, int]]]:
    """(videos decoded, {recipe: (computed, from cache)}) from the shard job's log."""
    log = (wf.wd / "logs/extract/synth_ave/shard0.log").read_text()
    decoded = re.search(r"videos \(.*\), (\d+) decoded", log)
    lines = re.findall(r"(\w+): (\d+) videos computed, (\d+) from cache", log)
    assert decoded and lines, log[-2000:]
    return int(decoded[1]), {r: (int(c), int(h)) for r, c, h in lines}


def _arrays(path) -> dict[str, bytes]:
    import zarr

    g = zarr.open_group(str(path), mode="r")
    return {name: a[:].tobytes() for name, a in g.arrays()} | {"attrs": repr(dict(g.attrs))}


def test_changing_one_extractor_recipe_recomputes_only_its_features(
    extracted: WorkflowCopy,
) -> None:
    """One job computes every recipe of a dataset from one decode, so editing one recipe
    reruns that dataset's shard job(s), its gathers and failures table -- and, in a full
    study, every stage that reads the dataset's stores (README "Cluster, caching,
    reruns"). Only the edited recipe goes through its model; the other recipe's features
    come from the cache and its store is byte-identical."""
    wf = extracted
    original = wf.config_path.read_text()
    store = wf.wd / "results/extract/synth_ave/vggish.zarr"
    before = _arrays(store)
    try:
        cfg = wf.config()
        over = cfg["extract"]["overrides"]["synth_ave"]["vgg19_pool5"]
        over["input_size"] = over.get("input_size", 224) // 2
        wf.write_config(cfg)
        assert wf.planned() == {"extract": 1, "extract_gather": 2, "extract_failures": 1}
        wf.run("all")
        decoded, lines = _shard_log(wf)
        assert decoded == 12 and lines == {"vgg19_pool5": (12, 0), "vggish": (0, 12)}
        assert _arrays(store) == before
    finally:
        wf.config_path.write_text(original)
    wf.run("all")  # back: both recipes from the cache, nothing decoded
    assert _shard_log(wf) == (0, {"vgg19_pool5": (0, 12), "vggish": (0, 12)})


def test_adding_videos_extends_not_rebuilds(extracted: WorkflowCopy) -> None:
    """Two videos added to synth_ave (smoke preset: 12 videos, all with audio and video):
    Snakemake reruns every job downstream of the changed manifest -- synthetic (params
    changed), manifest, the shard job, gathers and failures -- but the shard job takes the 12
    old videos from the per-video cache (avpipe/io/cache.py, keyed by the file's content):
    it decodes and computes the 2 new ones only.  Gather only concatenates.  Stages that
    train on the whole dataset (unsupervised, cpsp, avvp; off in this fixture) would rerun in
    full: there is nothing to extend in a model trained on other data.  Going back to 12
    videos then decodes and computes nothing.
    """
    wf = extracted
    recipes = sorted(wf.config()["extract"]["stores"]["synth_ave"])
    original = wf.config_path.read_text()
    try:
        cfg = wf.config()
        cfg["synthetic"].setdefault("ave", {})["train"] = 8  # smoke: 6 train videos
        wf.write_config(cfg)
        planned = wf.planned()
        assert dict(planned) == {
            "synthetic": 1,
            "manifest": 1,
            "extract": 1,  # one shard here; every shard in general
            "extract_gather": len(recipes),
            "extract_failures": 1,
        }, planned
        wf.run("all")
        assert _shard_log(wf) == (2, {r: (2, 12) for r in recipes})
        for recipe in recipes:
            store = FeatureStore(wf.wd / f"results/extract/synth_ave/{recipe}.zarr")
            assert len(store.video_ids) == 14
    finally:
        wf.config_path.write_text(original)
    wf.run("all")  # back to 12 videos: every one from the cache
    assert _shard_log(wf) == (0, {r: (0, 12) for r in recipes})
    assert wf.planned() == {}
