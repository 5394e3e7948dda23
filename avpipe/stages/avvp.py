"""``avpipe avvp``: train one weakly supervised AVVP method (HAN or CoLeaF) on one dataset.

Trains on the weak video labels of the train split, selects the epoch on the
validation split's dense labels, and writes to ``--out-dir``:
``model.pt`` (the deployed model: HAN, or CoLeaF's Anchor, with its config, and in
``missing_stream`` the videos of each split left out because a store says they have no
audio or no video stream, or because they have no segment; val and test are then scored
on fewer videos),
``predictions.npz`` (val + test probabilities, arrays of avpipe.metrics.avvp plus
``split``), ``history.tsv`` (losses and validation metrics per epoch, epochs from 1) and
``summary.json`` (the kept epoch and its val score, the tie rule, sizes, seconds, and the
resolved config: what the report names the run's exact variant from).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from avpipe import config as configs
from avpipe.config import ConfigError, from_dict, to_dict
from avpipe.datasets import avvp as data
from avpipe.localize.inputs import record_inputs
from avpipe.methods import avvp as family
from avpipe.methods import registry
from avpipe.metrics.avvp import scored_metrics
from avpipe.stages import add_config_arguments, add_run_arguments, fill_paths, require
from avpipe.training.checkpoint import save_checkpoint
from avpipe.training.epochs import seed_everything
from avpipe.utils.atomic import atomic_path, write_json
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)
SECTION = "avvp"
DEFAULT_JSON = "{}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=sorted(registry.of_stage("avvp")))
    add_config_arguments(p)
    # audio (N, T, Da); frames: frames (N, T, k, Df); motion (N, T, Dm)
    add_run_arguments(p, "audio", "frames", "motion")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("avvp", args.dataset, method=args.method, config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    config_cls = registry.load(registry.get(args.method).config)
    return {
        "data": to_dict(from_dict(family.DataConfig, cfg.get("data", {}), where="avvp.data")),
        args.method: to_dict(from_dict(config_cls, cfg.get(args.method, {}), where="avvp")),
    }


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    raw = args.cfg
    unknown = sorted(set(raw) - {"data", args.method})
    if unknown:
        raise ConfigError(
            f"avvp: unknown key(s) {unknown} for method {args.method!r}; "
            f"expected 'data' and {args.method!r}"
        )
    method = registry.get(args.method)
    dcfg = from_dict(family.DataConfig, raw.get("data", {}), where="avvp.data")
    config_cls = registry.load(method.config)
    cfg = from_dict(config_cls, raw.get(args.method, {}), where=f"avvp.{args.method}")
    base = f"results/extract/{args.dataset}"
    fill_paths(
        args,
        manifest=f"results/manifest/{args.dataset}",
        audio_store=f"{base}/{dcfg.audio_recipe}.zarr",
        frames_store=f"{base}/{dcfg.frames_recipe}.zarr",
        motion_store=f"{base}/{dcfg.motion_recipe}.zarr",
    )
    require(args, "manifest", "audio_store", "frames_store", "motion_store", "out_dir")
    torch.set_num_threads(dcfg.num_threads)
    device = family.resolve_device(dcfg.device)
    generator = seed_everything(args.seed)
    manifest, splits, dims = data.load(
        args.manifest,
        args.audio_store,
        args.frames_store,
        args.motion_store,
        use_frames=dcfg.use_frames,
    )
    stats = data.standardize(splits) if dcfg.standardize else {}
    log.info(
        "%s on %s: %s, splits %s, device %s",
        args.method,
        manifest.dataset,
        dims,
        {k: len(v) for k, v in splits.items()},
        device,
    )
    trainer = registry.load(method.trainer)(cfg, dims, device, splits["train"])
    scored = scored_metrics(manifest)
    result = family.train(
        trainer, splits, cfg.select, device, dcfg.eval_batch_size, generator, scored
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    config = {"method": args.method, "data": to_dict(dcfg), args.method: to_dict(cfg)}
    save_checkpoint(
        args.out_dir / "model.pt",
        result.best_state,
        config,
        dims=asdict(dims),
        classes=manifest.classes,
        best_epoch=result.best_epoch,
        best_val_score=result.best_score,
        seed=args.seed,
        input_stats={k: torch.from_numpy(v) for k, v in stats.items()},
        missing_stream={k: v.missing for k, v in splits.items()},
    )
    record_inputs(
        args.out_dir,
        "avvp",
        manifest.dataset,
        (manifest.segment_hop, manifest.segment_win),
        {"audio": args.audio_store, "frames": args.frames_store, "motion": args.motion_store},
        stats,
    )
    predict = registry.load(method.predict)
    pred = predict(trainer, splits, ("val", "test"), dcfg.eval_batch_size, device)
    with atomic_path(args.out_dir / "predictions.npz") as tmp, tmp.open("wb") as fh:
        np.savez(fh, **pred)
    result.history.write(args.out_dir / "history.tsv")
    summary = {
        "method": args.method,
        "dataset": manifest.dataset,
        "seed": args.seed,
        "best_epoch": result.best_epoch,
        "best_val_score": result.best_score,
        "select_metric": cfg.select.metric,
        "select_ties": cfg.select.ties,
        "seconds": time.perf_counter() - t0,
        **{f"n_{k}": len(v) for k, v in splits.items()},
        "missing_stream": {k: v.missing for k, v in splits.items()},
        **provenance(config),
    }
    write_json(args.out_dir / "summary.json", summary)
    log.info(
        "trained %s in %.1f s; best epoch %d, val %s = %.2f",
        args.method,
        result.seconds,
        result.best_epoch,
        cfg.select.metric,
        result.best_score,
    )
    return 0
