"""Confidence intervals of the headline metrics and paired comparisons between methods.

Every interval is a two-sided 95 % Student t-interval over the seeds of a run group:
``mean ± t(0.975, n-1) · s / sqrt(n)``, with ``s`` the sample std (ddof 1).  All seeds of
one study score the same test videos, so the interval measures how much a result moves
with the training seed (initialisation, batch order) on that fixed test set; it does not
include the sampling of the test videos themselves.

A paired comparison of method B against method A takes, for each seed both ran with,
``d_s = B_s - A_s`` and reports ``mean(d) ± t(0.975, n-1) · s_d / sqrt(n)``: the seed's
shared test set and shared features cancel out of ``d``.  Pairs (found by name, same
stage and dataset):

* CPSP vs PSP: experiment ``cpsp<rest>`` against ``psp<rest>`` (AVE accuracy);
* CoLeaF vs HAN: method ``coleaf<rest>`` against ``han`` (segment- and event-level
  Type@AV at the fixed thresholds, CoLeaF (ECCV 2024) Table 1's headline columns);
* CLCL: EM round k against round k-1 of the same experiment (purity, accuracy), with the
  number of seeds on which purity fell.

A weakly supervised AVE row is also compared with the all-event answer: every valid
segment of the evaluated split called an event of the video's own class, whose accuracy
is the share of event segments (the constant a weak model reaches when its event gate
never closes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from avpipe.datasets.manifest import Manifest
from avpipe.metrics.ave import segment_labels
from avpipe.report import document as doc
from avpipe.report.collect import Group, by_experiment
from avpipe.utils import atomic

LEVEL = 0.95
# the headline metrics of each evaluation task
HEADLINE: dict[str, tuple[str, ...]] = {
    "ave": ("accuracy",),
    "unsupervised": ("accuracy", "purity"),
    "avvp": ("fixed.segment.Type@AV", "fixed.event.Type@AV"),
}
COLUMNS = [
    "kind",
    "comparison",
    "dataset",
    "metric",
    "mean_a",
    "mean_b",
    "mean",
    "half_width",
    "n",
    "n_b_below_a",
]


@dataclass(frozen=True)
class Interval:
    """``mean ± half_width`` at ``LEVEL``; half_width is NaN with fewer than 2 values."""

    mean: float
    half_width: float
    n: int

    def fmt(self, decimals: int) -> str:
        if math.isnan(self.mean):
            return "–"
        if math.isnan(self.half_width):
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f} ± {self.half_width:.{decimals}f}"

    @property
    def excludes_zero(self) -> bool:
        return not math.isnan(self.half_width) and abs(self.mean) > self.half_width


def t_interval(values: list[float], level: float = LEVEL) -> Interval:
    """Student t-interval of the mean of ``values``."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = sum(values) / n
    if n < 2:
        return Interval(mean, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n), n)


def per_seed(group: Group, metric: str) -> dict[int, float]:
    return {r.seed: r.metrics[metric] for r in group.runs if metric in r.metrics}


@dataclass(frozen=True)
class Paired:
    """B - A over the seeds both have: the difference's interval, the means of A and B on
    those seeds, and on how many seeds B was below A."""

    diff: Interval
    mean_a: float
    mean_b: float
    n_b_below_a: int


def paired(a: dict[int, float], b: dict[int, float], level: float = LEVEL) -> Paired:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return Paired(Interval(math.nan, math.nan, 0), math.nan, math.nan, 0)
    d = [b[s] - a[s] for s in seeds]
    return Paired(
        t_interval(d, level),
        sum(a[s] for s in seeds) / len(seeds),
        sum(b[s] for s in seeds) / len(seeds),
        sum(x < 0 for x in d),
    )


@dataclass(frozen=True)
class Pair:
    kind: str  # "CPSP vs PSP", "CoLeaF vs HAN", "EM round vs previous"
    label: str  # "cpsp_full − psp_full"
    dataset: str
    metric: str
    a: Group
    b: Group


def find_pairs(groups: list[Group]) -> list[Pair]:
    """Every comparison of the module docstring that the groups allow."""
    index = {(g.stage, g.dataset, g.experiment, g.round): g for g in groups}
    out: list[Pair] = []
    for g in groups:
        task, exp = g.runs[0].task, g.experiment
        if task == "ave" and exp.startswith("cpsp"):
            a = index.get((g.stage, g.dataset, "psp" + exp[4:], g.round))
            if a is not None:
                out += [
                    Pair("CPSP vs PSP", f"{exp} − {a.experiment}", g.dataset, m, a, g)
                    for m in HEADLINE["ave"]
                ]
        if task == "avvp" and exp.startswith("coleaf"):
            a = index.get((g.stage, g.dataset, "han", g.round))
            if a is not None:
                out += [
                    Pair("CoLeaF vs HAN", f"{exp} − han", g.dataset, m, a, g)
                    for m in HEADLINE["avvp"]
                ]
    for (_, ds, exp), gs in by_experiment(
        [g for g in groups if g.runs[0].task == "unsupervised"]
    ).items():
        for prev, cur in zip(gs, gs[1:], strict=False):
            label = f"{exp} round {cur.round} − round {prev.round}"
            out += [
                Pair("EM round vs previous", label, ds, m, prev, cur)
                for m in ("purity", "accuracy")
            ]
    return out


