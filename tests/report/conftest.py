"""Fixtures of the report tests: a results/ tree and one report written from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import build_tree, metrics_files

from avpipe.cli import main as avpipe_main


@pytest.fixture(scope="session")
def results_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("report-tree"))


@pytest.fixture(scope="session")
def report_dir(results_tree: Path) -> Path:
    out = results_tree / "results/report"
    cfg = {"tsne": {"max_points": 200}, "timelines": {"n_videos": 3}, "dpi": 60}
    histories = sorted(results_tree.glob("results/*/toy/seed*/history.tsv"))
    rc = avpipe_main(
        [
            "report",
            "--metrics",
            *map(str, metrics_files(results_tree)),
            "--history",
            *[f"unsupervised={h}" for h in histories],
            "--manifest-root",
            str(results_tree / "results/manifest"),
            "--config-json",
            json.dumps(cfg),
            "--out-dir",
            str(out),
        ]
    )
    assert rc == 0
    return out
