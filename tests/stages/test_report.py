"""``avpipe report`` as the workflow calls it: any subset of evaluation outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import build_tree, metrics_files

from avpipe.cli import main as avpipe_main


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("report-stage"))


def _report(root: Path, out: Path, metrics: list[Path], cfg: dict) -> int:
    return avpipe_main(
        [
            "report",
            "--metrics",
            *map(str, metrics),
            "--manifest-root",
            str(root / "results/manifest"),
            "--config-json",
            json.dumps(cfg),
            "--out-dir",
            str(out),
        ]
    )


def test_no_metrics_writes_an_empty_summary(tree: Path, tmp_path: Path) -> None:
    assert _report(tree, tmp_path / "r", [], {"published": False}) == 0
    md = (tmp_path / "r/summary.md").read_text()
    assert md.count("_no runs_") == 3 and "published" not in md.split("## AVE")[1]
    assert (tmp_path / "r/figures.txt").read_text() == ""


def test_seed_filter_and_single_stage(tree: Path, tmp_path: Path) -> None:
    files = [p for p in metrics_files(tree) if "/cpsp/" in str(p)]
    assert _report(tree, tmp_path / "r", files, {"seeds": [1], "dpi": 50}) == 0
    (row,) = [r for r in (tmp_path / "r/summary.tsv").read_text().splitlines() if "\tours\t" in r]
    assert row.split("\t")[10] == "1"  # n_seeds
    assert sorted(p.name for p in (tmp_path / "r/tables").iterdir()) == [
        "cpsp__toy__psp_weak.html",
        "cpsp__toy__psp_weak.md",
        "cpsp__toy__psp_weak.tsv",
    ]


def test_unknown_config_key_is_named(tree: Path, tmp_path: Path) -> None:
    assert _report(tree, tmp_path / "r", [], {"colour": "red"}) == 2


def test_a_path_outside_the_layout_is_an_error(tree: Path, tmp_path: Path) -> None:
    bad = tmp_path / "metrics.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation output"):
        _report(tree, tmp_path / "r", [bad], {})
