"""Confidence intervals and paired comparisons of the report, on hand-worked numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.report import compare
from avpipe.report.collect import Group, Run

# t(0.975, 2) = 4.302653, t(0.975, 4) = 2.776445 (Student t tables)
T2, T4 = 4.302653, 2.776445


def test_t_interval_is_mean_and_t_times_standard_error() -> None:
    iv = compare.t_interval([1.0, 2.0, 3.0])  # mean 2, s = 1, n = 3
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.half_width == pytest.approx(T2 / math.sqrt(3), abs=1e-6)
    assert iv.fmt(2) == "2.00 ± 2.48"
    # five seeds: 70, 71, 72, 73, 74 -> s = sqrt(2.5)
    iv5 = compare.t_interval([70.0, 71.0, 72.0, 73.0, 74.0])
    assert iv5.half_width == pytest.approx(T4 * math.sqrt(2.5) / math.sqrt(5), abs=1e-6)
    one = compare.t_interval([5.0])
    assert math.isnan(one.half_width) and one.fmt(1) == "5.0"
    assert compare.t_interval([]).n == 0


def test_paired_uses_common_seeds_and_counts_drops() -> None:
    a = {0: 10.0, 1: 20.0, 2: 30.0}
    b = {0: 12.0, 1: 21.0, 2: 33.0, 3: 99.0}  # seed 3 has no partner
    r = compare.paired(a, b)
    # d = (2, 1, 3): mean 2, s = 1
    assert (r.mean_a, r.mean_b, r.n_b_below_a, r.diff.n) == (20.0, 22.0, 0, 3)
    assert r.diff.mean == 2.0
    assert r.diff.half_width == pytest.approx(T2 / math.sqrt(3), abs=1e-6)
    assert not r.diff.excludes_zero  # 2 - 2.48 < 0
    # a constant gain of 1 with no spread is a shown difference
    r2 = compare.paired({0: 50.0, 1: 60.0}, {0: 51.0, 1: 61.0})
    assert r2.diff.mean == 1.0 and r2.diff.half_width == 0.0 and r2.diff.excludes_zero
    # a drop on one seed of three
    r3 = compare.paired(a, {0: 11.0, 1: 19.0, 2: 31.0})
    assert r3.n_b_below_a == 1


def _group(stage: str, task: str, exp: str, values: dict[int, float], rnd=None) -> Group:
    metric = {"ave": "accuracy", "avvp": "fixed.segment.Type@AV"}.get(task, "purity")
    runs = [
        Run(
            path=Path(f"results/evaluate/{stage}/ds/{exp}/seed{s}/metrics.json"),
            stage=stage,
            dataset="ds",
            experiment=exp,
            seed=s,
            round=rnd,
            task=task,
            metrics={metric: v, "accuracy": v},
        )
        for s, v in values.items()
    ]
    return Group(stage, "ds", exp, rnd, runs)


def test_pairs_by_name() -> None:
    groups = [
        _group("cpsp", "ave", "psp_full", {0: 80.0, 1: 82.0}),
        _group("cpsp", "ave", "cpsp_full", {0: 81.0, 1: 84.0}),
        _group("cpsp", "ave", "cpsp_full_released", {0: 81.0, 1: 84.0}),  # no psp partner
        _group("avvp", "avvp", "han", {0: 40.0, 1: 42.0}),
        _group("avvp", "avvp", "coleaf", {0: 45.0, 1: 44.0}),
        _group("unsupervised", "unsupervised", "clcl", {0: 60.0, 1: 70.0}, 1),
        _group("unsupervised", "unsupervised", "clcl", {0: 62.0, 1: 65.0}, 2),
    ]
    pairs = compare.find_pairs(groups)
    labels = [(p.kind, p.label, p.metric) for p in pairs]
    assert ("CPSP vs PSP", "cpsp_full − psp_full", "accuracy") in labels
    assert not any("released" in lab for _, lab, _ in labels)
    assert ("CoLeaF vs HAN", "coleaf − han", "fixed.segment.Type@AV") in labels
    em = [p for p in pairs if p.kind == "EM round vs previous" and p.metric == "purity"]
    assert len(em) == 1 and (em[0].a.round, em[0].b.round) == (1, 2)
    r = compare.paired(compare.per_seed(em[0].a, "purity"), compare.per_seed(em[0].b, "purity"))
    assert r.n_b_below_a == 1 and r.diff.mean == -1.5  # d = (2, -5)


def _manifest() -> Manifest:
    # two test videos of 10 segments: events [2, 6) and [0, 10) -> 14 of 20 segments
    samples = [Sample(f"v{i}", f"v{i}", "test", f"v{i}.mp4", 10.0, 10) for i in range(2)]
    samples.append(Sample("t0", "t0", "train", "t0.mp4", 10.0, 10))
    events = [
        Event("v0", "dog", "audio-visual", 2.0, 6.0),
        Event("v1", "cat", "audio-visual", 0.0, 10.0),
        Event("t0", "dog", "audio-visual", 0.0, 0.0),  # background-only training video
    ]
    return Manifest("toy", "ave", ["dog", "cat"], samples, events)


def test_all_event_answer_is_the_event_share() -> None:
    assert compare.all_event_accuracy(_manifest(), "test") == pytest.approx(70.0)
    assert compare.all_event_accuracy(_manifest(), "train") == 0.0
    with pytest.raises(ValueError, match="no 'val' samples"):
        compare.all_event_accuracy(_manifest(), "val")


def test_sections_flag_half_widths_and_weak_rows() -> None:
    groups = [
        _group("cpsp", "ave", "psp_weak", {0: 70.0, 1: 71.0, 2: 72.0}),
        _group("cpsp", "ave", "cpsp_weak", {0: 75.0, 1: 75.0, 2: 75.0}),
    ]
    blocks, tsv = compare.sections(groups, lambda ds: _manifest(), 1)
    ci = {row[0]: row for row in blocks[0].rows}
    assert ci["psp_weak"][3] == "71.0 ± 2.5" and ci["psp_weak"][5] == "no"
    assert ci["cpsp_weak"][5] == "yes"
    (pair,) = blocks[1].rows
    assert pair[6] == "4.0 ± 2.5" and pair[8] == "B higher"
    weak = {row[0]: row for row in blocks[2].rows}
    assert weak["cpsp_weak"][2] == "70.0" and weak["cpsp_weak"][5] == "yes"
    assert weak["psp_weak"][3] == "1.0 ± 2.5" and weak["psp_weak"][5] == "no"
    kinds = [row[0] for row in tsv]
    assert kinds.count("interval") == 2 and kinds.count("paired") == 1
