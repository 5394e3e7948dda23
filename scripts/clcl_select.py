#!/usr/bin/env python3
"""Choose CLCL's EM settings by a label-free criterion (avpipe.metrics.label_free).

From a finished study's stage-A encoders and stage-B pseudo-labels (``<results>/pretrain``,
``<results>/selflabel``) it reruns the EM rounds of every setting in the grid
``em.init`` (localizer of round k from stage A, or from round k-1) x ``selflabel.init``
(E-step annotator fresh from the seed, or warm-started from round k-1) x
``em.annotator_epochs`` (the study's, or 10: a short E-step) for each seed,
into ``<out>/<setting>/seed<s>/round<k>/``, and scores each setting without labels:
mean over seeds of :func:`avpipe.metrics.label_free.score` (the worst round-to-round NMI
of the pseudo-labels, -inf on collapse), ties broken by the mean localizer fit.

The foreground rule is not in the grid: it is applied to the localizer's gamma after
training, so it changes no pseudo-label and no purity, only the localization accuracy.

The purity of every round is computed too, only AFTER the choice and written beside it
(``purity`` and ``purity_fell`` columns), to check the requirement that purity falls
from one round to the next on at most one seed; it never enters the choice.

    PYTHONPATH=$PWD python3 scripts/clcl_select.py --results results/benchmark/results \\
        --seeds 0 1 2 3 4 --out results/clcl_select
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

from avpipe.config import from_dict
from avpipe.datasets.manifest import Manifest
from avpipe.methods.clcl.config import EMStage
from avpipe.methods.clcl.stages import run_em_round
from avpipe.metrics import label_free
from avpipe.metrics.unsupervised import contingency, purity, sample_classes
from avpipe.utils import atomic

GRID = {
    "em.init": ("pretrain", "previous"),
    "selflabel.init": ("seeded", "previous"),
    "em.annotator_epochs": (None, 10),  # None: the study's own
}
COLUMNS = ["setting", "seed", "round", "balance", "agreement", "fit", "score", "purity"]


def _config(results: Path, dataset: str, seed: int, setting: dict[str, str]) -> EMStage:
    """The study's EM stage config (from its round-1 summary) with ``setting`` put in."""
    path = results / "em" / dataset / f"seed{seed}" / "round1" / "summary.json"
    cfg = json.loads(path.read_text())["config"]
    for key, value in setting.items():
        section, name = key.split(".")
        if value is not None:
            cfg[section][name] = value
    return from_dict(EMStage, cfg, where=str(path))


def _labels(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Training sample ids, E-step labels, localizer labels, number of pseudo-classes."""
    with np.load(folder / "predictions.npz") as p:
        return (
            p["train_sample_id"],
            p["train_pseudo_label"],
            p["train_localizer_label"],
            int(p["n_pseudo_classes"]),
        )


def _run_seed(args, manifest: Manifest, name: str, setting: dict, seed: int) -> list[dict]:
    cfg = _config(args.results, args.dataset, seed, setting)
    base = args.results
    store = base / "extract" / args.dataset
    rows, prev_dir, prev_z = [], None, None
    for k in range(1, cfg.em.rounds + 1):
        out = args.out / name / f"seed{seed}" / f"round{k}"
        if k == 1:  # round 1 does not depend on the grid: the study's own
            out = base / "em" / args.dataset / f"seed{seed}" / "round1"
        elif not (out / "predictions.npz").is_file():
            run_em_round(
                manifest,
                store / f"{cfg.data.visual_recipe}.zarr",
                store / f"{cfg.data.audio_recipe}.zarr",
                base / "pretrain" / args.dataset / f"seed{seed}",
                base / "selflabel" / args.dataset / f"seed{seed}",
                prev_dir,
                k,
                cfg,
                seed,
                out,
            )
        ids, z, z_loc, K = _labels(out)
        row = {
            "setting": name,
            "seed": seed,
            "round": k,
            "balance": label_free.balance(z, K),
            "fit": label_free.fit(z, z_loc),
        }
        if prev_z is not None:
            row["agreement"] = label_free.agreement(prev_z, z)
        # ground truth only for the check written beside the choice
        samples = {s.sample_id: s for s in manifest.samples}
        y = sample_classes(manifest, [samples[str(i)] for i in ids])
        C = len(manifest.classes)
        row["purity"] = purity(contingency(z, y, K, C + 1))
        rows.append(row)
        prev_dir, prev_z = out, z
    s = label_free.score(rows)
    for r in rows:
        r["score"] = s
    return rows


def _grid(items: list[str]) -> dict[str, tuple]:
    """``["em.init=pretrain,previous", ...]`` -> {"em.init": ("pretrain", "previous")};
    numbers become ints, ``study`` None (the study's own value)."""
    out: dict[str, tuple] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key.count(".") != 1 or not values:
            raise SystemExit(f"--grid {item!r}: expected SECTION.KEY=V1,V2")
        out[key] = tuple(
            None if v == "study" else int(v) if v.isdigit() else v for v in values.split(",")
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, required=True, help="a study's results/ folder")
    p.add_argument("--dataset", default="synth_ave")
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="folder of the reruns and table")
    p.add_argument(
        "--grid",
        nargs="*",
        default=[],
        metavar="SECTION.KEY=V1,V2",
        help="replace the grid, e.g. em.estep_features=pretrain,localizer selflabel.init=previous "
        "('study' = the study's own value)",
    )
    args = p.parse_args(argv)
    grid = _grid(args.grid) if args.grid else GRID
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    manifest = Manifest.read(args.results / "manifest" / args.dataset)
    rows: list[dict] = []
    summary = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        name = "__".join(f"{k}={'study' if v is None else v}" for k, v in setting.items())
        seed_rows = [_run_seed(args, manifest, name, setting, s) for s in args.seeds]
        rows += [r for rs in seed_rows for r in rs]
        scores = [rs[0]["score"] for rs in seed_rows]
        fits = [r["fit"] for rs in seed_rows for r in rs]
        fell = sum(
            any(b["purity"] < a["purity"] for a, b in zip(rs, rs[1:], strict=False))
            for rs in seed_rows
        )
        summary.append((float(np.mean(scores)), float(np.mean(fits)), name, fell))
        print(f"{name}: score {summary[-1][0]:.2f} fit {summary[-1][1]:.1f} ", flush=True)
    summary.sort(key=lambda t: (-t[0] if not math.isinf(t[0]) else math.inf, -t[1]))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_tsv(args.out / "rounds.tsv", COLUMNS, [[r.get(c) for c in COLUMNS] for r in rows])
    atomic.write_tsv(
        args.out / "settings.tsv",
        ["rank", "setting", "score", "fit", "seeds_with_a_purity_fall"],
        [[i + 1, n, s, f, fell] for i, (s, f, n, fell) in enumerate(summary)],
    )
    print(f"chosen (label-free): {summary[0][2]}")
    for s, f, n, fell in summary:
        print(f"  {n}: score {s:.2f}, fit {f:.1f}; purity fell on {fell}/{len(args.seeds)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