def all_event_accuracy(manifest: Manifest, split: str) -> float:
    """Accuracy (%) of calling every valid segment of ``split`` an event of its video's class."""
    samples = [s for s in manifest.samples if s.split == split]
    if not samples:
        raise ValueError(f"{manifest.dataset}: no {split!r} samples for the all-event answer")
    labels = segment_labels(manifest, samples)
    valid = np.arange(labels.shape[1])[None, :] < np.array([s.n_segments for s in samples])[:, None]
    return float((labels[valid] < len(manifest.classes)).mean() * 100.0)


def _weak_ave(groups: list[Group]) -> list[Group]:
    last = [gs[-1] for gs in by_experiment(groups).values()]
    return [
        g
        for g in last
        if g.runs[0].task == "ave"
        and (g.runs[0].info.get("setting") == "weak" or "weak" in g.experiment)
    ]


def sections(
    groups: list[Group],
    manifest_of: Callable[[str], Manifest | None],
    decimals: int,
) -> tuple[list[doc.Block], list[list[Any]]]:
    """The summary's blocks on intervals and comparisons, and their TSV rows (``COLUMNS``)."""
    tsv: list[list[Any]] = []
    ci_rows = []
    for g in groups:
        for m in HEADLINE.get(g.runs[0].task, ()):
            if m not in g.metric_names():
                continue
            iv = t_interval(list(per_seed(g, m).values()))
            name = g.experiment + (f", EM round {g.round}" if g.round is not None else "")
            ok = "–" if math.isnan(iv.half_width) else ("yes" if iv.half_width <= 2.0 else "no")
            ci_rows.append([name, g.dataset, m, iv.fmt(decimals), str(iv.n), ok])
            tsv.append(
                ["interval", name, g.dataset, m, None, None, iv.mean, iv.half_width, iv.n, None]
            )
    pair_rows = []
    for p in find_pairs(groups):
        r = paired(per_seed(p.a, p.metric), per_seed(p.b, p.metric))
        verdict = "no difference shown"
        if r.diff.excludes_zero:
            verdict = "B higher" if r.diff.mean > 0 else "B lower"
        pair_rows.append(
            [
                p.kind,
                p.label,
                p.dataset,
                p.metric,
                f"{r.mean_a:.{decimals}f}",
                f"{r.mean_b:.{decimals}f}",
                r.diff.fmt(decimals),
                f"{r.n_b_below_a}/{r.diff.n}",
                verdict,
            ]
        )
        tsv.append(
            [
                "paired",
                f"{p.kind}: {p.label}",
                p.dataset,
                p.metric,
                r.mean_a,
                r.mean_b,
                r.diff.mean,
                r.diff.half_width,
                r.diff.n,
                r.n_b_below_a,
            ]
        )
    weak_rows = []
    for g in _weak_ave(groups):
        manifest = manifest_of(g.dataset)
        if manifest is None or "accuracy" not in g.metric_names():
            continue
        base = all_event_accuracy(manifest, str(g.runs[0].info.get("split", "test")))
        iv = t_interval([v - base for v in per_seed(g, "accuracy").values()])
        above = "yes" if iv.excludes_zero and iv.mean > 0 else "no"
        weak_rows.append(
            [g.experiment, g.dataset, f"{base:.{decimals}f}", iv.fmt(decimals), str(iv.n), above]
        )
        label = f"{g.experiment} − all-event answer"
        tsv.append(
            [
                "all_event",
                label,
                g.dataset,
                "accuracy",
                base,
                None,
                iv.mean,
                iv.half_width,
                iv.n,
                None,
            ]
        )
    pct = f"{LEVEL:.0%}"
    tables = [
        doc.Table(
            ("Run", "Dataset", "Metric", f"Mean ± {pct} half-width", "n", "half-width ≤ 2"),
            tuple(map(tuple, ci_rows)),
            title=f"Headline metrics with {pct} confidence intervals",
            note="Student t-interval over the seeds (mean ± t(0.975, n−1)·s/√n); every seed "
            "scores the same test videos, so it measures the spread over training seeds.",
        ),
        doc.Table(
            (
                "Comparison",
                "B − A",
                "Dataset",
                "Metric",
                "A",
                "B",
                f"B − A ± {pct}",
                "seeds B < A",
                "Verdict",
            ),
            tuple(map(tuple, pair_rows)),
            title="Paired comparisons",
            note="Per-seed differences B − A on the same test videos, Student t-interval over "
            "the seeds both ran with; 'no difference shown' when the interval contains 0.",
        ),
    ]
    # a study without runs gets no empty tables here
    blocks: list[doc.Block] = [t for t in tables if t.rows]
    if weak_rows:
        blocks.append(
            doc.Table(
                ("Run", "Dataset", "All-event answer", f"Run − all-event ± {pct}", "n", "Above"),
                tuple(map(tuple, weak_rows)),
                title="Weakly supervised AVE against the all-event answer",
                note="All-event answer: every segment called an event of the video's class "
                "(accuracy = share of event segments of the evaluated split).",
            )
        )
    return blocks, tsv


def write_tsv(path: Path, rows: list[list[Any]]) -> Path:
    atomic.write_tsv(path, COLUMNS, rows)
    return path
