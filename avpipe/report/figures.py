"""Report figures (matplotlib, Agg backend), each written as ``figures/<kind>/<name>.png``.

``<name>`` is ``<stage>__<dataset>__<experiment>``.  Kinds:

* ``tsne``       t-SNE of the training videos' representations after each EM round,
                 coloured by pseudo-label (Bao et al. (AAAI 2023) Fig. 3), last panel by true class
                 (from ``embeddings.npz`` of the EM rounds; first seed)
* ``em_rounds``  purity and accuracy per EM round, mean ± std over seeds
* ``training``   training curves from every ``history.tsv`` of the run (first seed)
* ``timelines``  events of a few test videos: ground truth and prediction, audio and
                 visual rows, one colour per class (first seed, last round)
* ``per_class``  per-class segment accuracy (``per_class.tsv``), mean ± std over seeds

A figure whose inputs are missing (a stage that writes no embeddings, a task without
a per-class table) is skipped and logged, never faked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from avpipe.datasets.manifest import Manifest  # noqa: E402
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


def _class_colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


# -- EM rounds ------------------------------------------------------------------------


def em_rounds(groups: list[Group], out: Path, dpi: int) -> Path | None:
    """Purity (training videos) and accuracy (evaluated split) per round, one experiment."""
    metrics = [
        m for m in ("purity", "localizer_purity", "accuracy") if m in groups[0].metric_names()
    ]
    if not metrics or groups[0].round is None:
        return None
    rounds = [g.round for g in groups]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in metrics:
        s = [g.stat(m) for g in groups]
        mean = np.array([x.mean for x in s])
        std = np.nan_to_num(np.array([x.std for x in s]))
        ax.errorbar(rounds, mean, yerr=std, marker="o", capsize=3, label=m.replace("_", " "))
    g0 = groups[0]
    ax.set(
        xlabel="EM round",
        ylabel="%",
        xticks=rounds,
        title=f"{g0.dataset} · {g0.experiment}: per EM round (n={len(g0.runs)} seeds)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
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


def tsne(
    runs: list[Run], manifest: Manifest | None, cfg: TSNEConfig, out: Path, dpi: int
) -> Path | None:
    """One panel per EM round of the first seed, coloured by that round's pseudo-labels;
    a last panel colours the last round's points by true class."""
    from avpipe.metrics.unsupervised import sample_classes

    seed = min(r.seed for r in runs)
    rounds = sorted(
        (r for r in runs if r.seed == seed and r.train_dir is not None), key=lambda r: r.round or 0
    )
    data = []
    for r in rounds:
        p = r.train_dir / "embeddings.npz"
        if not p.is_file():
            continue
        with np.load(p, allow_pickle=False) as z:
            if not {"embedding", "pseudo_label"} <= set(z.files):
                continue
            data.append(
                (
                    r,
                    z["embedding"],
                    z["pseudo_label"],
                    z["sample_id"] if "sample_id" in z.files else None,
                )
            )
    if not data:
        return None
    rng = np.random.default_rng(seed)
    n = len(data[0][1])
    keep = (
        np.sort(rng.choice(n, cfg.max_points, replace=False))
        if n > cfg.max_points
        else np.arange(n)
    )
    truth = None
    if manifest is not None and manifest.classes and data[-1][3] is not None:
        by_id = {s.sample_id: s for s in manifest.samples}
        ids = [str(i) for i in data[-1][3]]
        if all(i in by_id for i in ids):
            truth = sample_classes(manifest, [by_id[i] for i in ids])
    panels = len(data) + (truth is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.3), squeeze=False)
    last_xy = None
    for ax, (r, emb, z, _) in zip(axes[0], data, strict=False):
        xy = _tsne_2d(emb[keep], cfg, seed)
        last_xy = xy
        k = int(z.max()) + 1
        ax.scatter(xy[:, 0], xy[:, 1], c=[_class_colors(k)[i] for i in z[keep]], s=8)
        ax.set_title(f"round {r.round}: pseudo-labels ({len(np.unique(z))} used)", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    if truth is not None and last_xy is not None:
        ax = axes[0][-1]
        names = [*manifest.classes, "background"]
        colors = _class_colors(len(names))
        t = truth[keep]
        for c in np.unique(t):
            sel = t == c
            ax.scatter(last_xy[sel, 0], last_xy[sel, 1], color=colors[c], s=8, label=names[c])
        ax.set_title(f"round {data[-1][0].round}: true class", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=6, loc="best", markerscale=1.5)
    r0 = data[0][0]
    fig.suptitle(
        f"t-SNE of training-video representations · {r0.dataset} · {r0.experiment} · seed {seed}",
        fontsize=10,
    )
    return _save(fig, out, dpi)


# -- training curves ------------------------------------------------------------------


def _numeric_columns(rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for key in rows[0]:
        try:
            vals = np.array([float(r[key]) if r.get(key, "") != "" else np.nan for r in rows])
        except ValueError:
            continue
        cols[key] = vals
    return cols


SKIP_COLUMNS = {"epoch", "step", "lr", "seconds", "time", "round"}


def _split_validation(
    label: str, cols: dict[str, np.ndarray]
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Losses and validation scores (columns ``val*``) in separate panels: other scales."""
    x = {"epoch": cols["epoch"]} if "epoch" in cols else {}
    keep = {k: v for k, v in cols.items() if k not in SKIP_COLUMNS and not np.all(np.isnan(v))}
    losses = {k: v for k, v in keep.items() if not k.startswith("val")}
    scores = {k: v for k, v in keep.items() if k.startswith("val")}
    out = []
    if losses:
        out.append((label, {**x, **losses}))
    if scores:
        out.append((f"{label} · validation", {**x, **scores}))
    return out


def training(histories: list[tuple[str, Path]], title: str, out: Path, dpi: int) -> Path | None:
    """One panel per history file (label, path) and phase (a ``phase`` column), with
    validation columns (``val*``) in a panel of their own; one line per numeric column
    except epoch/step/lr/seconds."""
    panels = []
    for label, path in histories:
        rows = read_tsv(path)
        if not rows:
            continue
        for ph in sorted({r.get("phase", "") for r in rows}):
            sub = [r for r in rows if r.get("phase", "") == ph]
            panels += _split_validation(f"{label} {ph}".strip(), _numeric_columns(sub))
    if not panels:
        return None
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (label, cols) in zip(axes.flat, panels, strict=False):
        n = len(next(iter(cols.values())))
        x = cols.get("epoch", np.arange(n))
        for key, y in cols.items():
            if key != "epoch":
                ax.plot(x, y, label=key, lw=1.2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5 if len(cols) > 8 else 6, ncol=2 if len(cols) > 8 else 1)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out, dpi)


# -- timelines ------------------------------------------------------------------------


def _mapping(run: Run, names: list[str]) -> np.ndarray:
    """pseudo-class -> class index (-1 unmapped) from the run's mapping.tsv."""
    idx = {n: i for i, n in enumerate(names)}
    rows = read_tsv(run.path.parent / "mapping.tsv")
    m = np.full(1 + max((int(r["pseudo_class"]) for r in rows), default=0), -1)
    for r in rows:
        if r.get("class"):
            m[int(r["pseudo_class"])] = idx.get(r["class"], -1)
    return m


def predicted_rows(
    run: Run, pred: dict[str, np.ndarray], classes: list[str], th: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(audio, visual) predictions (N, T, C) bool from any task's predictions.npz, or None.

    AVVP: segment and video probability of the modality both >= ``th``.  AVE and the
    unsupervised task predict one audio-visual label per segment (both rows alike); the
    unsupervised one maps the video's pseudo-class through the run's mapping.tsv."""
    C = len(classes)
    if {"seg_prob_audio", "seg_prob_visual"} <= set(pred):
        out = []
        for m in ("audio", "visual"):
            s = pred[f"seg_prob_{m}"] >= th
            v = pred.get(f"video_prob_{m}")
            out.append(s & (v[:, None, :] >= th) if v is not None else s)
        return out[0], out[1]
    if "segment_pred" in pred:
        lab = np.asarray(pred["segment_pred"])
    elif {"foreground", "video_pseudo"} <= set(pred):
        m = _mapping(run, classes)
        vp = np.asarray(pred["video_pseudo"])
        mapped = np.where(vp < len(m), m[np.minimum(vp, len(m) - 1)], -1)
        lab = np.where(np.asarray(pred["foreground"], bool), mapped[:, None], C)
    else:
        return None
    onehot = np.zeros((*lab.shape, C), bool)
    ok = (lab >= 0) & (lab < C)
    n, t = np.nonzero(ok)
    onehot[n, t, lab[ok]] = True
    return onehot, onehot


def _draw_lanes(
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
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    return used


def timelines(
    runs: list[Run], manifest: Manifest | None, cfg: TimelineConfig, out: Path, dpi: int
) -> Path | None:
    if manifest is None or not manifest.classes:
        return None
    seed = min(r.seed for r in runs)
    run = max((r for r in runs if r.seed == seed), key=lambda r: r.round or 0)
    if run.predictions is None or not run.predictions.is_file():
        return None
    with np.load(run.predictions, allow_pickle=False) as z:
        pred = {k: z[k] for k in z.files}
    C = len(manifest.classes)
    rows = predicted_rows(run, pred, list(manifest.classes), cfg.threshold)
    if rows is None:
        log.info("timelines: %s has no array avpipe can draw", run.predictions)
        return None
    ids = [str(s) for s in pred["sample_id"]]
    by_id = {s.sample_id: s for s in manifest.samples}
    T = rows[0].shape[1]
    cand = sorted(i for i, s in enumerate(ids) if s in by_id and by_id[s].split == cfg.split)
    samples = [by_id[ids[i]] for i in cand]
    gt_a = manifest.segment_targets(samples, ("audio", "audio-visual"), n_segments=T) > 0
    gt_v = manifest.segment_targets(samples, ("visual", "audio-visual"), n_segments=T) > 0
    with_event = [j for j in range(len(cand)) if gt_a[j].any() or gt_v[j].any()]
    pick = (with_event or list(range(len(cand))))[: cfg.n_videos]
    if not pick:
        return None
    colors = _class_colors(C)
    fig, axes = plt.subplots(len(pick), 1, figsize=(8, 1.5 * len(pick) + 0.6), squeeze=False)
    used: set[int] = set()
    hop = manifest.segment_hop
    for ax, j in zip(axes[:, 0], pick, strict=True):
        i = cand[j]
        n = samples[j].n_segments
        lanes = [
            ("truth · audio", gt_a[j][:n]),
            ("truth · visual", gt_v[j][:n]),
            ("predicted · audio", rows[0][i][:n]),
            ("predicted · visual", rows[1][i][:n]),
        ]
        used |= _draw_lanes(ax, lanes, colors, hop)
        ax.set_xlim(0, n * hop)
        ax.set_title(samples[j].sample_id, fontsize=8, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in sorted(used)]
    if handles:
        fig.legend(
            handles,
            [manifest.classes[c] for c in sorted(used)],
            loc="upper right",
            fontsize=7,
            ncol=2,
        )
    fig.suptitle(
        f"{run.stage} · {run.dataset} · {run.experiment} · seed {seed}"
        + (f" · round {run.round}" if run.round else ""),
        fontsize=10,
        x=0.4,
    )
    fig.tight_layout()
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
        color=_class_colors(len(classes)),
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
