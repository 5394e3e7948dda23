"""Training data path at VGGSound-AVEL100k scale: memory and data cost per sample.

Builds a store shaped like the CPSP VGGSound-AVEL100k features (visual (10, 7, 7, 512)
float16 maps, one video per chunk; audio (10, 128) float32, many videos per chunk) in a
temporary directory, then, for each setting (in memory / streamed, 0 / 2 / 8 loader
workers), runs in a fresh process what a CPSP job does with its data: open train, val
and test under ONE memory budget (:func:`avpipe.training.data.open_splits`), stream
``--epochs`` shuffled training epochs into a stub model that takes ``--model-ms`` per
sample (a sleep, as a GPU would leave the CPU free), then one validation pass.

Each setting runs twice, each time in a fresh process: a timing pass, and a memory pass
that samples the memory of the training process and its loader workers every 0.1 s.
The sampler is kept out of the timing pass because it is not free: reading
``/proc/PID/smaps_rollup`` of 9 processes took ~120 ms of CPU per sweep here (the
kernel walks every mapping), more than half a core at 0.1 s, and it holds each
process's memory-map lock meanwhile.  Reported per setting:

* peak RSS and PSS of the whole stage (training process + loader workers; PSS counts
  the pages they share once), from the memory pass;
* per epoch, from the timing pass: data cost per sample in the training process, the
  wall time waiting for the next stored batch (``data_ms``) and the CPU time of the
  training process (all its threads) meanwhile (``main_cpu_ms``); the device is the
  CPU here, so the float32 conversion, z-scoring and masking that a GPU would do are
  measured apart (``device_ms``); and the fraction of the epoch the model waits for
  data (``wait_fraction``).  The loader's workers persist across epochs, so the first
  epoch also pays for starting them (``first_batch_ms``) and the later ones show the
  steady state; the top-level numbers are the last epoch's;
* CPU time of the loader workers over the whole pass (``worker_cpu_ms``: reading and
  decoding chunks);
* the visual store's codec (``--codec`` when the script builds the store; an existing
  ``--root`` keeps its own, see ``avpipe extract recompress``), the reader (``files``:
  chunk files decoded directly, :mod:`avpipe.io.chunks`; ``zarr``: zarr's indexing) and
  the load average before and after the run (the box may be shared).

    python scripts/benchmark_training_data.py --videos 10000 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
T, MAP, AUDIO = 10, (7, 7, 512), 128


def build(root: Path, n: int, seed: int = 0, codec: str = "zstd") -> None:
    """Stores + manifest of ``n`` videos (random features, 28 classes, one event each);
    the visual maps compressed with ``codec``."""
    from avpipe.datasets.manifest import Event, Manifest, Sample
    from avpipe.io.store import ArraySpec, StoreWriter

    rng = np.random.default_rng(seed)
    ids = [f"v{i:06d}" for i in range(n)]
    specs = {
        "visual": {"features": ArraySpec(MAP, "float16", codec=codec)},
        "audio": {"features": ArraySpec((AUDIO,), "float32")},
    }
    block = rng.standard_normal((64, T, *MAP), dtype=np.float32).astype(np.float16)
    for name, spec in specs.items():
        with StoreWriter(root / f"{name}.zarr", n, T, spec, {"modality": name}) as w:
            for i, v in enumerate(ids):
                if name == "visual":  # cheap distinct rows: a shifted block row
                    x = block[i % 64] + np.float16(i % 7)
                else:
                    x = rng.standard_normal((T, AUDIO), dtype=np.float32)
                w.add(v, T, {"features": x})
    classes = [f"c{i:02d}" for i in range(28)]
    cut = np.cumsum([int(f * n) for f in SPLITS.values()])
    split_of = np.searchsorted(cut, np.arange(n), side="right").clip(0, 2)
    names = list(SPLITS)
    samples = [
        Sample(v, v, names[s], f"{v}.mp4", 10.0, T) for v, s in zip(ids, split_of, strict=True)
    ]
    events = [Event(v, classes[i % 28], "audio-visual", 2.0, 7.0) for i, v in enumerate(ids)]
    Manifest("bench", "vggsound_avel", classes, samples, events).write(root / "manifest")


class PeakMemory(threading.Thread):
    """Peak of (RSS, PSS) summed over this process and its children, in bytes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rss = self.pss = 0
        self.stop = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            rss = pss = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    m = p.memory_full_info()
                except psutil.Error:
                    continue
                rss, pss = rss + m.rss, pss + m.pss
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
            self.stop.wait(0.1)


