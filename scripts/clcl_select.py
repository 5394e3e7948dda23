#!/usr/bin/env python3
"""Choose CLCL's settings by label-free criteria (avpipe.metrics.label_free).

From a finished study (``<results>/pretrain``, ``selflabel``, ``em`` of every seed) it
reruns, for every setting of a grid (keys ``SECTION.KEY`` of the ``unsupervised``
config: ``selflabel.*``, ``em.*``, ``data.*``, ``pretrain.*``), the stages whose config
the setting changes and everything after them, into ``<out>/_<stage>/<keys>/seed<s>/``
(shared by the settings that agree on what the stage reads); a stage whose config and
inputs are the study's is reused.  Round 1 does not read the
E-step keys of rounds >= 2 (``LATER_ROUNDS``), so they reuse the study's round 1.

Each setting is scored without labels:

* ``score``: mean over seeds of :func:`label_free.score` (the worst round-to-round NMI of
  the pseudo-labels; -inf when a round's pseudo-class sizes collapse);
* ``consistency``: per round, the mean pairwise NMI between the seeds' pseudo-labels
  (:func:`label_free.consistency`); its worst round counts;
* ``criterion`` = min(score, worst-round consistency): a setting must both keep its
  partition from round to round and reproduce it from seed to seed.  Ties: mean fit.

The foreground rule (``em.foreground_rule``, ``em.relative_threshold``) changes no
pseudo-label; it is chosen afterwards, on the chosen setting's localizers, by the
cross-seed consistency of the foreground masks of the training videos
(:func:`label_free.mask_consistency`, worst round) among ``--foreground`` rules.

Purity and test accuracy are computed only AFTER the choice and written beside it
(``purity`` and ``accuracy`` per round as mean ± 95 % half-width over the seeds,
``seeds_with_a_purity_fall``; the foreground rules' accuracies), to check the requirement
that purity falls from one round to the next on at most one seed; they never enter the
choice.

    PYTHONPATH=$PWD python3 scripts/clcl_select.py --results results/benchmark/results \\
        --seeds 0 1 2 3 4 --out results/clcl_select \\
        --grid selflabel.restarts=1,5 selflabel.init=seeded,previous
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
from avpipe.methods.clcl.config import EMStage, PretrainStage, SelflabelStage
from avpipe.methods.clcl.localizer import foreground
from avpipe.methods.clcl.stages import run_em_round, run_pretrain, run_selflabel
from avpipe.metrics import label_free, unsupervised
from avpipe.metrics.unsupervised import contingency, purity, sample_classes
from avpipe.report.compare import t_interval
from avpipe.utils import atomic

GRID = {
    "em.init": ("pretrain", "previous"),
    "selflabel.init": ("seeded", "previous"),
    "em.annotator_epochs": (None, 10),  # None: the study's own
}
# keys that only the E-steps of rounds >= 2 read (round 1 takes stage B's labels)
LATER_ROUNDS = {
    "em.init",
    "em.annotator_epochs",
    "em.estep_features",
    "em.align_labels",
    "selflabel.init",
    "selflabel.init_epochs",
    "selflabel.restarts",
    "selflabel.restart_choice",
    "selflabel.top_k",
    "selflabel.epochs",
    "selflabel.lr",
}
# keys that stage B does not read (its annotator is seeded), except for the k-means start
NOT_STAGE_B = {"selflabel.init", "selflabel.init_epochs"}
COLUMNS = ["setting", "seed", "round", "balance", "agreement", "fit", "score", "purity", "accuracy"]
STAGES = {"pretrain": PretrainStage, "selflabel": SelflabelStage, "em": EMStage}


def _study_config(results: Path, stage: str, dataset: str, seed: int) -> dict:
    folder = results / stage / dataset / f"seed{seed}"
    path = folder / ("round1" if stage == "em" else "") / "summary.json"
    return json.loads(path.read_text())["config"]


def _put(cfg: dict, setting: dict) -> tuple[dict, set[str]]:
    """``cfg`` with the setting's keys of its sections put in; the keys that changed."""
    out = json.loads(json.dumps(cfg))
    changed = set()
    for key, value in setting.items():
        section, name = key.split(".")
        if value is None or section not in out:
            continue
        if out[section].get(name) != value:
            out[section][name] = value
            changed.add(key)
    return out, changed


