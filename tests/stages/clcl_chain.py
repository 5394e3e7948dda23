"""One small run of the three CLCL stages, shared by the stage tests (cached per session)."""

from __future__ import annotations

import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
from clcl_fixtures import make_dataset

from avpipe.config import from_dict
from avpipe.methods.clcl import stages
from avpipe.methods.clcl.config import EMStage, PretrainStage, SelflabelStage
from avpipe.metrics.unsupervised import evaluate

ROUNDS = 3
CFG = {
    "data": {"num_threads": 1, "device": "cpu"},
    "pretrain": {
        "epochs": 8,
        "batch_size": 16,
        "encoder": {"d_model": 16, "heads": 4},
        "log_every": 1000,
    },
    "selflabel": {"hidden": 16, "top_k": 6, "epochs": 30, "batch_size": 16, "log_every": 1000},
    "em": {
        "rounds": ROUNDS,
        "epochs": 30,
        "lr": 0.002,
        "dropout": 0.0,
        "batch_size": 16,
        "annotator_epochs": 30,
        "log_every": 1000,
    },
}


@cache
def run_chain() -> dict:
    """Runs once per test session (all three stage test files share it)."""
    torch.set_num_threads(1)
    r = Path(tempfile.mkdtemp(prefix="clcl-chain-"))
    manifest, v, a = make_dataset(r, n_train=40, n_test=16)
    times, metrics = {}, {}
    t = time.perf_counter()
    stages.run_pretrain(
        manifest,
        v,
        a,
        from_dict(PretrainStage, {k: CFG[k] for k in ("data", "pretrain")}),
        0,
        r / "pre",
    )
    times["pretrain"] = time.perf_counter() - t
    t = time.perf_counter()
    sl = from_dict(SelflabelStage, {k: CFG[k] for k in ("data", "selflabel")})
    stages.run_selflabel(manifest, v, a, r / "pre", sl, 0, r / "sl")
    times["selflabel"] = time.perf_counter() - t
    em = from_dict(EMStage, {k: CFG[k] for k in ("data", "selflabel", "em")})
    prev = None
    for k in range(1, ROUNDS + 1):
        t = time.perf_counter()
        stages.run_em_round(manifest, v, a, r / "pre", r / "sl", prev, k, em, 0, r / f"round{k}")
        times[f"em{k}"] = time.perf_counter() - t
        prev = r / f"round{k}"
        with np.load(prev / "predictions.npz") as z:
            metrics[k] = evaluate(manifest, {n: z[n] for n in z.files}, {"split": "test"}).metrics
    return {"root": r, "manifest": manifest, "stores": (v, a), "times": times, "metrics": metrics}
