"""``avpipe extract``: shard -> gather -> failures with the real registry (random weights,
tiny inputs), provenance attributes, the cache, and the rule params in the workflow."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_toy import CFG, RECIPES, run_extract, toy_manifest  # noqa: E402

from avpipe.cli import main  # noqa: E402
from avpipe.io.decode import shard_of  # noqa: E402
from avpipe.io.store import FeatureStore  # noqa: E402


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("extract")
    manifest = toy_manifest(tmp)
    for k in range(2):
        assert run_extract(manifest, tmp / "shards", k, workers=2) == 0
    return tmp


def test_shards_split_videos_by_stable_shard_with_a_status_each(extracted: Path) -> None:
    status: dict[str, dict[str, str]] = {}
    for k in range(2):
        with (extracted / "shards" / f"shard{k}" / "status.tsv").open() as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                assert shard_of(r["video_id"], 2) == k
                status[r["video_id"]] = r
        assert sorted(p.name for p in (extracted / "shards" / f"shard{k}").iterdir()) == [
            "r2plus1d18.zarr",
            "status.tsv",
            "vggish.zarr",
        ]  # no decoded frames anywhere
    assert sorted(status) == list("abcdef")  # a video with two rows is extracted once
    assert {v: r["status"] for v, r in status.items()} == {
        "a": "ok",
        "b": "no_audio",
        "c": "no_video",
        "d": "ok",
        "e": "failed",
        "f": "failed",
    }
    assert status["e"]["reason"].startswith("cannot open")
    assert status["f"]["reason"].startswith("missing")
    assert status["d"]["n_segments"] == "3" and "h264" in status["d"]["source"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_shard_then_gather_builds_one_store(extracted: Path, recipe: str) -> None:
    shards = [str(extracted / "shards" / f"shard{k}" / f"{recipe}.zarr") for k in range(2)]
    store = extracted / "extract" / f"{recipe}.zarr"
    assert main(["extract", "gather", *shards, "--out", str(store)]) == 0
    s = FeatureStore(store)
    assert s.video_ids == ["a", "b", "c", "d"]  # e (broken) and f (missing) are not in stores
    assert s.n_segments.tolist() == [2, 1, 2, 3]
    feats = s.load()
    width = {"vggish": 128, "r2plus1d18": 512}[recipe]
    assert feats.shape == (4, 3, width) and np.isfinite(feats).all()
    assert not feats[~s.mask].any()
    attrs = s.attrs
    assert attrs["recipe"] == recipe and attrs["weights"] == "random(seed=0)"
    assert attrs["config_hash"] and attrs["versions"]["torch"] and attrs["shards"] == 2
    assert attrs["grid"]["hop_s"] == 1.0 and attrs["grid"]["window_s"] == 1.0
    assert attrs["padding"] and attrs["frames_resized_in"] == "workers"
    if recipe == "vggish":
        assert s.has_audio.tolist() == [True, False, True, True]
        assert not feats[1].any() and feats[0, :2].any()  # b has no audio stream: zeros, flagged
        assert attrs["sample_rate"] == 16000 and attrs["hop_s"] == 1.0
        assert attrs["grid"]["placement"] == "segment"
    else:
        assert s.group["has_video"][:].tolist() == [True, True, False, True]
        assert not feats[2].any() and attrs["fps"] == 2.0
    # plain zarr, no avpipe needed
    assert zarr.open_group(str(store), mode="r")["features"].shape == (4, 3, width)


def test_cache_dir_skips_decoding_and_keeps_the_stores(
    extracted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cache-dir: the first run fills it, the second decodes nothing; same stores. A new
    recipe option recomputes only that recipe."""
    manifest, cache, out = extracted / "manifest", extracted / "cache", extracted / "cached"
    k = shard_of("a", 2)
    capsys.readouterr()
    assert run_extract(manifest, out / "first", k, cache=cache) == 0
    assert run_extract(manifest, out / "second", k, cache=cache) == 0
    edited = json.loads(json.dumps(CFG))
    edited["recipes"]["r2plus1d18"]["input_size"] = 48
    assert run_extract(manifest, out / "edited", k, edited, cache=cache) == 0
    err = capsys.readouterr().err
    with (extracted / "shards" / f"shard{k}" / "status.tsv").open() as fh:
        status = [r["status"] for r in csv.DictReader(fh, delimiter="\t")]
    n_audio = sum(st in ("ok", "no_video") for st in status)
    n_video = sum(st in ("ok", "no_audio") for st in status)
    decoded = [int(m) for m in re.findall(r"videos \(.*\), (\d+) decoded", err)]
    assert decoded == [sum(st != "failed" for st in status), 0, n_video]
    computed = [
        (r, int(c), int(h))
        for r, c, h in re.findall(r"(\w+): (\d+) videos computed, (\d+) from", err)
    ]
    assert computed == [
        ("vggish", n_audio, 0),
        ("r2plus1d18", n_video, 0),
        ("vggish", 0, n_audio),
        ("r2plus1d18", 0, n_video),
        ("vggish", 0, n_audio),  # another recipe's options: this one comes from the cache
        ("r2plus1d18", n_video, 0),
    ]
    for name in ("vggish.zarr", "r2plus1d18.zarr"):
        a = zarr.open_group(str(extracted / "shards" / f"shard{k}" / name), mode="r")
        b = zarr.open_group(str(out / "second" / f"shard{k}" / name), mode="r")
        for arr_name, arr in a.arrays():
            assert arr[:].tobytes() == b[arr_name][:].tobytes(), (name, arr_name)
    a = zarr.open_group(str(out / "first" / f"shard{k}" / "vggish.zarr"), mode="r")
    b = zarr.open_group(str(out / "edited" / f"shard{k}" / "vggish.zarr"), mode="r")
    assert a["features"][:].tobytes() == b["features"][:].tobytes()


