"""The DAG builds, validates its config and lints clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dry_run_of_all_builds_the_dag(workflow_copy: Path) -> None:
    r = snakemake(workflow_copy, "-n", "all")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_config_key_is_named(workflow_copy: Path) -> None:
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["run"]["not_a_key"] = 3
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = snakemake(workflow_copy, "-n", "all")
    assert r.returncode != 0
    assert "not_a_key" in r.stdout + r.stderr


def test_bad_value_is_named(workflow_copy: Path) -> None:
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["run"]["device"] = "tpu"
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = snakemake(workflow_copy, "-n", "all")
    assert r.returncode != 0
    assert "tpu" in r.stdout + r.stderr


def test_lint_reports_only_the_conda_finding(workflow_copy: Path) -> None:
    r = snakemake(workflow_copy, "--lint", "json")
    import json

    out = r.stdout[r.stdout.find("{") :]
    report = json.loads(out) if out.strip() else {"snakefiles": [], "rules": []}
    findings = [lint["title"] for s in report.get("snakefiles", []) for lint in s.get("lints", [])]
    findings += [
        lint["title"] for rule in report.get("rules", []) for lint in rule.get("lints", [])
    ]
    other = [f for f in findings if "conda" not in f.lower() and "container" not in f.lower()]
    assert other == [], other
