"""``avpipe report``: paper-style tables and figures from evaluation outputs.

Reads the ``metrics.json`` files given with ``--metrics`` (any mix of stages, datasets,
experiments, seeds and EM rounds; see :mod:`avpipe.report.collect` for the path layout)
and writes into ``--out-dir`` (``results/report/``)::

    summary.{md,html,tsv}   the papers' table layouts, ours beside "published", then the
                            95 % intervals and paired comparisons (also comparisons.tsv)
    tables/<stage>__<dataset>__<experiment>.{md,html,tsv}   every metric, mean ± std, provenance
    figures/<kind>/<stage>__<dataset>__<experiment>.png  (kinds: avpipe.report.figures)

Ground truth for timelines and t-SNE comes from ``--manifest-root/<dataset>``; training
curves from the ``history.tsv`` next to each run's predictions and from ``--history``
(``STAGE=PATH``: drawn with the runs of evaluation stage STAGE).

The ``.md`` and ``.html`` tables hold the same rows; the HTML pages are the ones
``snakemake --report`` shows (workflow/rules/report.smk).
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path
from typing import Any

from avpipe import config as configs
from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.report import figures, tables
from avpipe.report.collect import group_runs, load_runs
from avpipe.report.config import ReportConfig
from avpipe.stages import add_config_arguments
from avpipe.utils import atomic

log = logging.getLogger(__name__)
SECTION = "report"
DEFAULT_JSON = "{}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics",
        nargs="*",
        default=[],
        type=Path,
        help="metrics.json files of avpipe evaluate (results/evaluate/...)",
    )
    p.add_argument(
        "--history",
        nargs="*",
        default=[],
        type=_history_arg,
        metavar="STAGE=PATH",
        help="training curves of earlier stages drawn with an evaluation stage's runs, e.g. "
        "unsupervised=results/pretrain/<dataset>/seed<s>/history.tsv",
    )
    p.add_argument(
        "--manifest-root",
        type=Path,
        default=Path("results/manifest"),
        help="folder holding results/manifest/<dataset>/",
    )
    add_config_arguments(p, dataset=False)
    p.add_argument("--out-dir", type=Path, default=Path("results/report"), help="results/report")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("report", config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    return configs.to_dict(from_dict(ReportConfig, cfg, where="report"))


def _history_arg(text: str) -> tuple[str, Path]:
    stage, sep, path = text.partition("=")
    if not sep or not stage or not path:
        raise argparse.ArgumentTypeError(f"--history {text!r}: expected STAGE=PATH")
    return stage, Path(path)


@functools.cache
def _manifest(root: Path, dataset: str) -> Manifest | None:
    try:
        return Manifest.read(root / dataset)
    except (OSError, ValueError) as e:
        log.warning(
            "no manifest for %s under %s (%s): figures needing ground truth are skipped",
            dataset,
            root,
            e,
        )
        return None


def run(args: argparse.Namespace) -> int:
    cfg = from_dict(ReportConfig, args.cfg, where="report")
    runs = load_runs(args.metrics, cfg.seeds)
    log.info(
        "%d evaluation outputs (%d given, seeds %s)",
        len(runs),
        len(args.metrics),
        "all" if cfg.seeds is None else cfg.seeds,
    )
    groups = group_runs(runs)
    out = args.out_dir
    (out / "tables").mkdir(parents=True, exist_ok=True)
    written = tables.write_experiment_tables(out / "tables", groups, cfg.precision)
    for kind in figures.KINDS:
        (out / "figures" / kind).mkdir(parents=True, exist_ok=True)
    figs = figures.write_all(
        groups,
        lambda ds: _manifest(args.manifest_root, ds),
        cfg,
        list(args.history),
        out / "figures",
    )
    # the summary last: its presence means the whole report is written
    written += tables.write_summary(
        out,
        groups,
        cfg.precision,
        cfg.published,
        lambda ds: _manifest(args.manifest_root, ds),
    )
    atomic.write_text(out / "figures.txt", "".join(f"{p.relative_to(out)}\n" for p in figs))
    log.info("report: %d tables, %d figures -> %s", len(written), len(figs), out)
    return 0
