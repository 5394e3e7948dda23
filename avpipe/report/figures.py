"""Report figures (matplotlib, Agg backend), each written as ``figures/<kind>/<name>.png``.

``<name>`` is ``<stage>__<dataset>__<experiment>``.  Kinds:

* ``tsne``       t-SNE of the training videos' representations after each EM round,
                 coloured by pseudo-label in the class colour of its Hungarian match
                 (Bao et al. (AAAI 2023) Fig. 3), last panel by true class
                 (from ``embeddings.npz`` of the EM rounds; first seed)
* ``em_rounds``  purity and accuracy per EM round, mean ± std over seeds (one line per
                 distinct metric, error bars within [0, 100])
* ``training``   training curves from every ``history.tsv`` of the run (first seed), one
                 axis per quantity, the epoch whose weights were kept marked
* ``timelines``  events of a few test videos: ground truth and prediction as scored
                 (AVVP: audio and visual rows binarised by the evaluation's setting;
                 AVE, unsupervised: one audio-visual row), one colour per class
                 (first seed, last round)
* ``per_class``  per-class segment accuracy (``per_class.tsv``), mean ± std over seeds

The values each figure draws come from :mod:`avpipe.report.figure_data`.
A figure whose inputs are missing (a stage that writes no embeddings, a task without
a per-class table) is skipped and logged, never faked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from avpipe.datasets.manifest import Manifest  # noqa: E402
from avpipe.report import figure_data as fd  # noqa: E402
from avpipe.report.collect import Group, Run, by_experiment, read_tsv, stat  # noqa: E402
from avpipe.report.config import ReportConfig, TimelineConfig, TSNEConfig  # noqa: E402
from avpipe.utils import atomic  # noqa: E402

log = logging.getLogger(__name__)
KINDS = ("tsne", "em_rounds", "training", "timelines", "per_class")
ManifestLoader = Callable[[str], Manifest | None]


def _name(stage: str, dataset: str, experiment: str) -> str:
    return f"{stage}__{dataset}__{experiment}"


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def class_colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


# -- EM rounds ------------------------------------------------------------------------


def em_rounds(groups: list[Group], out: Path, dpi: int) -> Path | None:
    """Purity (training videos) and accuracy (evaluated split) per round, one experiment:
    one line per distinct metric, error bars (± std over seeds) clipped to [0, 100]."""
    series = fd.em_series(groups)
    if not series or groups[0].round is None:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for s in series:
        ax.errorbar(s.x, s.mean, yerr=s.err, marker="o", capsize=3, label=s.label)
    g0 = groups[0]
    ax.set(
        xlabel="EM round",
        ylabel="%",
        xticks=series[0].x,
        ylim=(0, 100),
        title=f"{g0.dataset} · {g0.experiment}: per EM round (n={len(g0.runs)} seeds)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, dpi)


# -- t-SNE ------------------------------------------------------------------------------


def _tsne_2d(x: np.ndarray, cfg: TSNEConfig, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 5:
        raise ValueError(f"t-SNE needs at least 5 points, got {n}")
    perplexity = min(cfg.perplexity, (n - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        x.astype(np.float64)
    )


@dataclass(frozen=True)
class _Round:
    run: Run
    embedding: np.ndarray  # (M, d) training samples
    pseudo: np.ndarray  # (M,) int
    truth: np.ndarray | None  # (M,) class index, background = C; None without a manifest


def _tsne_rounds(runs: list[Run], manifest: Manifest | None, seed: int) -> list[_Round]:
    from avpipe.metrics.unsupervised import sample_classes

    by_id = {s.sample_id: s for s in manifest.samples} if manifest and manifest.classes else {}
    out = []
    for r in sorted((r for r in runs if r.seed == seed), key=lambda r: r.round or 0):
        p = r.train_dir / "embeddings.npz" if r.train_dir is not None else None
        if p is None or not p.is_file():
            continue
        with np.load(p, allow_pickle=False) as z:
            if not {"embedding", "pseudo_label"} <= set(z.files):
                continue
            ids = [str(i) for i in z["sample_id"]] if "sample_id" in z.files else []
            truth = None
            if by_id and ids and all(i in by_id for i in ids):
                truth = sample_classes(manifest, [by_id[i] for i in ids])
            out.append(_Round(r, z["embedding"], z["pseudo_label"].astype(np.int64), truth))
    return out


def _pseudo_panel(ax: plt.Axes, xy: np.ndarray, rnd: _Round, keep: np.ndarray, C: int) -> None:
    """Pseudo-labels in the class colour of their Hungarian match; unmatched ones as grey
    crosses, and all of them, without ground truth, as crosses of their own palette."""
    z = rnd.pseudo[keep]
    K = int(rnd.pseudo.max()) + 1
    if rnd.truth is not None:
        match = fd.align_pseudo_labels(rnd.pseudo, rnd.truth, K, C + 1)
        how = "class colour of Hungarian match"
        other = plt.get_cmap("Greys")
        own = [other(0.35 + 0.55 * k / max(K - 1, 1)) for k in range(K)]
    else:
        match = np.full(K, -1)
        how = "own palette, no ground truth"
        other = plt.get_cmap("Dark2")
        own = [other(k % other.N) for k in range(K)]
    colors = class_colors(C + 1)
    m = match[z] >= 0
    ax.scatter(xy[m, 0], xy[m, 1], c=[colors[c] for c in match[z[m]]], s=8)
    ax.scatter(xy[~m, 0], xy[~m, 1], c=[own[k] for k in z[~m]], s=14, marker="x", lw=0.8)
    if rnd.truth is not None:
        how += f"; {int((match[np.unique(z)] < 0).sum())} unmatched ×"
    ax.set_title(
        f"round {rnd.run.round}: pseudo-labels ({len(np.unique(z))} used)\n{how}", fontsize=8
    )


def tsne(
    runs: list[Run], manifest: Manifest | None, cfg: TSNEConfig, out: Path, dpi: int
) -> Path | None:
    """One panel per EM round of the first seed, coloured by that round's pseudo-labels
    (Hungarian-matched to the class colours); a last panel colours the last round's points
    by true class."""
    seed = min(r.seed for r in runs)
    data = _tsne_rounds(runs, manifest, seed)
    if not data:
        return None
    rng = np.random.default_rng(seed)
    n = len(data[0].embedding)
    keep = (
        np.sort(rng.choice(n, cfg.max_points, replace=False))
        if n > cfg.max_points
        else np.arange(n)
    )
    C = len(manifest.classes) if manifest is not None else 0
    truth = data[-1].truth
    panels = len(data) + (truth is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.5), squeeze=False)
    last_xy = None
    for ax, rnd in zip(axes[0], data, strict=False):
        last_xy = _tsne_2d(rnd.embedding[keep], cfg, seed)
        _pseudo_panel(ax, last_xy, rnd, keep, C)
        ax.set_xticks([]), ax.set_yticks([])
    if truth is not None and last_xy is not None:
        ax = axes[0][-1]
        names = [*manifest.classes, "background"]
        colors = class_colors(len(names))
        t = truth[keep]
        for c in np.unique(t):
            sel = t == c
            ax.scatter(last_xy[sel, 0], last_xy[sel, 1], color=colors[c], s=8, label=names[c])
        ax.set_title(f"round {data[-1].run.round}: true class", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=6, loc="best", markerscale=1.5)
    r0 = data[0].run
    fig.suptitle(
        f"t-SNE of training-video representations · {r0.dataset} · {r0.experiment} · seed {seed}",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out, dpi)


# -- training curves ------------------------------------------------------------------


def training(histories: list[tuple[str, Path]], title: str, out: Path, dpi: int) -> Path | None:
    """One panel per history file (label, path), phase and quantity (losses, counts,
    fractions, validation scores: each its own labelled axis); the kept epoch dashed."""
    panels = fd.training_panels(histories)
    if not panels:
        return None
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.0 * nrow + 0.4), squeeze=False)
    for ax, p in zip(axes.flat, panels, strict=False):
        for key, y in p.lines.items():
            ax.plot(p.epoch, y, label=key, lw=1.2)
        epoch, why = p.kept
        ax.axvline(epoch, color="k", ls="--", lw=0.9, label=f"{why}: {epoch:g}")
        ax.set_title(p.title, fontsize=9)
        ax.set(xlabel="epoch", ylabel=p.quantity)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5 if len(p.lines) > 6 else 6, ncol=2 if len(p.lines) > 6 else 1)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out, dpi)


# -- timelines ------------------------------------------------------------------------


def draw_lanes(
    ax: plt.Axes, lanes: list[tuple[str, np.ndarray]], colors: list, hop: float
) -> set[int]:
    """Each lane (label, (T, C) bool) as coloured blocks; several classes share the height."""
    used: set[int] = set()
    for y, (_, m) in enumerate(lanes):
        for t in range(m.shape[0]):
            act = np.flatnonzero(m[t])
            for j, c in enumerate(act):
                h = 0.8 / len(act)
                ax.add_patch(
                    plt.Rectangle((t * hop, y - 0.4 + j * h), hop, h, color=colors[c], lw=0)
                )
                used.add(int(c))
    ax.set_yticks(range(len(lanes)), [lab for lab, _ in lanes], fontsize=7)
    ax.set_ylim(len(lanes) - 0.4, -0.6)  # first lane on top
    return used


def timelines(
    runs: list[Run], manifest: Manifest | None, cfg: TimelineConfig, out: Path, dpi: int
) -> Path | None:
    """Ground truth against the predictions as scored: AVVP audio and visual lanes binarised
    by the evaluation's setting ``cfg.avvp_setting`` (named in the title), one audio-visual
    lane for AVE and unsupervised predictions."""
    if manifest is None or not manifest.classes:
        return None
    seed = min(r.seed for r in runs)
    run = max((r for r in runs if r.seed == seed), key=lambda r: r.round or 0)
    if run.predictions is None or not run.predictions.is_file():
        return None
    with np.load(run.predictions, allow_pickle=False) as z:
        pred = {k: z[k] for k in z.files}
    classes = list(manifest.classes)
    binar = None
    if "seg_prob_audio" in pred:
        binar = fd.avvp_binarisation(run, cfg.avvp_setting, classes)
    rows = fd.predicted_lanes(run, pred, classes, binar)
    if rows is None:
        log.info("timelines: %s has no array avpipe can draw", run.predictions)
        return None
    ids = [str(s) for s in pred["sample_id"]]
    by_id = {s.sample_id: s for s in manifest.samples}
    lanes = list(rows)
    T = next(iter(rows.values())).shape[1]
    cand = sorted(i for i, s in enumerate(ids) if s in by_id and by_id[s].split == cfg.split)
    samples = [by_id[ids[i]] for i in cand]
    truth = fd.truth_lanes(manifest, samples, T, lanes) if samples else {}
    with_event = [j for j in range(len(cand)) if any(g[j].any() for g in truth.values())]
    pick = (with_event or list(range(len(cand))))[: cfg.n_videos]
    if not pick:
        return None
    colors = class_colors(len(classes))
    fig, axes = plt.subplots(
        len(pick), 1, figsize=(8, 0.45 * len(lanes) * 2 * len(pick) + 0.9), squeeze=False
    )
    used: set[int] = set()
    hop = manifest.segment_hop
    for ax, j in zip(axes[:, 0], pick, strict=True):
        i, n = cand[j], samples[j].n_segments
        drawn = [(f"truth · {k}", truth[k][j][:n]) for k in lanes]
        drawn += [(f"predicted · {k}", rows[k][i][:n]) for k in lanes]
        used |= draw_lanes(ax, drawn, colors, hop)
        ax.set_xlim(0, n * hop)
        ax.set_title(samples[j].sample_id, fontsize=8, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in sorted(used)]
    if handles:
        fig.legend(handles, [classes[c] for c in sorted(used)], loc="upper right", fontsize=7)
    scored = binar.describe() if binar else "predicted segment labels, as scored"
    fig.suptitle(
        f"{run.stage} · {run.dataset} · {run.experiment} · seed {seed}"
        + (f" · round {run.round}" if run.round else "")
        + f"\n{scored}",
        fontsize=9,
        x=0.45,
    )
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    return _save(fig, out, dpi)


# -- per-class scores ---------------------------------------------------------------------


def per_class(runs: list[Run], out: Path, dpi: int) -> Path | None:
    """Per-class accuracy of the last round, mean ± std over seeds, from per_class.tsv."""
    last = max(r.round or 0 for r in runs)
    tables = [read_tsv(r.path.parent / "per_class.tsv") for r in runs if (r.round or 0) == last]
    tables = [t for t in tables if t and "accuracy" in t[0]]
    if not tables:
        return None
    classes = [row["class"] for row in tables[0]]
    stats = []
    for c in classes:
        vals = [
            float(row["accuracy"])
            for t in tables
            for row in t
            if row["class"] == c and row["accuracy"] != ""
        ]
        stats.append(stat(vals))
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(classes) + 1), 3.4))
    x = np.arange(len(classes))
    ax.bar(
        x,
        [s.mean for s in stats],
        yerr=[0 if math.isnan(s.std) else s.std for s in stats],
        capsize=2,
        color=class_colors(len(classes)),
    )
    ax.set_xticks(x, classes, rotation=60, ha="right", fontsize=7)
    r0 = runs[0]
    ax.set(
        ylabel="segment accuracy (%)",
        ylim=(0, 100),
        title=f"{r0.dataset} · {r0.experiment}"
        + (f" · round {last}" if last else "")
        + f" (n={len(tables)})",
    )
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out, dpi)


# -- all --------------------------------------------------------------------------------


def history_files(runs: list[Run], extra: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(label, path) for the first seed: the extra ``(stage, history.tsv)`` files given for
    this evaluation stage, dataset and seed (``results/<training stage>/<dataset>/seed<s>/``,
    labelled by training stage), then the ``history.tsv`` next to each round's predictions."""
    seed = min(r.seed for r in runs)
    stage, ds = runs[0].stage, runs[0].dataset
    out = [
        (p.parts[-4], p)
        for st, p in extra
        if st == stage
        and len(p.parts) >= 4
        and p.parts[-2] == f"seed{seed}"
        and p.parts[-3] == ds
        and p.is_file()
    ]
    for r in sorted((r for r in runs if r.seed == seed), key=lambda r: r.round or 0):
        if r.train_dir is not None and (r.train_dir / "history.tsv").is_file():
            label = r.stage if r.round is None else f"EM round {r.round}"
            out.append((label, r.train_dir / "history.tsv"))
    return out


