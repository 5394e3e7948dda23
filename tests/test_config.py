from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from avpipe.config import ConfigError, from_dict, load_config, resolve
from avpipe.methods.cpsp.config import CpspStage


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    epochs: int
    inner: Inner = field(default_factory=Inner)
    seeds: tuple[int, ...] = (0,)


def test_builds_nested_and_converts() -> None:
    cfg = from_dict(Outer, {"epochs": 3, "inner": {"lr": 1, "mode": "b"}, "seeds": [1, 2]})
    assert cfg == Outer(epochs=3, inner=Inner(lr=1.0, mode="b"), seeds=(1, 2))
    assert isinstance(cfg.inner.lr, float)


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="'epoch'"):
        from_dict(Outer, {"epoch": 3})


def test_bad_value_names_the_path() -> None:
    with pytest.raises(ConfigError, match=r"config\.inner\.mode: 'c'"):
        from_dict(Outer, {"epochs": 1, "inner": {"mode": "c"}})
    with pytest.raises(ConfigError, match=r"config\.epochs: expected an integer"):
        from_dict(Outer, {"epochs": 1.5})


# --- avpipe.config.resolve: one precedence for the workflow and the command line ----------

REPO = Path(__file__).resolve().parents[1]


def _yaml() -> dict[str, Any]:
    return load_config(REPO / "config/config.yaml")


def test_an_experiments_own_schedule_beats_the_dataset_override() -> None:
    """Issue 14 item 7: synth_ave's override (milestones [10]) used to replace the weak
    experiments' own [5, 20, 40]; the override still sets what they leave open."""
    cfg = _yaml()
    weak = resolve("cpsp", "synth_ave", experiment="psp_weak", config=cfg)["run"]["train"]
    full = resolve("cpsp", "synth_ave", experiment="psp_full", config=cfg)["run"]["train"]
    assert weak["milestones"] == [5, 20, 40] and full["milestones"] == [10]
    assert weak["epochs"] == full["epochs"] == 15 and weak["lr"] == 0.003
    base = resolve("cpsp", None, experiment="psp_full", config=cfg)["run"]["train"]
    assert base["milestones"] == [10, 20, 30] and base["epochs"] == 45


def test_overrides_merge_key_by_key_at_every_depth() -> None:
    cfg = _yaml()
    pre = resolve("unsupervised", "synth_ave", stage="pretrain", config=cfg)
    assert pre["pretrain"]["encoder"] == {
        "d_model": 128,
        "heads": 4,
        "spatial_attention": "paper",
        "residual_norm": True,
    }
    assert pre["data"]["standardize"] is True and pre["data"]["device"] == "auto"
    em = resolve("unsupervised", "synth_ave", stage="em", config=cfg)
    assert set(em) == {"data", "selflabel", "em"} and em["em"]["rounds"] == 3
    han = resolve("avvp", "synth_llp", method="han", config=cfg)
    assert han["han"]["model"]["d_model"] == 64 and han["han"]["model"]["heads"] == 1
    assert set(han) == {"data", "han"}


def test_set_edits_the_yaml_before_resolving(tmp_path: Path) -> None:
    cfg = load_config(
        REPO / "config/config.yaml",
        ["cpsp.overrides.synth_ave.train.epochs=3", "run.device=cpu"],
    )
    out = resolve("cpsp", "synth_ave", experiment="cpsp_weak", config=cfg)
    assert out["run"]["train"]["epochs"] == 3 and out["data"]["device"] == "cpu"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(REPO / "config/config.yaml", ["cpsp.train.epochs"])
    with pytest.raises(ConfigError, match=r"run\.seeds is \[0, 1, 2\], not a mapping"):
        load_config(REPO / "config/config.yaml", ["run.seeds.x=1"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"section": "cpsp", "dataset": "nope", "experiment": "psp_full"}, "dataset 'nope'"),
        ({"section": "cpsp", "dataset": None, "experiment": "psp"}, "'psp' is not defined"),
        ({"section": "avvp", "dataset": None, "method": None}, "a method or variant needed"),
        ({"section": "nope", "dataset": None}, "no config section 'nope'"),
    ],
)
def test_bad_names_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(config=_yaml(), **kwargs)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avpipe.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_print_config_shows_what_the_workflow_passes() -> None:
    r = _cli(
        "cpsp",
        "--config",
        "config/config.yaml",
        "--dataset",
        "synth_ave",
        "--experiment",
        "cpsp_weak",
        "--set",
        "run.device=cpu",
        "--print-config",
    )
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    cfg = load_config(REPO / "config/config.yaml", ["run.device=cpu"])
    passed = resolve("cpsp", "synth_ave", experiment="cpsp_weak", config=cfg)
    # the slice the rule passes, with every default of the dataclass filled in
    assert from_dict(CpspStage, shown) == from_dict(CpspStage, passed)
    assert shown["run"]["train"]["milestones"] == [5, 20, 40] and shown["data"]["device"] == "cpu"
    assert shown["run"]["spsa_temperature"] == 0.6  # a default nobody wrote


def test_config_json_takes_the_yamls_shape() -> None:
    """`avpipe cpsp --config-json '{"train": ...}'` used to say "unknown key 'train'"."""
    r = _cli("cpsp", "--config-json", '{"train": {"epochs": 3}}', "--print-config")
    assert r.returncode == 0, r.stderr
    train = yaml.safe_load(r.stdout)["run"]["train"]
    assert train["epochs"] == 3 and train["milestones"] == [10, 20, 30]
    r = _cli("cpsp", "--config-json", '{"train": {"epoch": 3}}', "--out-dir", "x")
    assert r.returncode == 2 and "unknown key(s) 'epoch'" in r.stderr, r.stderr


def test_a_variant_and_a_dataset_change_to_one_experiment_come_last() -> None:
    cfg = _yaml()
    cfg["cpsp"]["overrides"]["synth_ave"]["experiments"] = {"psp_weak": {"train": {"lr": 0.5}}}
    cfg["avvp"]["overrides"]["synth_llp"]["coleaf_cmpae"] = {"train": {"epochs": 3}}
    weak = resolve("cpsp", "synth_ave", experiment="psp_weak", config=cfg)["run"]["train"]
    assert weak["lr"] == 0.5 and weak["milestones"] == [5, 20, 40] and weak["epochs"] == 15
    assert resolve("cpsp", "synth_ave", experiment="cpsp_weak", config=cfg)["run"]["train"][
        "lr"
    ] == pytest.approx(0.003)
    out = resolve("avvp", "synth_llp", method="coleaf_cmpae", config=cfg)
    assert set(out) == {"data", "coleaf"}
    block = out["coleaf"]
    assert block["anchor_backbone"] == "cmpae" and block["train"]["fuse_no_cross"] == 0.3
    assert block["train"]["epochs"] == 3 and block["train"]["lr"] == 1.0e-3  # synth_llp's
    assert (
        resolve("avvp", "synth_llp", method="coleaf", config=cfg)["coleaf"]["train"]["epochs"] == 30
    )
