"""``avpipe extract``: shard -> gather -> failures with the real registry (random weights,
tiny inputs), provenance attributes, and per-recipe rule params in the workflow."""

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
from test_decode import run_decode, toy_manifest  # noqa: E402

from avpipe.cli import main  # noqa: E402
from avpipe.io.store import FeatureStore  # noqa: E402

RECIPES = {
    "vggish": {"weights": "random"},
    "r2plus1d18": {"weights": "random", "frames_per_segment": 2, "input_size": 32},
}


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("extract")
    manifest = toy_manifest(tmp)
    for k in range(2):
        assert run_decode(manifest, tmp / "decode", k) == 0
    return tmp


def extract_cfg(recipe: str) -> str:
    return json.dumps(
        {
            "recipe": recipe,
            "options": RECIPES[recipe],
            "batch_size": 4,
            "device": "cpu",
            "num_threads": 1,
        }
    )


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_shard_then_gather_builds_one_store(decoded: Path, recipe: str) -> None:
    shards = []
    for k in range(2):
        out = decoded / "extract" / recipe / f"shard{k}.zarr"
        assert (
            main(
                [
                    "extract",
                    "shard",
                    "--decoded",
                    str(decoded / "decode" / f"shard{k}.zarr"),
                    "--config-json",
                    extract_cfg(recipe),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        shards.append(str(out))
    store = decoded / "extract" / f"{recipe}.zarr"
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
    assert attrs["decode"]["plan"]["frames_per_segment"] == 2 and attrs["padding"]
    if recipe == "vggish":
        assert s.has_audio.tolist() == [True, False, True, True]
        assert not feats[1].any() and feats[0, :2].any()  # b has no audio stream: zeros, flagged
        assert attrs["sample_rate"] == 16000 and attrs["hop_s"] == pytest.approx(0.96)
    else:
        assert s.group["has_video"][:].tolist() == [True, True, False, True]
        assert not feats[2].any() and attrs["fps"] == 2.0
    # plain zarr, no avpipe needed
    assert zarr.open_group(str(store), mode="r")["features"].shape == (4, 3, width)


def test_shard_cache_dir_reuses_videos_and_keeps_the_store(
    decoded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cache-dir: a second run takes every video from the cache; same store content."""
    cache = decoded / "cache" / "r2plus1d18"

    def shard(out: str, *extra: str) -> Path:
        path = decoded / "cached" / out
        args = ["extract", "shard", "--decoded", str(decoded / "decode" / "shard0.zarr")]
        args += ["--config-json", extract_cfg("r2plus1d18"), "--out", str(path), *extra]
        assert main(args) == 0
        return path

    plain = shard("plain.zarr")
    capsys.readouterr()
    first = shard("first.zarr", "--cache-dir", str(cache))
    second = shard("second.zarr", "--cache-dir", str(cache))
    lines = [m for m in capsys.readouterr().err.splitlines() if "extract:" in m]
    got = [re.search(r"(\d+) of (\d+) videos from cache \(.*\), (\d+) computed", m) for m in lines]
    n = len(FeatureStore(plain).video_ids)
    with_video = int(FeatureStore(plain).group["has_video"][:].sum())
    assert [tuple(map(int, m.groups())) for m in got if m] == [
        (0, n, with_video),
        (with_video, n, 0),
    ]
    assert len(list(cache.rglob("*.npz"))) == with_video
    for other in (first, second):
        a, b = zarr.open_group(str(plain), mode="r"), zarr.open_group(str(other), mode="r")
        for name, arr in a.arrays():
            assert arr[:].tobytes() == b[name][:].tobytes(), name


def test_failures_table(decoded: Path) -> None:
    out = decoded / "failures.tsv"
    assert (
        main(
            [
                "extract",
                "failures",
                *map(str, sorted((decoded / "decode").glob("*.tsv"))),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with out.open() as fh:
        rows = {r["video_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert {v: r["status"] for v, r in rows.items()} == {
        "b": "no_audio",
        "c": "no_video",
        "e": "failed",
        "f": "failed",
    }
    assert rows["e"]["reason"].startswith("cannot open")


def test_unknown_recipe_option_is_named(decoded: Path) -> None:
    cfg = json.dumps({"recipe": "vggish", "options": {"weigths": "random"}, "device": "cpu"})
    out = decoded / "bad.zarr"
    assert (
        main(
            [
                "extract",
                "shard",
                "--decoded",
                str(decoded / "decode" / "shard0.zarr"),
                "--config-json",
                cfg,
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert not out.exists()


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
    for cmd in re.findall(r"(avpipe (?:decode|extract) [^\n]*)", r.stdout):
        key = re.search(r"--out (\S+)", cmd)
        out[key.group(1) if key else cmd] = cmd
    return out


def test_editing_one_recipe_changes_only_its_jobs(workflow_copy: Path) -> None:
    for d in ("ave", "llp"):
        (workflow_copy / "results" / "synthetic" / d).mkdir(parents=True)
    targets = [f"results/extract/synth_ave/{r}.zarr" for r in ("vggish", "vgg19_pool5")]
    before = _commands(workflow_copy, *targets)
    cfg_path = workflow_copy / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["extract"]["overrides"]["synth_ave"]["vgg19_pool5"]["input_size"] = 96
    cfg_path.write_text(yaml.safe_dump(cfg))
    after = _commands(workflow_copy, *targets)
    assert (
        len(before) == 8 and before.keys() == after.keys()
    )  # 2 decode, 2 x 2 shard jobs, 2 gathers
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == [f"results/extract/synth_ave/vgg19_pool5/shard{k}.zarr" for k in range(2)]
