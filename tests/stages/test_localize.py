"""``avpipe localize`` on bad input: one clear error (exit 2), nothing written.

Agreement of its timelines with the evaluated predictions, for one model of each family,
is checked on the finished synthetic study in tests/test_end_to_end.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avpipe.cli import main
from avpipe.localize.inputs import FILE
from avpipe.training.checkpoint import save_checkpoint

GRID = {"hop_s": 1.0, "window_s": 1.0, "placement": "segment"}
STORES = {  # small recipes: the errors come before any model runs
    "audio": {"recipe": "vggish", "options": {"weights": "random"}},
    "visual": {
        "recipe": "r2plus1d18",
        "options": {"weights": "random", "frames_per_segment": 2, "input_size": 32},
    },
}


def model_dir(root: Path, stores: dict = STORES, inputs: bool = True) -> Path:
    """A model folder as ``avpipe cpsp`` leaves it, as far as localize reads it first."""
    root.mkdir(parents=True)
    save_checkpoint(root / "model.pt", {}, {"experiment": "toy"}, classes=["a", "b"])
    if inputs:
        record = {
            "family": "cpsp",
            "dataset": "toy",
            "segment_hop": 1.0,
            "segment_win": 1.0,
            "stores": {
                role: {**s, "path": f"{role}.zarr", "grid": GRID, "weights": "as built"}
                for role, s in stores.items()
            },
            "standardize": {},
        }
        (root / FILE).write_text(json.dumps(record))
    return root


def localize(capsys: pytest.CaptureFixture, model: Path, *videos: Path, out: Path) -> str:
    """Run the CLI; assert it failed with exactly one log line, an error, and return it."""
    capsys.readouterr()
    args = ["localize", "--model", str(model), *map(str, videos), "--out", str(out)]
    rc = main([*args, "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err
    errors = [ln.split(": ", 1)[1] for ln in err.splitlines() if " ERROR " in ln]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err, (rc, err[-2000:])
    assert not (out / "timelines.tsv").exists()
    return errors[0]


@pytest.fixture
def video(tmp_path: Path, mp4_factory) -> Path:
    return mp4_factory(tmp_path / "videos" / "good.mp4", 2.0)


def test_no_model(tmp_path: Path, video: Path, capsys: pytest.CaptureFixture) -> None:
    msg = localize(capsys, tmp_path / "nowhere", video, out=tmp_path / "out")
    assert "no model" in msg and "nowhere" in msg


def test_a_folder_that_is_no_model(
    tmp_path: Path, video: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    msg = localize(capsys, tmp_path / "empty", video, out=tmp_path / "out")
    assert "not a model folder" in msg and "model.pt" in msg and "localizer.pt" in msg


def test_a_model_without_its_inputs_record(
    tmp_path: Path, video: Path, capsys: pytest.CaptureFixture
) -> None:
    model = model_dir(tmp_path / "m", inputs=False)
    msg = localize(capsys, model, video, out=tmp_path / "out")
    assert FILE in msg and "train it again" in msg


def test_a_model_trained_on_imported_features(
    tmp_path: Path, video: Path, capsys: pytest.CaptureFixture
) -> None:
    """Released features imported into a store record no recipe options to remake them."""
    model = model_dir(tmp_path / "m", {**STORES, "audio": {"recipe": "vggish", "options": None}})
    msg = localize(capsys, model, video, out=tmp_path / "out")
    assert "audio store" in msg and "options" in msg and "cannot be remade" in msg


def test_missing_weights(tmp_path: Path, video: Path, capsys: pytest.CaptureFixture) -> None:
    gone = tmp_path / "weights" / "vggish.pth"
    stores = {**STORES, "audio": {"recipe": "vggish", "options": {"weights": str(gone)}}}
    model = model_dir(tmp_path / "m", stores)
    msg = localize(capsys, model, video, out=tmp_path / "out")
    assert msg.startswith("missing weights") and "vggish" in msg and str(gone) in msg


def test_an_undecodable_video_is_named(
    tmp_path: Path, video: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "videos" / "broken.mp4"
    broken.write_bytes(b"not a video")
    model = model_dir(tmp_path / "m")
    msg = localize(capsys, model, tmp_path / "videos", out=tmp_path / "out")
    assert str(broken) in msg and "cannot be decoded" in msg
    assert str(video) not in msg


def test_an_empty_folder_or_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = model_dir(tmp_path / "m")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no video here")
    msg = localize(capsys, model, tmp_path / "none", out=tmp_path / "out")
    assert "no video files" in msg and "none" in msg
    msg = localize(capsys, model, tmp_path / "absent.mp4", out=tmp_path / "out")
    assert "absent.mp4" in msg and "no such" in msg


def test_the_workflow_refuses_localize_runs_on_a_dataset_that_is_no_folder(
    workflow_copy: Path,
) -> None:
    import os
    import subprocess
    import sys

    import yaml

    cfg_path = workflow_copy / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["localize"]["runs"] = {"synth_ave": ["cpsp/synth_ave/cpsp_full/seed0"]}
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "all"],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out, out[-3000:]
    assert "localize.runs.synth_ave: not a dataset of format folder" in out, out[-3000:]