def _name(setting: dict, keys: set[str]) -> str:
    return "__".join(f"{k}={setting[k]}" for k in sorted(keys)) or "study"


def _stage_b(study_init: str | None, new_init: str, changed: set[str]) -> set[str]:
    """The changed selflabel keys that stage B reads: not ``selflabel.init`` and
    ``init_epochs``, unless the k-means start is switched on or off (stage B uses it
    too) or its epochs change while it is on."""
    keys = changed - NOT_STAGE_B
    if (study_init == "kmeans") != (new_init == "kmeans"):
        keys.add("selflabel.init")
    if new_init == "kmeans" and "selflabel.init_epochs" in changed:
        keys.add("selflabel.init_epochs")
    return keys


class Seed:
    """One seed of one setting: its stage configs, and each stage's folder: the study's
    when the stage's config and inputs are the study's, else one shared by the settings
    that agree on what the stage depends on (``<out>/_<stage>/<those keys>/seed<s>``)."""

    def __init__(self, args, setting: dict, name: str, seed: int):
        self.args, self.seed = args, seed
        self.cfg, changed, study = {}, {}, {}
        for stage, cls in STAGES.items():
            study[stage] = _study_config(args.results, stage, args.dataset, seed)
            raw, changed[stage] = _put(study[stage], setting)
            self.cfg[stage] = from_dict(cls, raw, where=f"{args.results}/{stage} seed {seed}")
        stage_b = _stage_b(
            study["selflabel"]["selflabel"].get("init"),
            self.cfg["selflabel"].selflabel.init,
            changed["selflabel"],
        )
        self.keys = {
            "pretrain": changed["pretrain"],
            "selflabel": changed["pretrain"] | stage_b,
        }
        self.keys["round1"] = self.keys["selflabel"] | (changed["em"] - LATER_ROUNDS)
        self.keys["later"] = self.keys["round1"] | changed["em"]
        self.setting, self.name = setting, name

    def _folder(self, stage: str, study: Path) -> Path:
        keys = self.keys[stage]
        if not keys:
            return study
        name = self.name if stage == "later" else _name(self.setting, keys)
        return self.args.out / f"_{stage}" / name / f"seed{self.seed}"

    def study(self, stage: str) -> Path:
        return self.args.results / stage / self.args.dataset / f"seed{self.seed}"

    def pretrain(self) -> Path:
        return self._folder("pretrain", self.study("pretrain"))

    def selflabel(self) -> Path:
        return self._folder("selflabel", self.study("selflabel"))

    def round(self, k: int) -> Path:
        stage = "round1" if k == 1 else "later"
        return self._folder(stage, self.study("em")) / f"round{k}"


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
    s = Seed(args, setting, name, seed)
    store = args.results / "extract" / args.dataset
    data = s.cfg["em"].data
    visual = store / f"{data.visual_recipe}.zarr"
    audio = store / f"{data.audio_recipe}.zarr"
    if not (s.pretrain() / "encoder.pt").is_file():
        run_pretrain(manifest, visual, audio, s.cfg["pretrain"], seed, s.pretrain())
    if not (s.selflabel() / "pseudo_labels.npz").is_file():
        run_selflabel(
            manifest, visual, audio, s.pretrain(), s.cfg["selflabel"], seed, s.selflabel()
        )
    rows, prev_z = [], None
    for k in range(1, s.cfg["em"].em.rounds + 1):
        out = s.round(k)
        if not (out / "predictions.npz").is_file():
            prev = s.round(k - 1) if k > 1 else None
            args_em = (manifest, visual, audio, s.pretrain(), s.selflabel(), prev, k)
            run_em_round(*args_em, s.cfg["em"], seed, out)
        ids, z, z_loc, K = _labels(out)
        row = {
            "setting": name,
            "seed": seed,
            "round": k,
            "balance": label_free.balance(z, K),
            "fit": label_free.fit(z, z_loc),
            "labels": z,
            "folder": out,
        }
        if prev_z is not None:
            row["agreement"] = label_free.agreement(prev_z, z)
        # ground truth only for the check written beside the choice
        samples = {x.sample_id: x for x in manifest.samples}
        y = sample_classes(manifest, [samples[str(i)] for i in ids])
        row["purity"] = purity(contingency(z, y, K, len(manifest.classes) + 1))
        row["accuracy"] = _accuracy(manifest, out, None)
        rows.append(row)
        prev_z = z
    seed_score = label_free.score(rows)
    for r in rows:
        r["score"] = seed_score
    return rows