def run_one(
    root: Path,
    budget_mb: int,
    workers: int,
    batch: int,
    model_ms: float,
    reader: str,
    epochs: int = 2,
    memory: bool = False,
) -> dict:
    """One setting, in this process: the numbers of the module docstring (``memory``:
    the memory pass, else the timing pass)."""
    import torch
    import zarr

    from avpipe.datasets.manifest import Manifest
    from avpipe.io import chunks
    from avpipe.io.store_codec import codec_of
    from avpipe.training.data import Input, Loading, open_splits
    from avpipe.training.epochs import ordered_batches, seed_everything, shuffled_batches

    torch.set_num_threads(1)
    chunks.ENABLED = reader == "files"  # the loader workers fork after this
    load_before = os.getloadavg()[0]
    peak = PeakMemory()
    if memory:
        peak.start()
    t0 = time.perf_counter()
    manifest = Manifest.read(root / "manifest")
    inputs = {"visual": Input(root / "visual.zarr"), "audio": Input(root / "audio.zarr")}
    samples = {k: manifest.split(k) for k in SPLITS}
    splits = open_splits(manifest, inputs, samples, Loading(budget_mb, workers, batch))
    open_s = time.perf_counter() - t0
    train, device = splits["train"], torch.device("cpu")
    gen = seed_everything(0)
    per_epoch = []
    for _ in range(epochs):
        wait = prep = model = cpu = first = 0.0
        t_epoch = time.perf_counter()
        it = train.stored_batches(shuffled_batches(len(train), batch, gen))
        n = 0
        while True:
            t, c = time.perf_counter(), time.process_time()
            try:
                idx, raw = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            cpu += time.process_time() - c
            first = first or t1 - t
            b = train.to_device(idx, raw, device)
            t2 = time.perf_counter()
            time.sleep(model_ms * 1e-3 * len(idx))  # the stub model: the device is busy
            b["visual"].sum()
            t3 = time.perf_counter()
            wait, prep, model, n = wait + t1 - t, prep + t2 - t1, model + t3 - t2, n + len(idx)
        epoch = time.perf_counter() - t_epoch
        per_epoch.append({
            "epoch_s": round(epoch, 2),
            "first_batch_ms": round(1e3 * first, 1),
            "data_ms_per_sample": round(1e3 * wait / n, 3),
            "main_cpu_ms_per_sample": round(1e3 * cpu / n, 3),
            "device_ms_per_sample": round(1e3 * prep / n, 3),
            "model_ms_per_sample": round(1e3 * model / n, 3),
            "wait_fraction": round(wait / epoch, 3),
        })  # fmt: skip
    workers_cpu = sum(sum(p.cpu_times()[:2]) for p in psutil.Process().children() if p.is_running())
    t_val = time.perf_counter()
    for _, b in splits["val"].batches(ordered_batches(len(splits["val"]), batch), device):
        b["visual"].sum()
    val_s = time.perf_counter() - t_val
    in_memory = {k: s.in_memory for k, s in splits.items()}
    for s in splits.values():
        s.release()  # ends the workers before the numbers are read
    peak.stop.set()
    if memory:
        peak.join()
        return {"peak_rss_gb": round(peak.rss / 1e9, 2), "peak_pss_gb": round(peak.pss / 1e9, 2)}
    visual = zarr.open_group(str(root / "visual.zarr"), mode="r")["features"]
    return {
        "codec": codec_of(visual),
        "reader": reader,
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "budget_mb": budget_mb,
        "workers": workers,
        "in_memory": in_memory,
        "samples": n,
        "open_s": round(open_s, 2),
        **per_epoch[-1],
        "epochs": per_epoch,
        "worker_cpu_ms_per_sample": round(1e3 * workers_cpu / (n * epochs), 3),
        "val_s": round(val_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=10000)
    p.add_argument("--root", type=Path, help="store folder (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the store after the runs")
    p.add_argument("--budget-mb", type=int, default=2000, help="streamed runs' budget")
    p.add_argument("--memory-budget-mb", type=int, default=8000, help="in-memory runs' budget")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 8])
    p.add_argument("--modes", nargs="+", default=["streamed", "memory"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="training epochs per setting")
    p.add_argument("--model-ms", type=float, default=0.22, help="stub model, ms per sample")
    p.add_argument(
        "--codec", default="zstd", help="visual store codec when building (zstd, lz4, none)"
    )
    p.add_argument("--readers", nargs="+", default=["files"], choices=["files", "zarr"])
    p.add_argument("--out", type=Path, help="write the results as JSON")
    p.add_argument(
        "--one", nargs=3, metavar=("BUDGET_MB", "WORKERS", "READER"), help=argparse.SUPPRESS
    )
    p.add_argument("--memory-pass", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        budget, workers, reader = int(args.one[0]), int(args.one[1]), args.one[2]
        res = run_one(
            args.root, budget, workers, args.batch_size, args.model_ms, reader,
            args.epochs, args.memory_pass,
        )  # fmt: skip
        print(json.dumps(res))
        return 0
    root = args.root or Path(tempfile.mkdtemp(prefix="avpipe_bench_"))
    results = []
    try:
        if not (root / "manifest").exists():
            t = time.perf_counter()
            build(root, args.videos, codec=args.codec)
            print(f"built {args.videos} videos in {time.perf_counter() - t:.0f} s: {root}")
        for mode in args.modes:
            budget = args.budget_mb if mode == "streamed" else args.memory_budget_mb
            for reader in args.readers:
                for w in args.workers if mode == "streamed" else [0]:
                    cmd = [sys.executable, __file__, "--root", str(root)]
                    cmd += ["--one", str(budget), str(w), reader, "--epochs", str(args.epochs)]
                    cmd += ["--batch-size", str(args.batch_size), "--model-ms", str(args.model_ms)]
                    res = {"mode": mode}
                    for extra in ([], ["--memory-pass"]):  # timing, then memory
                        out = subprocess.run(
                            cmd + extra, check=True, capture_output=True, text=True
                        ).stdout
                        res.update(json.loads(out.strip().splitlines()[-1]))
                    print(json.dumps(res), flush=True)
                    results.append(res)
    finally:
        if args.root is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
