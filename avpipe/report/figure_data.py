"""What the report figures draw, as plain values (tested on values, not on pixels).

* timelines: :func:`avvp_binarisation` reads the threshold setting an AVVP run was scored
  with (``config`` of its ``metrics.json``, per-class thresholds from ``thresholds.tsv``),
  :func:`predicted_lanes` binarises through :func:`avpipe.metrics.avvp.predict` (AVVP) or
  one-hot encodes the scored segment labels (AVE, unsupervised: one audio-visual lane),
  :func:`truth_lanes` is the ground truth the evaluator compares with;
* EM rounds: :func:`em_series`, one series per distinct metric, error bars in [0, 100];
* training: :func:`training_panels`, one panel per history, phase and quantity, with the
  epoch whose weights were kept (:func:`kept_epoch`);
* t-SNE: :func:`align_pseudo_labels`, a one-to-one (Hungarian) pseudo-class -> class match.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest, Sample
from avpipe.metrics import avvp
from avpipe.metrics.ave import segment_labels
from avpipe.metrics.unsupervised import contingency
from avpipe.report.collect import Group, Run, read_tsv

AV_LANE = "audio-visual"

# -- timelines ------------------------------------------------------------------------


@dataclass(frozen=True)
class Binarisation:
    """How an AVVP run's probabilities became the 0/1 predictions it was scored on."""

    name: str  # the setting of avvp.evaluate: a key of ``settings`` or "selected"
    setting: avvp.Setting
    thresholds: dict[str, np.ndarray] | None = None  # per-class video thresholds (C,)

    def describe(self) -> str:
        """``setting 'fixed': segment ≥ 0.25, modality video prob. ≥ 0.52`` (figure titles)."""
        s = self.setting
        filt = "modality video prob." if s.video_filter == "modality" else "global video prob."
        video = f"{filt} ≥ {s.video_threshold:g}"
        if self.thresholds:
            per = ", ".join(
                f"{m} {v.min():g}–{v.max():g}" for m, v in sorted(self.thresholds.items())
            )
            video = f"{filt} ≥ per-class ({per}; else {s.video_threshold:g})"
        return f"setting '{self.name}': segment ≥ {s.segment_threshold:g}, {video}"


def avvp_binarisation(run: Run, name: str, classes: list[str]) -> Binarisation:
    """Setting ``name`` as the evaluator applied it to ``run``: from the ``config`` that
    ``avpipe evaluate`` stored in metrics.json (the evaluator's defaults where it stored
    none); "selected" takes its per-class thresholds from the ``thresholds.tsv`` beside it."""
    data = json.loads(run.path.read_text())
    conf = from_dict(avvp.EvalConfig, data.get("config") or {}, where=f"{run.path}: config")
    if name in conf.settings:
        return Binarisation(name, conf.settings[name])
    if name == "selected" and conf.selected.enabled:
        path = run.path.parent / "thresholds.tsv"
        rows = {r["class"]: r for r in read_tsv(path)}
        missing = [c for c in classes if c not in rows]
        if missing:
            raise ValueError(f"{path}: no per-class thresholds for {missing[:3]} (or no file)")
        th = {
            m: np.array([float(rows[c][f"video_threshold_{m}"]) for c in classes])
            for m in conf.selected.modalities
        }
        return Binarisation(name, conf.settings[conf.selected.base], th)
    known = [*conf.settings, *(["selected"] if conf.selected.enabled else [])]
    raise KeyError(
        f"report.timelines.avvp_setting {name!r} was not evaluated in {run.path}; "
        f"evaluated settings: {', '.join(known)}"
    )


def _mapping(run: Run, names: list[str]) -> np.ndarray:
    """pseudo-class -> class index (-1 unmapped) from the run's mapping.tsv."""
    idx = {n: i for i, n in enumerate(names)}
    rows = read_tsv(run.path.parent / "mapping.tsv")
    m = np.full(1 + max((int(r["pseudo_class"]) for r in rows), default=0), -1)
    for r in rows:
        if r.get("class"):
            m[int(r["pseudo_class"])] = idx.get(r["class"], -1)
    return m


def _onehot(labels: np.ndarray, C: int) -> np.ndarray:
    out = np.zeros((*labels.shape, C), bool)
    ok = (labels >= 0) & (labels < C)
    n, t = np.nonzero(ok)
    out[n, t, labels[ok]] = True
    return out


