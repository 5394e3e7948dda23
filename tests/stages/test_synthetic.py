"""``avpipe synthetic``: the stage CLI and its Snakemake rule (one job per part)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from avpipe.cli import main
from avpipe.datasets.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "preset": "smoke",
    "duration_s": 3,
    "ave": {"train": 3, "val": 1, "test": 1},
    "llp": {"train": 3, "val": 1, "test": 1},
}


def test_stage_writes_the_llp_layout(tmp_path: Path) -> None:
    out = tmp_path / "llp"
    cfg = json.dumps(TINY)
    assert main(["synthetic", "--part", "llp", "--config-json", cfg, "--out-dir", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "videos",
        "AVVP_train.csv",
        "AVVP_val_pd.csv",
        "AVVP_test_pd.csv",
        "AVVP_dataset_full.csv",
        "AVVP_eval_audio.csv",
        "AVVP_eval_visual.csv",
        "categories.txt",
        "truth.tsv",
        "synthetic.json",
    }
    assert len(list((out / "videos").glob("*.mp4"))) == 5
    summary = json.loads((out / "synthetic.json").read_text())
    assert summary["videos"] == {"train": 3, "val": 1, "test": 1}
    assert summary["config"]["duration_s"] == 3 and summary["config"]["n_classes"] == 3
    assert [c["name"] for c in summary["classes"]] == ["Chime", "Buzzer", "Whistle"]
    assert not list(tmp_path.glob("*.tmp-*"))  # written under a temporary name, then renamed


def test_stage_rejects_a_bad_key(tmp_path: Path, capsys) -> None:
    cfg = json.dumps({"preset": "smoke", "ave": {"tarin": 2}})
    assert (
        main(["synthetic", "--part", "ave", "--config-json", cfg, "--out-dir", str(tmp_path / "o")])
        == 2
    )
    assert "unknown key 'tarin'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_rule_generates_both_parts_then_manifests_read_them(workflow_copy: Path) -> None:
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["synthetic"].update({k: v for k, v in TINY.items() if k not in ("ave", "llp")})
    cfg["synthetic"]["ave"].update(TINY["ave"])
    cfg["synthetic"]["llp"].update(TINY["llp"])
    cfg_path.write_text(yaml.safe_dump(cfg))
    targets = ["results/manifest/synth_ave/coverage.tsv", "results/manifest/synth_llp/coverage.tsv"]
    r = _snakemake(workflow_copy, *targets)
    assert r.returncode == 0, r.stdout + r.stderr
    for name, n_classes in (("synth_ave", 3), ("synth_llp", 3)):
        m = Manifest.read(workflow_copy / "results" / "manifest" / name)
        assert len(m.samples) == 5 and len(m.classes) == n_classes
        assert all(s.present and s.n_segments == 3 for s in m.samples)
    assert (workflow_copy / "logs" / "synthetic" / "ave.log").is_file()

    # each job gets only its own part's section: a change to llp leaves ave alone
    cfg["synthetic"]["llp"]["train"] = 4
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = _snakemake(workflow_copy, "-n", "--printshellcmds", *targets)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--part llp" in r.stdout and "--part ave" not in r.stdout
    assert "avpipe manifest --dataset synth_llp" in r.stdout
    assert "avpipe manifest --dataset synth_ave" not in r.stdout