def _accuracy(manifest: Manifest, folder: Path, rule: tuple[str, float] | None) -> float:
    """Test accuracy of a round's predictions, with its own foreground or ``rule``'s."""
    with np.load(folder / "predictions.npz") as p:
        pred = {k: p[k] for k in p.files}
    if rule is not None:
        gamma = pred["gamma"]
        pred["foreground"] = foreground(gamma, np.isfinite(gamma) & (gamma > 0), *rule)
    return unsupervised.evaluate(manifest, pred, {"split": "test"}).metrics["accuracy"]


def _grid(items: list[str]) -> dict[str, tuple]:
    """``["em.init=pretrain,previous", ...]`` -> {"em.init": ("pretrain", "previous")};
    numbers become ints or floats, ``study`` None (the study's own value)."""
    out: dict[str, tuple] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key.count(".") != 1 or not values:
            raise SystemExit(f"--grid {item!r}: expected SECTION.KEY=V1,V2")
        if key.split(".")[0] not in ("data", *STAGES):
            raise SystemExit(f"--grid {item!r}: section must be data, pretrain, selflabel or em")
        out[key] = tuple(_value(v) for v in values.split(","))
    return out


def _value(text: str) -> object:
    if text == "study":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _summary(name: str, seed_rows: list[list[dict]]) -> dict:
    """Label-free scores of one setting over its seeds, then the purity check."""
    rounds = len(seed_rows[0])
    score = float(np.mean([rs[0]["score"] for rs in seed_rows]))
    if len(seed_rows) > 1:
        cons = [
            label_free.consistency([rs[k]["labels"] for rs in seed_rows]) for k in range(rounds)
        ]
    else:
        cons = [math.nan] * rounds
    worst = min(cons) if len(seed_rows) > 1 else score
    criterion = -math.inf if math.isinf(score) else min(score, worst)
    fell = sum(
        any(b["purity"] < a["purity"] for a, b in itertools.pairwise(rs)) for rs in seed_rows
    )
    return {
        "setting": name,
        "criterion": criterion,
        "score": score,
        "consistency": cons,
        "fit": float(np.mean([r["fit"] for rs in seed_rows for r in rs])),
        "purity": [t_interval([rs[k]["purity"] for rs in seed_rows]) for k in range(rounds)],
        "accuracy": [t_interval([rs[k]["accuracy"] for rs in seed_rows]) for k in range(rounds)],
        "fell": fell,
    }


def _rule(text: str) -> tuple[str, float]:
    """``uniform`` or ``relative:0.3`` -> (rule, threshold)."""
    rule, _, th = text.partition(":")
    if rule == "uniform" and not th:
        return rule, 0.0
    if rule == "relative" and th:
        return rule, float(th)
    raise SystemExit(f"--foreground {text!r}: expected uniform or relative:<threshold>")


