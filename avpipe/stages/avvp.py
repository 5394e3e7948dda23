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
from pathlib import Path

import numpy as np
import torch

from avpipe.config import ConfigError, from_dict, load_json_arg, to_dict
from avpipe.datasets import avvp as data
from avpipe.localize.inputs import record_inputs
from avpipe.methods import avvp as family
from avpipe.metrics.avvp import scored_metrics
from avpipe.training.checkpoint import save_checkpoint
from avpipe.training.epochs import seed_everything
from avpipe.utils.atomic import atomic_path, write_json
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=sorted(family.METHODS))
    p.add_argument("--manifest", required=True, type=Path, help="results/manifest/<dataset>")
    p.add_argument("--audio-store", required=True, type=Path, help="vggish.zarr (N, T, Da)")
    p.add_argument(
        "--frames-store", required=True, type=Path, help="resnet152_llp.zarr (frames (N, T, k, Df))"
    )
    p.add_argument("--motion-store", required=True, type=Path, help="r2plus1d18.zarr (N, T, Dm)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--config-json", default="{}", help='{"data": {...}, "<method>": {...}} (avvp section)'
    )
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    raw = load_json_arg(args.config_json)
    unknown = sorted(set(raw) - {"data", args.method})
    if unknown:
        raise ConfigError(
            f"avvp: unknown key(s) {unknown} for method {args.method!r}; "
            f"expected 'data' and {args.method!r}"
        )
    method = family.get_method(args.method)
    dcfg = from_dict(family.DataConfig, raw.get("data", {}), where="avvp.data")
    cfg = from_dict(method.Config, raw.get(args.method, {}), where=f"avvp.{args.method}")
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
    trainer = method.Trainer(cfg, dims, device, splits["train"])
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
    pred = family.collect_predictions(
        trainer, splits, ("val", "test"), dcfg.eval_batch_size, device
    )
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
