"""``avpipe manifest``: files written, coverage counts, errors, and the Snakemake rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avpipe.cli import main
from avpipe.datasets.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("samples.tsv", "events.tsv", "classes.txt", "meta.json", "coverage.tsv", "problems.tsv")


def _tsv(path: Path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text().splitlines()]


def _ave_layout(root: Path, mp4_factory) -> None:
    """The synthetic AVE layout with one good, one silent, one broken and one missing video."""
    lines = [
        "Category&VideoID&Quality&StartTime&EndTime",
        "Beep&vid_a&good&0&2",
        "Buzz&vid_b&good&1&2",
        "Beep&vid_b&good&0&1",
        "Buzz&vid_c&good&0&1",
        "Beep&vid_d&good&0&1",
    ]
    (root / "Annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "trainSet.txt").write_text("\n".join(lines[1:3]) + "\n")
    (root / "valSet.txt").write_text("\n".join(lines[3:5]) + "\n")
    (root / "testSet.txt").write_text(lines[5] + "\n")
    mp4_factory(root / "videos" / "vid_a.mp4", 2.0)
    mp4_factory(root / "videos" / "vid_b.mp4", 2.0, audio=False)
    (root / "videos" / "vid_c.mp4").write_bytes(b"\x00" * 64)


def test_manifest_stage_writes_manifest_and_coverage(tmp_path: Path, mp4_factory) -> None:
    root = tmp_path / "ave"
    root.mkdir()
    _ave_layout(root, mp4_factory)
    out = tmp_path / "out"
    cfg = json.dumps({"format": "ave", "root": str(root), "generated": True})
    assert (
        main(["manifest", "--dataset", "synth_ave", "--config-json", cfg, "--out-dir", str(out)])
        == 0
    )
    assert all((out / n).is_file() for n in OUTPUTS)
    cov = _tsv(out / "coverage.tsv")
    assert cov == [
        ["split", "samples", "listed", "present", "decodable", "with_audio"],
        ["train", "2", "2", "2", "2", "1"],
        ["val", "2", "2", "2", "1", "0"],
        ["test", "1", "1", "0", "0", "0"],
        ["all", "5", "4", "3", "2", "1"],
    ]
    problems = {(r[0], r[3]) for r in _tsv(out / "problems.tsv")[1:]}
    assert problems == {
        ("vid_b", "no_audio"),
        ("vid_c", "undecodable"),
        ("vid_c", "no_audio"),
        ("vid_d", "missing"),
    }
    m = Manifest.read(out)
    assert [s.sample_id for s in m.samples] == ["vid_a", "vid_b", "vid_b#2", "vid_c", "vid_d"]
    assert m.samples[0].n_segments == 2 and m.samples[4].n_segments == 10  # probed vs nominal
    assert m.meta["provenance"]["config"]["generated"] is True
    assert (out / "classes.txt").read_text() == "Beep\nBuzz\n"


def test_manifest_stage_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Annotations.txt").write_text("Bark&v1&good&0&10\nBark&v2&good&zero&10\n")
    cfg = json.dumps({"format": "ave", "root": str(tmp_path)})
    assert (
        main(["manifest", "--dataset", "x", "--config-json", cfg, "--out-dir", str(tmp_path / "o")])
        == 1
    )
    assert "Annotations.txt:2: StartTime 'zero' is not an integer" in capsys.readouterr().err
    assert not (tmp_path / "o" / "samples.tsv").exists()
    cfg = json.dumps({"format": "ave", "root": str(tmp_path), "split": "h5"})
    assert (
        main(["manifest", "--dataset", "x", "--config-json", cfg, "--out-dir", str(tmp_path / "o")])
        == 2
    )
    assert "unknown key(s) 'split'" in capsys.readouterr().err


def test_rule_runs_after_synthetic_root_and_on_real_data(
    workflow_copy: Path, shared_data: Path
) -> None:
    """One job per dataset; a generated root is an input (a stand-in synthetic rule makes it)."""
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["datasets"]["ave_real"] = {"format": "ave", "root": str(shared_data / "AVE")}
    cfg_path.write_text(yaml.safe_dump(cfg))
    stub = workflow_copy / "workflow" / "rules" / "synthetic.smk"
    if "rule synthetic" not in stub.read_text():
        stub.write_text(
            'rule synthetic:\n    output:\n        directory("results/synthetic/{name}"),\n'
            '    log:\n        "logs/synthetic/{name}.log",\n'
            '    shell:\n        "mkdir -p {output}"\n'
        )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "-n",
            "--printshellcmds",
            "results/manifest/ave_real/coverage.tsv",
            "results/manifest/synth_llp/coverage.tsv",
            "all",
        ],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "avpipe manifest --dataset ave_real" in r.stdout
    assert (
        "results/synthetic/llp" in r.stdout
    )  # the synthetic job is scheduled before synth_llp's manifest