def predicted_lanes(
    run: Run, pred: dict[str, np.ndarray], classes: list[str], binarisation: Binarisation | None
) -> dict[str, np.ndarray] | None:
    """Predicted lanes ``{name: (N, T, C) bool}`` as the evaluator scored them, or None.

    AVVP (``seg_prob_*`` arrays): lanes "audio" and "visual" from
    :func:`avpipe.metrics.avvp.predict` under ``binarisation``, False past ``n_segments``.
    AVE (``segment_pred``) and unsupervised (``video_pseudo`` mapped through the run's
    mapping.tsv on ``foreground`` segments) predict one label per segment: one lane
    "audio-visual"."""
    C = len(classes)
    if {"seg_prob_audio", "seg_prob_visual"} <= set(pred):
        if binarisation is None:
            raise ValueError(f"{run.predictions}: AVVP probabilities need a binarisation")
        N, T, _ = pred["seg_prob_audio"].shape
        out = {}
        scored = avvp.predict(pred, binarisation.setting, binarisation.thresholds)
        for lane, S in zip(("audio", "visual"), scored, strict=True):
            x = np.zeros((N, T, C), bool)
            for i, s in enumerate(S):
                x[i, : s.shape[1]] = s.T
            out[lane] = x
        return out
    if "segment_pred" in pred:
        lab = np.asarray(pred["segment_pred"])
    elif {"foreground", "video_pseudo"} <= set(pred):
        m = _mapping(run, classes)
        vp = np.asarray(pred["video_pseudo"])
        mapped = np.where(vp < len(m), m[np.minimum(vp, len(m) - 1)], -1)
        lab = np.where(np.asarray(pred["foreground"], bool), mapped[:, None], C)
    else:
        return None
    return {AV_LANE: _onehot(lab, C)}


def truth_lanes(
    manifest: Manifest, samples: list[Sample], T: int, lanes: list[str]
) -> dict[str, np.ndarray]:
    """Ground truth ``{lane: (N, T, C) bool}`` as the evaluator of those lanes reads it:
    "audio"/"visual" as :func:`avpipe.metrics.avvp.ground_truth` (audio-visual events count
    for both), "audio-visual" as :func:`avpipe.metrics.ave.segment_labels`."""
    if lanes == [AV_LANE]:
        return {
            AV_LANE: _onehot(segment_labels(manifest, samples, n_segments=T), len(manifest.classes))
        }
    n = np.full(len(samples), T)
    Ga, Gv = avvp.ground_truth(manifest, [s.sample_id for s in samples], n)
    return {"audio": np.stack([g.T for g in Ga]), "visual": np.stack([g.T for g in Gv])}


# -- EM rounds ------------------------------------------------------------------------

EM_METRICS = ("purity", "localizer_purity", "accuracy")


@dataclass(frozen=True)
class Series:
    label: str
    x: list[int]
    mean: np.ndarray
    err: np.ndarray  # (2, n): below and above the mean; mean ± err stays within [0, 100]


def _values(groups: list[Group], metric: str) -> list[list[float]]:
    return [[r.metrics.get(metric, math.nan) for r in g.runs] for g in groups]


def em_series(groups: list[Group], metrics: tuple[str, ...] = EM_METRICS) -> list[Series]:
    """One series per distinct metric (%) over the groups' rounds, mean ± sample std over
    seeds; metrics with the same value in every run share one series ("purity = localizer
    purity"); a single seed has no error bar."""
    present = [m for m in metrics if m in groups[0].metric_names()]
    merged: list[tuple[list[str], list[list[float]]]] = []
    for m in present:
        vals = _values(groups, m)
        same = next(
            (
                names
                for names, v in merged
                if all(np.allclose(a, b, equal_nan=True) for a, b in zip(v, vals, strict=True))
            ),
            None,
        )
        if same is None:
            merged.append(([m], vals))
        else:
            same.append(m)
    out = []
    for names, _ in merged:
        stats = [g.stat(names[0]) for g in groups]
        mean = np.array([s.mean for s in stats])
        std = np.nan_to_num(np.array([s.std for s in stats]))
        lo, hi = np.clip(mean - std, 0, 100), np.clip(mean + std, 0, 100)
        out.append(
            Series(
                " = ".join(n.replace("_", " ") for n in names),
                [g.round or 0 for g in groups],
                mean,
                np.stack([mean - lo, hi - mean]),
            )
        )
    return out


