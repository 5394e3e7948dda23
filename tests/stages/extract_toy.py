"""A toy dataset for the extraction stage: six videos with every kind of trouble."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from avmedia import make_media  # noqa: E402

from avpipe.cli import main  # noqa: E402
from avpipe.datasets.manifest import Manifest, Sample  # noqa: E402

RECIPES = {
    "vggish": {"weights": "random"},
    "r2plus1d18": {"weights": "random", "frames_per_segment": 2, "input_size": 32},
}
CFG = {"recipes": RECIPES, "shards": 2, "batch_size": 4, "device": "cpu", "num_threads": 1}


def toy_manifest(tmp_path: Path) -> Path:
    """Six videos (two rows for one of them): good, silent, audio-only, broken, missing."""
    v = tmp_path / "videos"
    make_media(v / "a.mp4", 2.0)
    make_media(v / "b.mp4", 1.0, audio=None)
    make_media(v / "c.m4a", 2.0, video=False)
    make_media(v / "d.mp4", 3.0)
    (v / "e.mp4").write_bytes(b"broken")
    files = {"a": "a.mp4", "b": "b.mp4", "c": "c.m4a", "d": "d.mp4", "e": "e.mp4", "f": "f.mp4"}
    samples = [
        Sample(k, k, "train", str(v / f), 2.0, 2, k != "f", i)
        for i, (k, f) in enumerate(files.items())
    ]
    samples.append(Sample("a#2", "a", "test", str(v / "a.mp4"), 2.0, 2, True, 6))
    Manifest("toy", "folder", ["x"], samples, []).write(tmp_path / "manifest")
    return tmp_path / "manifest"


def run_extract(
    manifest: Path,
    out: Path,
    shard: int,
    cfg: dict | None = None,
    cache: Path | None = None,
    workers: int = 1,
) -> int:
    """``avpipe extract shard`` into ``out/shard<k>``; returns the exit code."""
    argv = [
        "extract",
        "shard",
        "--manifest",
        str(manifest),
        "--shard",
        str(shard),
        "--config-json",
        json.dumps(CFG if cfg is None else cfg),
        "--out",
        str(out / f"shard{shard}"),
        "--workers",
        str(workers),
    ]
    if cache is not None:
        argv += ["--cache-dir", str(cache)]
    return main(argv)
