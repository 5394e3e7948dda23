"""Hostile media through the ``folder`` adapter and extraction with every recipe.

One module fixture builds the files (``hostile_media.py``), runs ``avpipe manifest``,
one ``avpipe extract shard`` job with all five recipes (random weights, 2 frames per
segment, 32-px inputs, shallow readouts) and ``avpipe extract gather``; the tests then
check, file by file, the manifest row, the problems.tsv rows, the status, reason and
segment count in status.tsv and the mask row in every store.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hostile_media import CASES, VFR_TIMES, Case, build

from avpipe.cli import main
from avpipe.datasets.manifest import segment_count
from avpipe.features.registry import list_recipes
from avpipe.io.decode import VisualNeed, decode_video
from avpipe.io.store import FeatureStore

SMALL = {"weights": "random", "frames_per_segment": 2, "input_size": 32}
RECIPES = {
    "vggish": {"weights": "random"},
    "vgg19_pool5": SMALL,
    "resnet152_maps": SMALL,
    "resnet152_llp": {**SMALL, "readout": "layer1"},
    "r2plus1d18": {**SMALL, "readout": "layer1"},
}
EXTRACT = {"recipes": RECIPES, "shards": 1, "batch_size": 16, "device": "cpu", "num_threads": 2}
BY_ID = {c.video_id: c for c in CASES}
STORED = sorted(c.video_id for c in CASES if c.n_segments is not None)
T_MAX = max(c.n_segments or 0 for c in CASES)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _manifest(folder: Path, out: Path) -> int:
    cfg = json.dumps({"format": "folder", "root": str(folder)})
    return main(["manifest", "--dataset", "hostile", "--config-json", cfg, "--out-dir", str(out)])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    assert _manifest(build(tmp / "videos"), tmp / "manifest") == 0
    shard = tmp / "shard0"
    argv = ["extract", "shard", "--manifest", str(tmp / "manifest"), "--shard", "0"]
    argv += ["--config-json", json.dumps(EXTRACT), "--out", str(shard)]
    assert main(argv) == 0
    for recipe in RECIPES:
        argv = ["extract", "gather", str(shard / f"{recipe}.zarr")]
        assert main([*argv, "--out", str(tmp / "stores" / f"{recipe}.zarr")]) == 0
    return tmp


def test_every_recipe_is_run() -> None:
    assert sorted(RECIPES) == list_recipes()


def test_manifest_keeps_every_file_and_its_id(run: Path) -> None:
    rows = _rows(run / "manifest" / "samples.tsv")
    assert [r["video_id"] for r in rows] == sorted(BY_ID)  # spaces, accents, CJK intact
    for r in rows:
        case = BY_ID[r["video_id"]]
        assert Path(r["path"]).name == case.name
        assert (r["split"], r["present"]) == ("unlabeled", "1")
        assert int(r["n_segments"]) == case.manifest_segments, case.name


def test_problems_name_every_bad_file_once(run: Path) -> None:
    rows = _rows(run / "manifest" / "problems.tsv")
    got = {(r["video_id"], r["problem"]) for r in rows}
    want = {(c.video_id, problem) for c in CASES for problem, _ in c.problems}
    assert got == want  # a file that cannot be opened is not also "no_audio"
    for r in rows:
        reason = dict(BY_ID[r["video_id"]].problems)[r["problem"]]
        assert r["reason"].startswith(reason), r


def test_coverage_counts(run: Path) -> None:
    rows = _rows(run / "manifest" / "coverage.tsv")
    n = len(CASES)
    unopened = sum(c.status == "failed" for c in CASES)
    no_video = sum(not c.has_video for c in CASES)
    no_audio = sum(not c.has_audio for c in CASES)
    assert rows[-1] == {
        "split": "all",
        "samples": str(n),
        "listed": str(n),
        "present": str(n),
        "decodable": str(n - unopened - no_video),  # partial files open and decode
        "with_audio": str(n - unopened - no_audio),
    }


@pytest.fixture(scope="module")
def status(run: Path) -> dict[str, dict[str, str]]:
    return {r["video_id"]: r for r in _rows(run / "shard0" / "status.tsv")}


def test_status_has_one_row_per_file(status: dict[str, dict[str, str]]) -> None:
    assert sorted(status) == sorted(BY_ID)


@pytest.mark.parametrize("case", CASES, ids=[c.video_id for c in CASES])
def test_status_reason_and_segments(status: dict[str, dict[str, str]], case: Case) -> None:
    row = status[case.video_id]
    assert row["status"] == case.status
    if case.reason:
        assert re.match(case.reason, row["reason"]), row["reason"]
    else:
        assert row["reason"] == ""
    assert "\t" not in row["reason"] and "\n" not in row["reason"]
    if case.n_segments is None:
        assert row["n_segments"] == row["duration_s"] == ""
        return
    assert int(row["n_segments"]) == case.n_segments
    duration = float(row["duration_s"])
    assert segment_count(duration) == case.n_segments
    if case.status == "partial":  # the reason says where decoding stopped
        assert f"{duration:.2f}" == re.match(case.reason, row["reason"]).group(1)
    assert case.source in row["source"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_store_rows_and_masks(run: Path, recipe: str) -> None:
    store = FeatureStore(run / "stores" / f"{recipe}.zarr")
    assert store.video_ids == STORED  # failed files are in status.tsv, not in stores
    want = [BY_ID[v].n_segments for v in STORED]
    assert store.n_segments.tolist() == want
    mask = store.mask
    assert mask.shape == (len(STORED), T_MAX)
    for i, n in enumerate(want):
        assert mask[i].tolist() == [True] * n + [False] * (T_MAX - n), STORED[i]
    feats = store.load()
    assert np.isfinite(feats).all() and not feats[~mask].any()
    audio = recipe == "vggish"
    present = [BY_ID[v].has_audio if audio else BY_ID[v].has_video for v in STORED]
    flags = store.has_audio if audio else store.group["has_video"][:]
    assert flags.tolist() == present
    for i, has in enumerate(present):  # a missing stream gives zero rows, flagged above
        assert feats[i].any() == has, STORED[i]


def test_failures_table_lists_every_file_not_ok(run: Path) -> None:
    out = run / "failures.tsv"
    assert main(["extract", "failures", str(run / "shard0" / "status.tsv"), "--out", str(out)]) == 0
    got = {r["video_id"]: r["status"] for r in _rows(out)}
    assert got == {c.video_id: c.status for c in CASES if c.status != "ok"}


def test_vfr_frames_are_picked_by_presentation_time(run: Path) -> None:
    """Frame k of segment t is the source frame nearest to t + k / 2 s; the clip ends at
    its last frame's own end (2.9 s; audio 3 s), not one 0.9-s gap after it."""
    d = decode_video(run / "videos" / "vfr.mp4", needs=(VisualNeed("v", 2),))
    assert (d.n_segments, d.duration_s, d.status) == (3, 3.0, "ok")
    nearest = [int(np.argmin([abs(t - s / 2) for t in VFR_TIMES])) for s in range(6)]
    assert nearest == [0, 3, 5, 7, 8, 9]
    brightness = d.frames("v").reshape(3, 2, -1).mean(-1).ravel()
    assert np.abs(brightness - [(20 * k) % 240 for k in nearest]).max() < 4


def test_file_name_that_is_not_utf8_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    bad = os.fsencode(folder) + b"/clip\xff.mp4"
    with open(bad, "wb"):
        pass
    capsys.readouterr()
    assert _manifest(folder, tmp_path / "manifest") == 1
    err = capsys.readouterr().err
    assert f"{folder}/clip\\xff.mp4: the file name is not UTF-8" in err
    assert "Traceback" not in err and not (tmp_path / "manifest").exists()
    os.rename(bad, os.fsencode(folder) + b"/notes\xff.txt")  # skipped: named in problems.tsv
    assert _manifest(folder, tmp_path / "manifest") == 0
    rows = _rows(tmp_path / "manifest" / "problems.tsv")
    assert [(r["path"], r["problem"]) for r in rows] == [(f"{folder}/notes\\xff.txt", "skipped")]
