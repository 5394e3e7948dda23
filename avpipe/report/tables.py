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
from avpipe.report.variants import variant_of
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


def _published_label(method: str, variant: str) -> str:
    """A published row's method cell: the variant's description when it names the method."""
    if not variant:
        return method
    label = published.VARIANTS[variant]
    return label if method in label else f"{method} ({label})"


def _same_visual(ours: str, feature: str) -> bool:
    """Whether our 'visual + audio' recipes use the published row's visual network
    (unknown recipes match any)."""
    network = published.VISUAL_NETWORK.get(ours.split(" + ")[0])
    return network is None or network == feature


def _published_source(ref: str, paired: str, note: str = "") -> str:
    """The Source cell of a published row: its reference, and which of ours it pairs with."""
    extra = f"; {note}" if note else ""
    if paired:
        return f"**published** — {ref}{extra}; same variant as {paired}"
    return f"**published** — {ref}{extra}; no avpipe run of this variant"


def _ave_section(sm: Summary, groups: list[Group]) -> None:
    sec = "ave_accuracy"
    ours = []
    for g in last_rounds(groups):
        if g.runs[0].task not in ("ave", "unsupervised") or "accuracy" not in g.metric_names():
            continue
        ours.append((variant_of(g.runs[0]), supervision(g.runs[0]), g))
    ours.sort(key=lambda t: (t[0].key or "~", t[1], t[2].experiment))
    rows: list[list[str]] = []
    shown: set[int] = set()

    def add_published(i: int, p: published.AVERow, paired: str) -> None:
        shown.add(i)
        label = _published_label(p.method, p.variant)
        cell = sm.published(
            sec,
            p.accuracy,
            setting=p.setting,
            method=label,
            dataset="AVE",
            feature=p.feature,
            metric="accuracy",
            reference=p.source,
        )
        src = _published_source(p.source, paired, p.note)
        rows.append([p.setting, label, p.feature, "AVE (real)", cell, "", src])

    for v, setting, g in ours:
        r = g.runs[0]
        kw = {
            "setting": setting,
            "method": f"{g.experiment} ({v.label})",
            "dataset": g.dataset,
            "feature": features_of(r),
            "metric": "accuracy",
        }
        if g.round is not None:
            kw["variant"] = f"round {g.round}"
        cell = sm.ours(sec, g.stat("accuracy"), **kw)
        name = kw["method"] + (f", EM round {g.round}" if g.round else "")
        rows.append(
            [setting, name, kw["feature"], g.dataset, cell, str(g.stat("accuracy").n), "ours"]
        )
        if sm.show_published and v.key:
            for i, p in enumerate(published.AVE_ACCURACY):
                same = p.variant == v.key and p.setting == setting
                if i not in shown and same and _same_visual(kw["feature"], p.feature):
                    add_published(i, p, g.experiment)
    if sm.show_published:
        for i, p in enumerate(published.AVE_ACCURACY):
            if i not in shown:
                add_published(i, p, "")
    sm.section(
        "AVE event localization: segment accuracy (%)",
        "Layout of Bao et al. (AAAI 2023) Table 1 (FS = fully, WS = weakly supervised, "
        "US = unsupervised; unsupervised rows use the last EM round). Each of our rows names "
        "its exact variant"
        + (
            " and is followed only by the published rows of the same variant and setting; "
            "published rows of variants avpipe did not run come last."
            if sm.show_published
            else "."
        ),
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
    rows: list[list[str]] = []
    shown: set[int] = set()

    def add_published(i: int, p: published.AVVPRow, paired: str) -> None:
        shown.add(i)
        label = _published_label(p.method, p.variant)
        cells = [
            sm.published(
                sec,
                p.values[c],
                method=label,
                dataset="LLP",
                variant=p.setting,
                metric=c,
                reference=p.source,
            )
            if c in p.values
            else "–"
            for c in cols
        ]
        src = _published_source(p.source, paired)
        rows.append([label, "LLP (real)", p.setting, *cells, "", src])

    ours = [(variant_of(g.runs[0]), g) for g in last_rounds(groups)]
    ours.sort(key=lambda t: (t[0].key or "~", t[1].experiment))
    for v, g in ours:
        names = g.metric_names()
        settings = sorted({n[: -len(c) - 1] for n in names for c in cols if n.endswith("." + c)})
        method = f"{g.experiment} ({v.label})"
        for st in settings:
            cells = [
                sm.ours(
                    sec, g.stat(f"{st}.{c}"), method=method, dataset=g.dataset, variant=st, metric=c
                )
                if f"{st}.{c}" in names
                else "–"
                for c in cols
            ]
            rows.append([method, g.dataset, st or "–", *cells, str(len(g.runs)), "ours"])
            if sm.show_published and v.key:
                for i, p in enumerate(published.AVVP_ROWS):
                    if i not in shown and p.variant == v.key and p.ours_setting == st:
                        add_published(i, p, g.experiment)
    if sm.show_published:
        for i, p in enumerate(published.AVVP_ROWS):
            if i not in shown:
                add_published(i, p, "")
    short = [c.replace("segment.", "Seg ").replace("event.", "Evt ") for c in cols]
    sm.section(
        "Audio-visual video parsing: F-scores (%)",
        "Layout of CoLeaF (ECCV 2024) Table 1: segment-level (Seg) then event-level (Evt) F "
        "of audio (A), visual (V), audio-visual (AV) events, audible-only (Ao), visible-only "
        "(Vo), Type@AV, Type@AVo, Event@AV, Event@AVo; one row per method and threshold setting "
        "(avpipe's `fixed` is CoLeaF's standard setting, `han` HAN's own thresholds, `selected` "
        "CMPAE's per-class one). Each of our rows names its exact variant"
        + (
            " and is followed only by the published rows of the same variant and protocol: "
            "HAN's with `han`, CoLeaF's (CMPAE Anchor, Table 1) with the CMPAE-Anchor run, "
            "Table 4-right's HAN-Anchor CoLeaF with the HAN-Anchor run; published rows of "
            "variants avpipe did not run come last."
            if sm.show_published
            else "."
        ),
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
