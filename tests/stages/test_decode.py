"""``avpipe decode``: shard selection from a manifest, outputs and per-video status."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from avmedia import make_media  # noqa: E402

from avpipe.cli import main  # noqa: E402
from avpipe.datasets.manifest import Manifest, Sample  # noqa: E402
from avpipe.io.decode import DecodedShard, shard_of  # noqa: E402

CFG = {"shards": 2, "frames_per_segment": 2, "frame_size": [16, 16], "on_error": "skip"}


def toy_manifest(tmp_path: Path) -> Path:
    """Six videos (two rows for one of them): good, silent, audio-only, broken, missing."""
    v = tmp_path / "videos"
    make_media(v / "a.mp4", 2.0)
    make_media(v / "b.mp4", 1.0, audio=None)
    make_media(v / "c.m4a", 2.0, video=False)
    make_media(v / "d.mp4", 3.0)
    (v / "e.mp4").write_bytes(b"broken")
    files = {"a": "a.mp4", "b": "b.mp4", "c": "c.m4a", "d": "d.mp4", "e": "e.mp4", "f": "f.mp4"}
    samples = [Sample(k, k, "train", str(v / f), 2.0, 2, k != "f", i) for i, (k, f) in enumerate(files.items())]
    samples.append(Sample("a#2", "a", "test", str(v / "a.mp4"), 2.0, 2, True, 6))
    Manifest("toy", "folder", ["x"], samples, []).write(tmp_path / "manifest")
    return tmp_path / "manifest"


def run_decode(manifest: Path, out: Path, shard: int, cfg: dict = CFG) -> int:
    return main([
        "decode", "--manifest", str(manifest), "--shard", str(shard), "--config-json", json.dumps(cfg),
        "--out", str(out / f"shard{shard}.zarr"), "--status", str(out / f"shard{shard}.tsv"), "--workers", "1",
    ])


def test_decode_stage_splits_videos_by_stable_shard(tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path)
    out = tmp_path / "results" / "decode" / "toy"
    status: dict[str, dict[str, str]] = {}
    for k in range(2):
        assert run_decode(manifest, out, k) == 0
        with (out / f"shard{k}.tsv").open() as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                assert shard_of(r["video_id"], 2) == k
                status[r["video_id"]] = r
        shard = DecodedShard(out / f"shard{k}.zarr")
        assert shard.group.attrs["dataset"] == "toy" and shard.group.attrs["config_hash"]
    assert sorted(status) == list("abcdef")  # a video with two rows is decoded once
    assert {v: r["status"] for v, r in status.items()} == {
        "a": "ok", "b": "no_audio", "c": "no_video", "d": "ok", "e": "failed", "f": "failed"
    }
    assert status["e"]["reason"].startswith("cannot open") and status["f"]["reason"].startswith("missing")
    assert status["d"]["n_segments"] == "3" and "h264" in status["d"]["source"]


def test_decode_stage_on_error_raise_stops_without_outputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = toy_manifest(tmp_path)
    assert run_decode(manifest, tmp_path / "out", shard_of("e", 2), {**CFG, "on_error": "raise"}) == 1
    err = capsys.readouterr().err
    assert "cannot open" in err or "missing" in err
    assert not list((tmp_path / "out").glob("shard*"))


def test_decode_stage_rejects_unknown_keys(tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path)
    assert run_decode(manifest, tmp_path / "out", 0, {**CFG, "fps": 3}) == 2
