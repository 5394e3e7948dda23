"""Per-experiment tables and the cross-method summary (Markdown, HTML and TSV).

Per (stage, dataset, experiment): ``tables/<stage>__<dataset>__<experiment>.{md,html,tsv}``,
one row per EM round (if any) and metric variant, one column per metric, mean ± std over
the seeds, then the provenance (metric files, seeds, config hashes, versions).  A metric
named ``a.b.c`` (AVVP: ``<setting>.<level>.<metric>``) is the column ``c`` of row
variant ``a.b``.

``summary.{md,html,tsv}``: the papers' table layouts with our rows and, labelled
"published", the papers' rows (:mod:`avpipe.report.published`):

1. AVE segment accuracy by supervision setting (Bao et al. (AAAI 2023) Table 1 / PSP layout):
   unsupervised (last EM round) and ``ave`` task runs (PSP/CPSP), FS/WS from the
   experiment name;
2. unsupervised purity and accuracy per EM step (Bao et al. (AAAI 2023) Table 5);
3. AVVP segment- and event-level F-scores (CoLeaF (ECCV 2024) Table 1), one row per method and
   threshold setting;
4. the headline metrics' 95 % confidence intervals and the paired comparisons (CPSP vs PSP,
   CoLeaF vs HAN, each EM round vs the previous one; :mod:`avpipe.report.compare`), also
   written to ``comparisons.tsv``.

The Markdown and the HTML page are two renderings of the same blocks
(:mod:`avpipe.report.document`); the TSV holds the unrounded numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avpipe.datasets.manifest import Manifest
from avpipe.report import compare, published
from avpipe.report import document as doc
from avpipe.report.collect import Group, Run, Stat, by_experiment, features_of, provenance, stat
from avpipe.utils import atomic

SUMMARY_COLUMNS = [
    "section",
    "source",
    "setting",
    "method",
    "dataset",
    "feature",
    "variant",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "reference",
]


def split_metric(name: str) -> tuple[str, str]:
    """'standard.segment.A' -> ('standard.segment', 'A'); 'purity' -> ('', 'purity')."""
    head, _, tail = name.rpartition(".")
    return head, tail


def experiment_rows(
    groups: list[Group],
) -> tuple[list[str], list[tuple[int | None, str, dict[str, Stat]]]]:
    """(metric columns, rows of (round, variant, {column: Stat})) of one experiment."""
    columns: list[str] = []
    rows: list[tuple[int | None, str, dict[str, Stat]]] = []
    for g in groups:
        by_variant: dict[str, dict[str, Stat]] = defaultdict(dict)
        for name in g.metric_names():
            variant, col = split_metric(name)
            by_variant[variant][col] = g.stat(name)
            if col not in columns:
                columns.append(col)
        rows.extend((g.round, v, cells) for v, cells in by_variant.items())
    return columns, rows


def _write_document(stem: Path, blocks: list[doc.Block], title: str) -> tuple[Path, Path]:
    """``<stem>.md`` and ``<stem>.html`` of the same blocks."""
    md_path, html_path = stem.with_suffix(".md"), stem.with_suffix(".html")
    atomic.write_text(html_path, doc.to_html(blocks, title))
    atomic.write_text(md_path, doc.to_markdown(blocks))
    return md_path, html_path


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def write_experiment_table(out_dir: Path, groups: list[Group], decimals: int) -> list[Path]:
    """``<stage>__<dataset>__<experiment>.{md,html,tsv}`` of one experiment's groups."""
    stage, dataset, experiment = groups[0].stage, groups[0].dataset, groups[0].experiment
    columns, rows = experiment_rows(groups)
    runs = [r for g in groups for r in g.runs]
    prov = provenance(runs)
    has_round = any(g.round is not None for g in groups)
    has_variant = any(v for _, v, _ in rows)
    lead = (["round"] if has_round else []) + (["variant"] if has_variant else [])
    md_rows, tsv_rows = [], []
    for rnd, variant, cells in rows:
        key = ([str(rnd)] if has_round else []) + ([variant] if has_variant else [])
        n = max((s.n for s in cells.values()), default=0)
        md_rows.append(
            key + [cells[c].fmt(decimals) if c in cells else "–" for c in columns] + [str(n)]
        )
        flat: list[Any] = []
        for c in columns:
            s = cells.get(c)
            flat += [None, None] if s is None else [_num(s.mean), _num(s.std)]
        tsv_rows.append(
            [
                stage,
                dataset,
                experiment,
                *key,
                *flat,
                n,
                ",".join(map(str, prov["seeds"])),
                ",".join(prov["config_hashes"]),
                prov["versions"].get("avpipe", ""),
            ]
        )
    name = f"{stage}__{dataset}__{experiment}"
    title = f"{stage} · {dataset} · {experiment}"
    blocks: list[doc.Block] = [
        doc.Table(
            tuple(lead + columns + ["seeds"]),
            tuple(map(tuple, md_rows)),
            title=title,
            note=f"Mean ± sample std over seeds {prov['seeds']} "
            "(a single seed shows the value alone).",
        ),
        doc.Heading("Provenance", 2),
        doc.Items(
            (
                f"config hashes: {', '.join(prov['config_hashes']) or '–'}",
                "versions: " + (", ".join(f"{k} {v}" for k, v in prov["versions"].items()) or "–"),
                "metrics files: " + ", ".join(f"`{p}`" for p in prov["metrics_files"]),
            )
        ),
    ]
    md_path, html_path = _write_document(out_dir / name, blocks, title)
    tsv_path = out_dir / f"{name}.tsv"
    header = ["stage", "dataset", "experiment", *lead]
    header += [f"{c}_{s}" for c in columns for s in ("mean", "std")]
    header += ["n_seeds", "seeds", "config_hashes", "avpipe"]
    atomic.write_tsv(tsv_path, header, tsv_rows)
    return [md_path, html_path, tsv_path]