def test_failures_table(extracted: Path) -> None:
    out = extracted / "failures.tsv"
    tables = [str(extracted / "shards" / f"shard{k}" / "status.tsv") for k in range(2)]
    assert main(["extract", "failures", *tables, "--out", str(out)]) == 0
    with out.open() as fh:
        rows = {r["video_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert {v: r["status"] for v, r in rows.items()} == {
        "b": "no_audio",
        "c": "no_video",
        "e": "failed",
        "f": "failed",
    }
    assert rows["e"]["reason"].startswith("cannot open")
    assert {r["shard"] for r in rows.values()} <= {"0", "1"}


def test_on_error_raise_stops_without_outputs(
    extracted: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = {**CFG, "on_error": "raise"}
    out = extracted / "raise"
    assert run_extract(extracted / "manifest", out, shard_of("e", 2), cfg) == 1
    err = capsys.readouterr().err
    assert "cannot open" in err or "missing" in err
    assert not out.exists() or not [p for p in out.iterdir() if ".tmp-" not in p.name]


def test_unknown_keys_and_options_are_named(extracted: Path, capsys: pytest.CaptureFixture) -> None:
    bad = {**CFG, "recipes": {"vggish": {"weigths": "random"}}}
    assert run_extract(extracted / "manifest", extracted / "bad", 0, bad) == 2
    assert "weigths" in capsys.readouterr().err
    assert run_extract(extracted / "manifest", extracted / "bad", 0, {**CFG, "fps": 3}) == 2
    hop = {**CFG, "recipes": {"vggish": {"weights": "random", "hop_s": 0.96}}}
    assert run_extract(extracted / "manifest", extracted / "bad", 0, hop) == 2
    assert "segment grid" in capsys.readouterr().err
    assert not (extracted / "bad").exists()


def test_import_cli_on_the_real_ave_file(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "AVE" / "audio_feature_noisy.h5"
    assert (
        main(
            [
                "extract",
                "import",
                "--format",
                "ave_h5",
                "--source",
                str(src),
                "--recipe",
                "vggish",
                "--out",
                str(tmp_path / "v.zarr"),
            ]
        )
        == 0
    )
    assert FeatureStore(tmp_path / "v.zarr").load().shape == (178, 10, 128)


def _commands(wd: Path, *targets: str) -> dict[str, str]:
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-n", "-p", "--forceall", *targets],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for cmd in re.findall(r"(avpipe extract [^\n]*)", r.stdout):
        key = re.search(r"--out (\S+)", cmd)
        out[key.group(1) if key else cmd] = cmd
    return out


def test_editing_one_recipe_changes_only_the_shard_jobs(workflow_copy: Path) -> None:
    for d in ("ave", "llp"):
        (workflow_copy / "results" / "synthetic" / d).mkdir(parents=True)
    targets = [f"results/extract/synth_ave/{r}.zarr" for r in ("vggish", "vgg19_pool5")]
    before = _commands(workflow_copy, *targets)
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["extract"]["overrides"]["synth_ave"]["vgg19_pool5"]["input_size"] = 96
    cfg_path.write_text(yaml.safe_dump(cfg))
    after = _commands(workflow_copy, *targets)
    assert len(before) == 4 and before.keys() == after.keys()  # 2 shard jobs, 2 gathers
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == [f"results/extract/synth_ave/shards/shard{k}" for k in range(2)]
    for k in changed:  # one job computes both recipes of the dataset
        assert (
            '"vgg19_pool5":' in after[k]
            and '"vggish":' in after[k]
            and '"input_size":96' in after[k]
        )
