"""Report tests: a small results/ tree as the evaluation stages write it, for the report tests.

Built in seconds without training: a toy manifest (tests/clcl_fixtures.py), predictions
made from the ground truth with seeded noise, and metrics.json files written by the real
``avpipe evaluate`` (unsupervised and ave tasks); the AVVP run, whose evaluator may not
be installed, gets a hand-written metrics.json in its documented key layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from clcl_fixtures import make_dataset

from avpipe.cli import main as avpipe_main
from avpipe.datasets.manifest import Manifest
from avpipe.metrics.ave import segment_labels
from avpipe.report.published import AVVP_COLUMNS

DS = "toy"
SEEDS = (0, 1)
ROUNDS = (1, 2)


def _history(path: Path, phases: tuple[str, ...], seed: int) -> None:
    rows = ["phase\tepoch\tloss\tlr"] if phases[0] else ["epoch\tloss\tlr"]
    for ph in phases:
        for e in range(5):
            loss = 2.0 / (e + 1) + 0.1 * seed
            rows.append(
                ("\t".join([ph, str(e), f"{loss:.4f}", "0.05"])) if ph else f"{e}\t{loss:.4f}\t0.05"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def _evaluate(task: str, root: Path, pred: Path, out: Path) -> None:
    rc = avpipe_main(
        [
            "evaluate",
            "--task",
            task,
            "--manifest",
            str(root / "results/manifest" / DS),
            "--predictions",
            str(pred),
            "--config-json",
            '{"split": "test"}' if task == "unsupervised" else "{}",
            "--out-dir",
            str(out),
        ]
    )
    assert rc == 0


def _unsupervised(root: Path, m: Manifest, labels: np.ndarray, classes: np.ndarray) -> None:
    train = [s for s in m.samples if s.split == "train"]
    tr_idx = np.array([i for i, s in enumerate(m.samples) if s.split == "train"])
    C = len(m.classes)
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for k in ROUNDS:
            d = root / f"results/em/{DS}/seed{seed}/round{k}"
            d.mkdir(parents=True)
            flip = rng.random(len(m.samples)) < (0.4 - 0.15 * k)  # later rounds are purer
            pseudo = np.where(flip, rng.integers(0, C, len(m.samples)), classes)
            np.savez(
                d / "predictions.npz",
                sample_id=np.array([s.sample_id for s in m.samples]),
                split=np.array([s.split for s in m.samples]),
                video_pseudo=pseudo,
                foreground=labels < C,
                n_pseudo_classes=np.int64(C),
                train_sample_id=np.array([s.sample_id for s in train]),
                train_pseudo_label=pseudo[tr_idx],
            )
            emb = np.eye(C)[classes[tr_idx]] * 3 + rng.normal(size=(len(train), C))
            np.savez(
                d / "embeddings.npz",
                sample_id=np.array([s.sample_id for s in train]),
                embedding=emb.astype(np.float32),
                pseudo_label=pseudo[tr_idx],
            )
            _history(d / "history.tsv", ("e_step", "m_step"), seed)
            (d / "summary.json").write_text(
                json.dumps(
                    {"config": {"data": {"visual_recipe": "vgg19_pool5", "audio_recipe": "vggish"}}}
                )
            )
            _evaluate(
                "unsupervised",
                root,
                d / "predictions.npz",
                root / f"results/evaluate/unsupervised/{DS}/clcl/seed{seed}/round{k}",
            )
        for stage in ("pretrain", "selflabel"):
            _history(root / f"results/{stage}/{DS}/seed{seed}/history.tsv", ("",), seed)


def _ave(root: Path, m: Manifest, labels: np.ndarray) -> None:
    test = [i for i, s in enumerate(m.samples) if s.split == "test"]
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        d = root / f"results/cpsp/{DS}/psp_weak/seed{seed}"
        d.mkdir(parents=True)
        pred = labels[test].copy()
        noise = rng.random(pred.shape) < 0.2
        pred[noise] = len(m.classes)
        np.savez(
            d / "predictions.npz",
            sample_id=np.array([m.samples[i].sample_id for i in test]),
            segment_pred=pred,
        )
        _history(d / "history.tsv", ("",), seed)
        run = {"setting": "weak", "head": "cpsp", "weights": dict.fromkeys(LOSSES, 0)}
        run["train"] = {"epochs": 45, "batch_size": 64, "grad_clip": 0.1}
        (d / "summary.json").write_text(json.dumps({"config": {"run": run}}))
        _evaluate(
            "ave",
            root,
            d / "predictions.npz",
            root / f"results/evaluate/cpsp/{DS}/psp_weak/seed{seed}",
        )


LOSSES = ("avpsp", "spsa", "vpsa", "ss")
AVVP_VALUES = {0: 40.0, 1: 44.0}  # every AVVP metric of seed s (mean 42, sample std 2.83)


def _avvp(root: Path, m: Manifest, labels: np.ndarray) -> None:
    test = [i for i, s in enumerate(m.samples) if s.split == "test"]
    C = len(m.classes)
    onehot = np.eye(C + 1)[labels[test]][..., :C]
    for seed in SEEDS:
        d = root / f"results/avvp/{DS}/coleaf/seed{seed}"
        d.mkdir(parents=True)
        np.savez(
            d / "predictions.npz",
            sample_id=np.array([m.samples[i].sample_id for i in test]),
            n_segments=np.full(len(test), 10),
            seg_prob_audio=onehot * 0.9,
            seg_prob_visual=onehot * 0.8,
            video_prob_audio=onehot.max(1),
            video_prob_visual=onehot.max(1),
        )
        _history(d / "history.tsv", ("",), seed)
        cfg = {"method": "coleaf", "coleaf": {"anchor_backbone": "han"}}
        (d / "summary.json").write_text(json.dumps({"config": cfg}))
        out = root / f"results/evaluate/avvp/{DS}/coleaf/seed{seed}"
        out.mkdir(parents=True)
        metrics = {f"fixed.{c}": AVVP_VALUES[seed] for c in AVVP_COLUMNS}
        metrics["n_videos"] = len(test)
        (out / "metrics.json").write_text(
            json.dumps(
                {
                    "task": "avvp",
                    "dataset": DS,
                    "metrics": metrics,
                    "info": {},
                    "predictions": str(d / "predictions.npz"),
                    "config_hash": "abc",
                    "versions": {"avpipe": "0.1.0"},
                }
            )
        )


def build_tree(root: Path) -> Path:
    """Writes root/results/{manifest,em,cpsp,avvp,pretrain,selflabel,evaluate}; returns root."""
    m, _, _ = make_dataset(root / "data", n_train=40, n_test=12)
    m = m.replace(dataset=DS)
    m.write(root / "results/manifest" / DS)
    m = Manifest.read(root / "results/manifest" / DS)
    labels = segment_labels(m, m.samples, n_segments=10)
    classes = np.array(
        [int(np.bincount(r[r < len(m.classes)], minlength=len(m.classes)).argmax()) for r in labels]
    )
    _unsupervised(root, m, labels, classes)
    _ave(root, m, labels)
    _avvp(root, m, labels)
    return root


def metrics_files(root: Path) -> list[Path]:
    return sorted((root / "results/evaluate").rglob("metrics.json"))