def write_experiment_tables(out_dir: Path, groups: list[Group], decimals: int) -> list[Path]:
    paths: list[Path] = []
    for _, gs in sorted(by_experiment(groups).items()):
        paths.extend(write_experiment_table(out_dir, gs, decimals))
    return paths


# -- summary ------------------------------------------------------------------------------


def supervision(run: Run) -> str:
    """FS / WS / US of a run: unsupervised stage, else from the experiment name or info."""
    if run.task == "unsupervised":
        return "US"
    name = f"{run.experiment} {run.info.get('setting', '')}".lower()
    if "weak" in name or "ws" in name.split("_"):
        return "WS"
    if "full" in name or "fs" in name.split("_"):
        return "FS"
    return "–"


def last_rounds(groups: list[Group]) -> list[Group]:
    """Per experiment, the group of the last EM round (or the only group)."""
    return [gs[-1] for gs in by_experiment(groups).values()]


class Summary:
    """Document blocks plus the long-format TSV rows, filled section by section."""

    def __init__(self, decimals: int, show_published: bool):
        self.decimals = decimals
        self.show_published = show_published
        self.blocks: list[doc.Block] = [
            doc.Heading("Results summary"),
            doc.Para(
                "Ours: mean ± sample std over seeds (n = number of seeds). "
                "Rows marked **published** are the papers' numbers on the real "
                "datasets with pretrained features, for reference only: they are "
                "not ours and not comparable to a synthetic-data run."
            ),
        ]
        self.tsv: list[list[Any]] = []

    def _row(self, section: str, source: str, kw: dict[str, Any], *values: Any) -> None:
        """One long-format TSV row: what the row is (from ``kw``), then value, std, n, reference."""
        what = [kw.get("setting", ""), kw["method"], kw["dataset"], kw.get("feature", "")]
        self.tsv.append([section, source, *what, kw.get("variant", ""), kw["metric"], *values])

    def ours(self, section: str, s: Stat, **kw: Any) -> str:
        self._row(section, "ours", kw, _num(s.mean), _num(s.std), s.n, "")
        return s.fmt(self.decimals)

    def published(self, section: str, value: float, **kw: Any) -> str:
        self._row(section, "published", kw, value, None, None, kw["reference"])
        return f"{value:.1f}"

    def section(self, title: str, note: str, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(
            doc.Table(tuple(header), tuple(map(tuple, rows)), title=title, note=note)
        )


def _ave_section(sm: Summary, groups: list[Group]) -> None:
    sec = "ave_accuracy"
    rows = []
    for g in last_rounds(groups):
        if g.runs[0].task not in ("ave", "unsupervised") or "accuracy" not in g.metric_names():
            continue
        r = g.runs[0]
        kw = {
            "setting": supervision(r),
            "method": f"{g.experiment} ({g.stage})",
            "dataset": g.dataset,
            "feature": features_of(r),
            "metric": "accuracy",
        }
        if g.round is not None:
            kw["variant"] = f"round {g.round}"
        cell = sm.ours(sec, g.stat("accuracy"), **kw)
        rows.append(
            [
                kw["setting"],
                kw["method"] + (f", EM round {g.round}" if g.round else ""),
                kw["feature"],
                g.dataset,
                cell,
                str(g.stat("accuracy").n),
                "ours",
            ]
        )
    if sm.show_published:
        for p in published.AVE_ACCURACY:
            cell = sm.published(
                sec,
                p.accuracy,
                setting=p.setting,
                method=p.method,
                dataset="AVE",
                feature=p.feature,
                metric="accuracy",
                reference=p.source,
            )
            rows.append(
                [
                    p.setting,
                    p.method,
                    p.feature,
                    "AVE (real)",
                    cell,
                    "",
                    f"**published** — {p.source}",
                ]
            )
    sm.section(
        "AVE event localization: segment accuracy (%)",
        "Layout of Bao et al. (AAAI 2023) Table 1 (FS = fully, WS = weakly supervised, "
        "US = unsupervised; unsupervised rows use the last EM round).",
        ["Setting", "Method", "Features", "Dataset", "Accuracy", "n", "Source"],
        rows,
    )


def _em_section(sm: Summary, groups: list[Group]) -> None:
    sec = "em_rounds"
    rows = []
    for (_, ds, exp), gs in by_experiment(
        [g for g in groups if g.runs[0].task == "unsupervised"]
    ).items():
        for g in gs:
            if "purity" not in g.metric_names() or "accuracy" not in g.metric_names():
                continue
            kw = {"setting": "US", "method": exp, "dataset": ds, "variant": f"round {g.round}"}
            pur = sm.ours(sec, g.stat("purity"), metric="purity", **kw)
            acc = sm.ours(sec, g.stat("accuracy"), metric="accuracy", **kw)
            rows.append([exp, ds, str(g.round), pur, acc, str(g.stat("accuracy").n), "ours"])
    if sm.show_published:
        for k, (pur_v, acc_v) in published.EM_ROUNDS.items():
            kw = {
                "setting": "US",
                "method": "Bao et al.",
                "dataset": "AVE",
                "feature": "ResNet-152",
                "variant": f"round {k}",
                "reference": published.EM_ROUNDS_SOURCE,
            }
            pur = sm.published(sec, pur_v, metric="purity", **kw)
            acc = sm.published(sec, acc_v, metric="accuracy", **kw)
            rows.append(
                [
                    "Bao et al.",
                    "AVE (real)",
                    str(k),
                    pur,
                    acc,
                    "",
                    f"**published** — {published.EM_ROUNDS_SOURCE}",
                ]
            )
    sm.section(
        "Unsupervised: purity and accuracy per EM step (%)",
        "Layout of Bao et al. (AAAI 2023) Table 5: purity of the pseudo-labels on the training "
        "videos, segment accuracy on the evaluated split after the pseudo-class → class mapping.",
        ["Method", "Dataset", "EM step", "Purity", "Accuracy", "n", "Source"],
        rows,
    )


def _avvp_section(sm: Summary, groups: list[Group]) -> None:
    sec = "avvp"
    cols = published.AVVP_COLUMNS
    rows = []
    for g in last_rounds(groups):
        names = g.metric_names()
        variants = sorted({n[: -len(c) - 1] for n in names for c in cols if n.endswith("." + c)})
        for v in variants:
            cells = []
            for c in cols:
                name = f"{v}.{c}"
                if name in names:
                    cells.append(
                        sm.ours(
                            sec,
                            g.stat(name),
                            method=g.experiment,
                            dataset=g.dataset,
                            variant=v,
                            metric=c,
                        )
                    )
                else:
                    cells.append("–")
            rows.append([g.experiment, g.dataset, v or "–", *cells, str(len(g.runs)), "ours"])
    if sm.show_published:
        for setting, table, source in (
            ("standard (fixed)", published.AVVP_LLP, published.AVVP_SOURCE),
            ("selected", published.AVVP_LLP_SELECTED, published.AVVP_SELECTED_SOURCE),
        ):
            for method, values in table.items():
                cells = [
                    sm.published(
                        sec,
                        x,
                        method=method,
                        dataset="LLP",
                        variant=setting,
                        metric=c,
                        reference=source,
                    )
                    for c, x in zip(cols, values, strict=True)
                ]
                rows.append(
                    [method, "LLP (real)", setting, *cells, "", f"**published** — {source}"]
                )
    short = [c.replace("segment.", "Seg ").replace("event.", "Evt ") for c in cols]
    sm.section(
        "Audio-visual video parsing: F-scores (%)",
        "Layout of CoLeaF (ECCV 2024) Table 1: segment-level (Seg) then event-level (Evt) F "
        "of audio (A), visual (V), audio-visual (AV) events, audible-only (Ao), visible-only "
        "(Vo), Type@AV, Type@AVo, Event@AV, Event@AVo; one row per method and threshold setting "
        "(avpipe's `fixed` is the papers' standard setting, `selected` the per-class one).",
        ["Method", "Dataset", "Setting", *short, "n", "Source"],
        rows,
    )


def write_summary(
    out_dir: Path,
    groups: list[Group],
    decimals: int,
    show_published: bool,
    manifest_of: Callable[[str], Manifest | None] = lambda dataset: None,
) -> list[Path]:
    """``comparisons.tsv`` and ``summary.{tsv,html,md}`` (written in that order) of every
    group; ``manifest_of(dataset)`` gives the ground truth of the all-event answer."""
    sm = Summary(decimals, show_published)
    _ave_section(sm, groups)
    _em_section(sm, groups)
    _avvp_section(sm, groups)
    blocks, comparisons = compare.sections(groups, manifest_of, decimals)
    sm.blocks += blocks
    cmp_path = compare.write_tsv(out_dir / "comparisons.tsv", comparisons)
    runs = [r for g in groups for r in g.runs]
    prov = provenance(runs)
    sm.blocks += [
        doc.Heading("Provenance", 2),
        doc.Items(
            (
                f"{len(runs)} evaluation outputs, seeds {prov['seeds']}",
                f"config hashes: {', '.join(prov['config_hashes']) or '–'}",
                "versions: " + (", ".join(f"{k} {v}" for k, v in prov["versions"].items()) or "–"),
                "per-experiment tables with every metric: `tables/`",
            )
        ),
    ]
    tsv_path = out_dir / "summary.tsv"
    atomic.write_tsv(tsv_path, SUMMARY_COLUMNS, sm.tsv)
    # the Markdown last: the workflow's target, so its presence means the summary is complete
    md_path, html_path = _write_document(out_dir / "summary", sm.blocks, "Results summary")
    return [cmp_path, tsv_path, html_path, md_path]


__all__ = ["write_experiment_tables", "write_summary", "stat", "experiment_rows"]