def _foreground(args, manifest: Manifest, folders: list[list[Path]]) -> list[list]:
    """Per rule of ``--foreground``: cross-seed kappa of the training videos' foreground
    masks per round (``folders[seed][round]``), best (highest worst round) first; then,
    only as a check, the test accuracy per round with that rule."""
    out = []
    for text in args.foreground:
        rule, th = _rule(text)
        kappas = []
        for k in range(len(folders[0])):
            masks = []
            for seed_folders in folders:
                with np.load(seed_folders[k] / "predictions.npz") as p:
                    train = p["split"] == "train"
                    gamma = p["gamma"][train]
                masks.append(foreground(gamma, np.isfinite(gamma) & (gamma > 0), rule, th))
            kappas.append(label_free.mask_consistency(masks))
        acc = [
            t_interval([_accuracy(manifest, f[k], (rule, th)) for f in folders]).fmt(1)
            for k in range(len(folders[0]))
        ]
        out.append([text, min(kappas), " / ".join(f"{v:.3f}" for v in kappas), " / ".join(acc)])
    return sorted(out, key=lambda r: -r[1])


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
        help="replace the grid, e.g. selflabel.restarts=1,5 em.estep_features=pretrain,localizer "
        "('study' = the study's own value)",
    )
    p.add_argument(
        "--foreground",
        nargs="*",
        default=["uniform", "relative:0.3", "relative:0.5"],
        help="foreground rules to compare on the chosen setting: uniform, relative:<threshold>",
    )
    args = p.parse_args(argv)
    grid = _grid(args.grid) if args.grid else GRID
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    manifest = Manifest.read(args.results / "manifest" / args.dataset)
    rows: list[dict] = []
    summary, folders = [], {}
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        name = "__".join(f"{k}={'study' if v is None else v}" for k, v in setting.items())
        seed_rows = [_run_seed(args, manifest, name, setting, s) for s in args.seeds]
        folders[name] = [[r["folder"] for r in rs] for rs in seed_rows]
        rows += [r for rs in seed_rows for r in rs]
        summary.append(_summary(name, seed_rows))
        t = summary[-1]
        print(f"{name}: criterion {t['criterion']:.2f} fit {t['fit']:.1f}", flush=True)
    summary.sort(key=lambda t: (-t["criterion"], -t["fit"]))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_tsv(args.out / "rounds.tsv", COLUMNS, [[r.get(c) for c in COLUMNS] for r in rows])
    header = ["rank", "setting", "criterion", "score", "worst_consistency", "fit"]
    atomic.write_tsv(
        args.out / "settings.tsv",
        [
            *header,
            "consistency_per_round",
            "purity_per_round",
            "accuracy_per_round",
            "seeds_with_a_purity_fall",
        ],
        [
            [
                i + 1,
                t["setting"],
                t["criterion"],
                t["score"],
                min(t["consistency"]),
                t["fit"],
                " / ".join(f"{c:.1f}" for c in t["consistency"]),
                " / ".join(v.fmt(1) for v in t["purity"]),
                " / ".join(v.fmt(1) for v in t["accuracy"]),
                t["fell"],
            ]
            for i, t in enumerate(summary)
        ],
    )
    print(f"chosen (label-free): {summary[0]['setting']}")
    if len(args.seeds) > 1 and args.foreground:
        rules = _foreground(args, manifest, folders[summary[0]["setting"]])
        header = ["rule", "worst_kappa", "kappa_per_round", "accuracy_per_round"]
        atomic.write_tsv(args.out / "foreground.tsv", header, rules)
        print(f"foreground rule (label-free, on the chosen setting): {rules[0][0]}")
        for rule, worst, per_round, acc in rules:
            print(
                f"  {rule}: cross-seed kappa {per_round} (worst {worst:.3f}); "
                f"afterwards: accuracy {acc}"
            )
    n = len(args.seeds)
    for t in summary:
        cons = " / ".join(f"{c:.1f}" for c in t["consistency"])
        pur = " / ".join(v.fmt(1) for v in t["purity"])
        acc = " / ".join(v.fmt(1) for v in t["accuracy"])
        print(
            f"  {t['setting']}: criterion {t['criterion']:.2f} (round-to-round {t['score']:.2f}, "
            f"seed-to-seed {cons}), fit {t['fit']:.1f}; afterwards: purity {pur}, accuracy {acc}, "
            f"fell on {t['fell']}/{n} seeds"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
