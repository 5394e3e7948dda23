"""config/reproduce/*.yaml: each is a complete study that runs from released features.

Dry runs of every config against tiny files in the exact released layouts
(tests/reproduce_fixtures.py) plan no synthetic data, decoding or extraction: only the
manifest (annotations), one import per released store, the method's jobs and the report.
One config (ave_cpsp) runs for real, shortened to one seed and two epochs, and writes the
report.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from reproduce_fixtures import write_ave_release, write_llp_release
from workflow_helpers import REPO, WorkflowCopy, job_counts

from avpipe.io.store import FeatureStore
from avpipe.workflow_checks import released_problems

CONFIGS = sorted(p.stem for p in (REPO / "config/reproduce").glob("*.yaml"))
SEEDS = 3
# jobs per config on the tiny releases (3 seeds each)
PLANNED = {
    "ave_clcl": {
        "extract_import": 2,
        "pretrain": 3,
        "selflabel": 3,
        "em": 9,
        "evaluate_unsupervised": 9,
    },
    "ave_cpsp": {"extract_import": 2, "cpsp": 6, "evaluate_cpsp": 6},
    "ave_psp": {"extract_import": 2, "cpsp": 6, "evaluate_cpsp": 6},
    "llp_coleaf": {"extract_import": 3, "avvp": 3, "evaluate_avvp": 3},
    "llp_han": {"extract_import": 3, "avvp": 3, "evaluate_avvp": 3},
}


def test_every_paper_method_pair_has_a_config() -> None:
    assert sorted(PLANNED) == CONFIGS
    readme = (REPO / "config/reproduce/README.md").read_text()
    for name in CONFIGS:
        assert f"--configfile config/reproduce/{name}.yaml" in readme


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> WorkflowCopy:
    wf = WorkflowCopy(tmp_path_factory.mktemp("reproduce"))
    write_ave_release(wf.wd)
    write_llp_release(wf.wd)
    return wf


MISSING = "missing"  # ave_cpsp with a released file that is not there


@pytest.fixture(scope="module")
def dry_runs(released: WorkflowCopy) -> dict[str, subprocess.CompletedProcess[str]]:
    """The dry run of each config and of MISSING, all started at once."""
    cfg = yaml.safe_load((REPO / "config/reproduce/ave_cpsp.yaml").read_text())
    cfg["datasets"]["ave"]["features"]["vgg19_pool5"]["released"] = "data/AVE/visual_feat.h5"
    (released.wd / f"config/reproduce/{MISSING}.yaml").write_text(yaml.safe_dump(cfg))
    names = [*CONFIGS, MISSING]
    args = [("-n", "--cores", "1", "--configfile", f"config/reproduce/{n}.yaml") for n in names]
    return dict(zip(names, released.snakemake_at_once(*args), strict=True))


@pytest.mark.parametrize("name", CONFIGS)
def test_reproduction_config_plans_only_import_method_and_report(
    dry_runs: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    cfg = yaml.safe_load((REPO / f"config/reproduce/{name}.yaml").read_text())
    assert cfg["run"]["seeds"] == list(range(SEEDS))
    assert released_problems(cfg) == []
    r = dry_runs[name]
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    got = job_counts(out)
    assert got == Counter({"manifest": 1, "report": 1, **PLANNED[name]}), got
    assert "avpipe extract import --format" in out and "synthetic" not in got


def test_missing_released_file_is_named_and_nothing_is_extracted(
    dry_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    r = dry_runs[MISSING]
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Missing input files for rule extract_import" in out
    assert "data/AVE/visual_feat.h5" in out and "rule extract:" not in out


@pytest.mark.slow
def test_ave_cpsp_reproduction_runs_on_released_files(tmp_path: Path) -> None:
    """About 1 min on 2 free CPU cores (two 2-epoch CPSP runs, their evaluations, the report)."""
    wf = WorkflowCopy(tmp_path)
    write_ave_release(wf.wd)
    cfg = yaml.safe_load((REPO / "config/reproduce/ave_cpsp.yaml").read_text())
    cfg["run"] = {"seeds": [0], "device": "cpu"}
    cfg["cpsp"]["train"]["epochs"] = 2
    cfg["cpsp"]["data"]["num_threads"] = 1
    cfg["report"] = {"published": True, "dpi": 50, "tsne": {"max_points": 50}}
    tiny = wf.wd / "config/reproduce/ave_cpsp_tiny.yaml"
    tiny.write_text(yaml.safe_dump(cfg))
    args = (f"--configfile={tiny.relative_to(wf.wd)}",)
    run = wf.run("all", extra=args)  # its job table: what was planned (one dry run less)
    assert job_counts(run.stdout + run.stderr) == Counter(
        {"manifest": 1, "extract_import": 2, "cpsp": 2, "evaluate_cpsp": 2, "report": 1}
    )
    visual = FeatureStore(wf.wd / "results/extract/ave/vgg19_pool5.zarr")
    assert visual.attrs["weights"] == "released" and visual.array().dtype == "float16"
    assert visual.attrs["source"] == "data/AVE/visual_feature.h5"
    assert len(visual) == 16 and visual.attrs["rows_dropped"] == 1
    assert visual.attrs["dropped_rows_identical"] is True
    for exp in ("cpsp_full", "cpsp_weak"):
        metrics = json.loads(
            (wf.wd / f"results/evaluate/cpsp/ave/{exp}/seed0/metrics.json").read_text()
        )
        assert metrics["dataset"] == "ave" and metrics["metrics"]["n_samples"] == 4
        assert 0 <= metrics["metrics"]["accuracy"] <= 100
    summary = (wf.wd / "results/report/summary.md").read_text()
    rows = {line.split(" (")[0]: line for line in summary.splitlines() if "| ours |" in line}
    # each row names its exact variant and the schedule it ran
    assert "CPSP with the intended L_spsa; here 2 epochs" in rows["| FS | cpsp_full"]
    assert "(CPSP; here 2 epochs" in rows["| WS | cpsp_weak"]
    for row in (rows["| FS | cpsp_full"], rows["| WS | cpsp_weak"]):
        assert "| vgg19_pool5 + vggish | ave |" in row and row.endswith("| 1 | ours |")
    assert wf.planned(*args, "all") == Counter()