# -- training curves ------------------------------------------------------------------

SKIP_COLUMNS = {"epoch", "step", "lr", "seconds", "time", "round"}
# The validation score avpipe.training.loop maximises to pick the epoch (val_select;
# val_score in CPSP histories written before the loop was shared).  Ties follow the
# method's rule, so the summary.json's best_epoch is read first.
SELECTION_COLUMNS = ("val_select", "val_score")
QUANTITIES = ("loss", "count", "fraction", "validation score (%)")


def quantity(column: str) -> str:
    """The y axis a history column belongs on (one of QUANTITIES)."""
    if column.startswith("val"):
        return "validation score (%)"
    if column.endswith("fraction"):
        return "fraction"
    if column.startswith("n_") or column.endswith(("pseudo_classes", "count")):
        return "count"
    return "loss"


def _numeric_columns(rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for key in rows[0]:
        try:
            cols[key] = np.array([float(r[key]) if r.get(key, "") != "" else np.nan for r in rows])
        except ValueError:
            continue
    return cols


def kept_epoch(
    epoch: np.ndarray, cols: dict[str, np.ndarray], summary: dict[str, Any]
) -> tuple[float, str]:
    """(epoch, why) of the weights a stage kept: ``best_epoch`` of its summary.json, else the
    first maximum of its selection column, else the last epoch."""
    if isinstance(summary.get("best_epoch"), int | float):
        return float(summary["best_epoch"]), "selected epoch (summary.json)"
    for c in SELECTION_COLUMNS:
        if c in cols and not np.all(np.isnan(cols[c])):
            return float(epoch[int(np.nanargmax(cols[c]))]), f"selected epoch (best {c})"
    return float(epoch[-1]), "last epoch (no selection)"


@dataclass(frozen=True)
class Panel:
    title: str  # history label and phase
    quantity: str  # y-axis label, one of QUANTITIES
    epoch: np.ndarray
    lines: dict[str, np.ndarray]  # column -> values per epoch
    kept: tuple[float, str]  # epoch whose weights the stage kept, and why


def _summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def training_panels(histories: list[tuple[str, Path]]) -> list[Panel]:
    """One panel per history file (label, path), ``phase`` and quantity of its numeric
    columns (except epoch/step/lr/seconds), each with the history's kept epoch."""
    out: list[Panel] = []
    for label, path in histories:
        rows = read_tsv(path)
        if not rows:
            continue
        summary = _summary(path.parent / "summary.json")
        for ph in sorted({r.get("phase", "") for r in rows}):
            cols = _numeric_columns([r for r in rows if r.get("phase", "") == ph])
            epoch = cols.get("epoch", np.arange(len(next(iter(cols.values())))))
            kept = kept_epoch(epoch, cols, summary)
            keep = {
                k: v for k, v in cols.items() if k not in SKIP_COLUMNS and not np.all(np.isnan(v))
            }
            out += [
                Panel(
                    f"{label} {ph}".strip(),
                    q,
                    epoch,
                    {k: v for k, v in keep.items() if quantity(k) == q},
                    kept,
                )
                for q in QUANTITIES
                if any(quantity(k) == q for k in keep)
            ]
    return out


# -- t-SNE ------------------------------------------------------------------------------


def align_pseudo_labels(
    pseudo: np.ndarray, classes: np.ndarray, n_pseudo: int, n_classes: int
) -> np.ndarray:
    """Class index per pseudo-class ``(n_pseudo,)``, -1 where unmatched.

    One-to-one (Hungarian) matching that maximises the samples whose pseudo-class is
    matched to their class (:func:`scipy.optimize.linear_sum_assignment` on the
    contingency table); a pseudo-class left over (more pseudo-classes than classes) or
    matched to a class none of its samples has stays unmatched."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(pseudo, classes, n_pseudo, n_classes)
    rows, cols = linear_sum_assignment(table, maximize=True)
    out = np.full(n_pseudo, -1, dtype=np.int64)
    hit = table[rows, cols] > 0
    out[rows[hit]] = cols[hit]
    return out