def write_all(
    groups: list[Group],
    manifests: ManifestLoader,
    cfg: ReportConfig,
    histories: list[tuple[str, Path]],
    out_dir: Path,
) -> list[Path]:
    written: list[Path] = []
    for (stage, ds, exp), gs in sorted(by_experiment(groups).items()):
        name = _name(stage, ds, exp)
        runs = [r for g in gs for r in g.runs]
        manifest = manifests(ds)
        jobs = [
            ("em_rounds", lambda p, gs=gs: em_rounds(gs, p, cfg.dpi)),
            ("tsne", lambda p, runs=runs, m=manifest: tsne(runs, m, cfg.tsne, p, cfg.dpi)),
            (
                "training",
                lambda p, runs=runs, name=name: training(
                    history_files(runs, histories),
                    f"training curves · {name.replace('__', ' · ')} · seed "
                    f"{min(r.seed for r in runs)}",
                    p,
                    cfg.dpi,
                ),
            ),
            (
                "timelines",
                lambda p, runs=runs, m=manifest: timelines(runs, m, cfg.timelines, p, cfg.dpi),
            ),
            ("per_class", lambda p, runs=runs: per_class(runs, p, cfg.dpi)),
        ]
        for kind, make in jobs:
            path = make(out_dir / kind / f"{name}.png")
            if path is None:
                log.info("figure %s/%s: no input for it, skipped", kind, name)
            else:
                written.append(path)
    return written
