"""``avpipe manifest``: files written, coverage counts, errors, and the Snakemake rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
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
    problems = [(r[0], r[3], r[4]) for r in _tsv(out / "problems.tsv")[1:]]
    assert [p[:2] for p in problems] == [  # vid_c cannot be opened: one row, not also no_audio
        ("vid_b", "no_audio"),
        ("vid_c", "unreadable"),
        ("vid_d", "missing"),
    ]
    assert problems[1][2].startswith("cannot open: ") and problems[2][2] == "file not found"
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


def _run(cfg: dict, out: Path) -> int:
    return main(
        ["manifest", "--dataset", "d", "--config-json", json.dumps(cfg), "--out-dir", str(out)]
    )


def _write_audio(path: Path, seconds: float) -> None:
    """An audio-only file (AAC in ``path``'s container, e.g. .m4a)."""
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=16000)
        n = int(seconds * 16000)
        for start in range(0, n, 1024):
            block = np.zeros((1, min(1024, n - start)), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


def test_folder_names_every_file_it_does_not_take(
    tmp_path: Path, mp4_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """.m4a used to vanish; every entry is now a sample or a skipped row with its reason."""
    media = tmp_path / "media"
    mp4_factory(media / "clip.mp4", 2.0)
    _write_audio(media / "song.m4a", 3.0)
    (media / "notes.txt").write_text("not a video")
    (media / ".DS_Store").write_bytes(b"\x00")
    (media / "take.xyz").write_bytes(b"\x00")
    (media / "sub").mkdir()
    out = tmp_path / "out"
    assert _run({"format": "folder", "root": str(media)}, out) == 0
    m = Manifest.read(out)
    assert [(s.sample_id, s.n_segments) for s in m.samples] == [("clip", 2), ("song", 3)]
    assert m.meta["skipped"] == {
        "hidden": 1,
        "not_media": 1,
        "subfolder": 1,
        "unknown_extension": 1,
    }
    skipped = [(r[2], r[3], r[4]) for r in _tsv(out / "problems.tsv")[1:] if r[3] == "skipped"]
    assert skipped == [
        (str(media / ".DS_Store"), "skipped", "hidden: hidden file"),
        (str(media / "notes.txt"), "skipped", "not_media: not a media file (.txt)"),
        (str(media / "sub"), "skipped", "subfolder: a folder (set recursive: true to search it)"),
        (
            str(media / "take.xyz"),
            "skipped",
            "unknown_extension: extension '.xyz' is not a known audio/video container; "
            "rename the file if PyAV reads it",
        ),
    ]
    err = capsys.readouterr().err
    assert f"skipped {media / 'take.xyz'}: extension '.xyz'" in err
    assert f"4 entries of {media} skipped (hidden 1, not_media 1, subfolder 1" in err


def _llp_files(root: Path, eval_audio: bool = True) -> None:
    (root / "AVVP_train.csv").write_text("filename\tevent_labels\naaaaaaaaaaa_0_10\tSpeech,Dog\n")
    (root / "AVVP_val_pd.csv").write_text("filename\tevent_labels\nbbbbbbbbbbb_0_10\tDog\n")
    (root / "AVVP_test_pd.csv").write_text("filename\tevent_labels\nccccccccccc_0_10\tCar\n")
    dense = "filename\tonset\toffset\tevent_labels\nbbbbbbbbbbb_0_10\t0\t3\tDog\n"
    if eval_audio:
        (root / "AVVP_eval_audio.csv").write_text(dense)
    (root / "AVVP_eval_visual.csv").write_text(dense)


def _bad_latin1_ave(root: Path) -> dict:
    (root / "Annotations.txt").write_bytes(b"Bark&v1&good&0&10\nBark&caf\xe9&good&0&10\n")
    return {"format": "ave", "root": str(root)}


def _missing_llp_eval(root: Path) -> dict:
    _llp_files(root, eval_audio=False)
    return {"format": "llp", "root": str(root)}


def _llp_typo(root: Path) -> dict:
    _llp_files(root)
    (root / "AVVP_train.csv").write_text("filename\tevent_labels\naaaaaaaaaaa_0_10\tSpeech,Dgo\n")
    return {"format": "llp", "root": str(root)}


def _ave_duplicate_train_line(root: Path) -> dict:
    rows = ["Bark&v1&good&0&10", "Bark&v2&good&0&10"]
    (root / "Annotations.txt").write_text("\n".join(rows) + "\n")
    (root / "trainSet.txt").write_text(f"{rows[0]}\n{rows[0]}\n")
    (root / "valSet.txt").write_text("")
    (root / "testSet.txt").write_text(f"{rows[1]}\n")
    return {"format": "ave", "root": str(root)}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _bad_latin1_ave,
            "{root}/Annotations.txt:2: not UTF-8 text (byte 0xe9 at byte offset 26: "
            "invalid continuation byte); save the file as UTF-8",
        ),
        (
            _missing_llp_eval,
            "LLP audio eval file not found: {root}/AVVP_eval_audio.csv "
            "(set by datasets.d.eval_audio, relative to root)",
        ),
        (
            _llp_typo,
            "{root}/AVVP_train.csv:2: unknown class 'Dgo' (not in the 25 LLP classes; "
            "set classes_file for a class list of your own); did you mean 'Dog'?",
        ),
        (
            _ave_duplicate_train_line,
            "{root}/trainSet.txt:2: 'Bark&v1&good&0&10' duplicates line 1 of the same file",
        ),
    ],
)
def test_bad_annotation_is_one_message_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    assert _run(make(root), tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"dataset d: {message.format(root=root)}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "samples.tsv").exists()
