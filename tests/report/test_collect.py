"""Paths -> runs, and mean ± std over seeds, against hand-worked values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from avpipe.report.collect import group_runs, load_runs, parse_path, stat


def test_parse_path_with_and_without_round() -> None:
    assert parse_path("results/evaluate/unsupervised/synth_ave/clcl/seed3/round2/metrics.json") == {
        "stage": "unsupervised",
        "dataset": "synth_ave",
        "experiment": "clcl",
        "seed": 3,
        "round": 2,
    }
    assert parse_path("/x/results/evaluate/avvp/llp/coleaf/seed0/metrics.json")["round"] is None


def test_parse_path_names_the_expected_layout() -> None:
    with pytest.raises(ValueError, match="seed<s>"):
        parse_path("results/evaluate/avvp/llp/metrics.json")


def test_stat_is_mean_and_sample_std() -> None:
    s = stat([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert s.fmt(1) == "2.0 ± 1.0"
    one = stat([5.0])
    assert math.isnan(one.std) and one.fmt(2) == "5.00"


def _metrics(root: Path, seed: int, acc: float) -> Path:
    p = root / f"results/evaluate/cpsp/ds/psp/seed{seed}/metrics.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"task": "ave", "metrics": {"accuracy": acc, "flag": True}}))
    return p


def test_groups_and_seed_filter(tmp_path: Path) -> None:
    files = [_metrics(tmp_path, s, a) for s, a in ((0, 50.0), (1, 60.0), (2, 70.0))]
    (g,) = group_runs(load_runs(files))
    assert g.seeds == [0, 1, 2] and g.stat("accuracy").mean == 60.0
    assert g.metric_names() == ["accuracy"]  # booleans are not metrics
    (g,) = group_runs(load_runs(files, seeds=[0, 2]))
    assert g.stat("accuracy").std == pytest.approx(math.sqrt(200))
