#!/usr/bin/env python3
"""Extraction benchmark: the feed side on a CPU box, the models on a GPU host.

Each measurement is one CLI job in a fresh subprocess: its CPU time is ``getrusage`` of
self + children (the decoding workers) from just before the job, i.e. without the Python
and torch imports.  Two recipe sets, each in one pass at the papers' default options:
``ave`` = vggish + vgg19_pool5 (16 frames per segment, 224 direct); ``llp`` = vggish +
resnet152_llp (8 fps, 224 shorter_crop) + r2plus1d18 (8 x 112 x 112).

``--models stub`` (default on the CPU): each model is replaced by ``ZeroExtractor``
(zeros of the real spec's output shapes), so what is measured is the feed side: decode,
frame sampling, resize, batching, cache entries and stores.  Per set it runs the current
pipeline at each ``--workers`` and ``--prepare``; with ``--old-tree`` also the two-stage
path of commit 52029c6 (``avpipe decode`` to a decoded store, then one ``avpipe extract
shard --decoded`` job per recipe), same clips; bytes written per video; and with
``--rss-videos`` the peak RSS of a job over that many short clips.

``--models real`` (default with ``--device cuda``): the real networks (random weights
unless ``--options`` says otherwise), videos/s of the job, the GPU busy fraction
(NVML, sampled at 10 Hz when ``nvidia-ml-py`` is installed), peak GPU memory, and the
bare-model ceiling in the same process (each extractor on one ready batch, repeated).

    PYTHONPATH=$PWD python3 scripts/benchmark_extract.py --old-tree /tmp/avpipe-old \\
        --json bench.json
    PYTHONPATH=$PWD python3 scripts/benchmark_extract.py --device cuda --clips 256 --workers 14
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avpipe.features.base import Extractor  # the same contract in the old tree

SETS = {"ave": ["vggish", "vgg19_pool5"], "llp": ["vggish", "resnet152_llp", "r2plus1d18"]}
# The old workflow decoded every dataset at the max frames per segment of its recipes
# (decode.frames_per_segment: auto) into 240x320 frames (decode.frame_size).
OLD_DECODE = {"ave": 16, "llp": 8}
OLD_FRAME_SIZE = [240, 320]
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


class ZeroExtractor(Extractor):
    """A model replaced by zeros of its spec's output shapes (``features`` + extra outputs)."""

    def __init__(self, spec: Any):
        self.spec, self.device = spec, torch.device("cpu")

    def to(self, device: torch.device | str) -> ZeroExtractor:
        self.device = torch.device(device)
        return self

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        dtype = getattr(torch, self.spec.store_dtype)
        shapes = {"features": self.spec.output_shape, **self.spec.extra_outputs}
        zeros = {k: torch.zeros(len(batch), *s, dtype=dtype) for k, s in shapes.items()}
        return {k: v.to(self.device) for k, v in zeros.items()}


def make_clip(path: Path, seconds: float, size: tuple[int, int], fps: int, seed: int) -> Path:
    """A panned multi-scale texture, a moving block and grain; a stereo 44.1-kHz AAC tone."""
    import av

    rng = np.random.default_rng(seed)
    w, h = size
    tex = np.zeros((h + 64, w + 64, 3), np.float32)
    for cell in (32, 8, 2):  # coarse blobs to fine detail: a realistic bitrate, not pure noise
        coarse = rng.normal(size=((h + 64) // cell + 1, (w + 64) // cell + 1, 3))
        tex += 30 * np.kron(coarse, np.ones((cell, cell, 1)))[: h + 64, : w + 64]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=44100, layout="stereo")
        for k in range(round(seconds * fps)):
            dx, dy = (2 * k) % 64, k % 64
            img = tex[dy : dy + h, dx : dx + w] + 128 + rng.normal(0, 3, (h, w, 3))
            bx, by = (5 * k) % max(w - h // 4, 1), h // 3
            img[by : by + h // 4, bx : bx + h // 4] = (255, 40, 40)
            frame = av.VideoFrame.from_ndarray(img.clip(0, 255).astype(np.uint8), format="rgb24")
            for pkt in v.encode(frame):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        n = round(seconds * 44100)
        sig = 0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100) + 0.05 * rng.normal(size=n)
        for start in range(0, n, 1024):
            chunk = np.repeat(sig[None, start : start + 1024].astype(np.float32), 2, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return path


def write_manifest(folder: Path, dataset: str, paths: list[Path]) -> Path:
    """A one-split manifest of ``paths`` on the 1-s grid (what both trees' jobs read)."""
    import av

    from avpipe.datasets.manifest import Manifest, Sample, segment_count

    samples = []
    for p in paths:
        with av.open(str(p)) as c:
            duration = c.duration / av.time_base
        samples.append(
            Sample(p.stem, p.stem, "unlabeled", str(p), duration, segment_count(duration))
        )
    Manifest(dataset, "folder", [], samples, []).write(folder)
    return folder


def cpu_now() -> dict[str, float]:
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {
        "self_s": me.ru_utime + me.ru_stime,
        "children_s": kids.ru_utime + kids.ru_stime,
        "maxrss_self_mb": me.ru_maxrss / 1024,
        "maxrss_children_mb": kids.ru_maxrss / 1024,
    }


# -- inside a measured subprocess ---------------------------------------------------------


def _build_stub(recipe: str, options: dict[str, Any], grid: Any = None) -> ZeroExtractor:
    from avpipe.features import registry

    return ZeroExtractor(registry.spec_for(recipe, options, *([grid] if grid else [])))


class GpuSampler(threading.Thread):
    """NVML ``utilization.gpu`` every 0.1 s until ``done`` is set (no samples without NVML)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []  # (perf_counter, percent busy)
        self.done = threading.Event()

    def run(self) -> None:
        try:
            import pynvml
        except ImportError:
            return print("no GPU busy fraction: nvidia-ml-py is not installed", file=sys.stderr)
        pynvml.nvmlInit()
        gpu = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        while not self.done.wait(0.1):
            busy = pynvml.nvmlDeviceGetUtilizationRates(gpu).gpu
            self.samples.append((time.perf_counter(), busy))

    def busy(self, t0: float, t1: float) -> float | None:
        """Mean busy fraction over the samples taken between ``t0`` and ``t1``."""
        inside = [u for t, u in self.samples if t0 <= t <= t1]
        return float(np.mean(inside)) / 100 if inside else None


def bare_ceiling(extractors: list[Any], batch_size: int, seconds: float) -> dict[str, float]:
    """Segments/s of each extractor alone on one ready batch at its input size."""
    from avpipe.features.bench import synthetic_batch, time_extractor

    out = {}
    for ex in extractors:
        hw = tuple(ex.spec.input_size) if ex.spec.modality == "visual" else (0, 0)
        batch = synthetic_batch(ex.spec, batch_size, hw)
        once = sum(time_extractor(ex, batch, 1, 1))
        times = time_extractor(ex, batch, max(3, int(seconds / max(once, 1e-3))), 0)
        out[ex.spec.name] = batch_size * len(times) / sum(times)
    return out


def _meter(module: Any, name: str, clock: Any, spans: list[tuple[float, float]]) -> None:
    """Wrap ``module.name`` so that each call appends its (start, end) on ``clock`` to ``spans``."""
    inner = getattr(module, name)

    def metered(*a: Any, **kw: Any) -> Any:
        t = clock()
        try:
            return inner(*a, **kw)
        finally:
            spans.append((t, clock()))

    setattr(module, name, metered)


def child(job: dict[str, Any]) -> None:
    """Run one CLI job (stubbed or real models) and write what it cost to ``job['result']``."""
    import avpipe.features.pipeline as pipeline
    import avpipe.stages.extract as stage
    from avpipe.cli import main as cli

    built: list[Any] = []
    make = _build_stub if job["stub"] else stage.build_extractor
    stage.build_extractor = lambda *a: built.append(make(*a)) or built[-1]
    shard: list[tuple[float, float]] = []  # extract_shard alone: no model building, no CUDA init
    _meter(pipeline, "extract_shard", time.perf_counter, shard)
    resize: list[tuple[float, float]] = []  # prepare: device, main-process CPU of the resize
    if hasattr(pipeline, "_resize_on_device"):
        _meter(pipeline, "_resize_on_device", lambda: cpu_now()["self_s"], resize)
    sampler, cuda = GpuSampler(), job.get("device") == "cuda"
    if cuda:
        sampler.start()
    before, t0 = cpu_now(), time.perf_counter()
    if cli(job["argv"]) != 0:
        raise SystemExit(f"job failed: {job['argv']}")
    wall, after = time.perf_counter() - t0, cpu_now()
    sampler.done.set()
    res = {k: after[k] - before[k] for k in ("self_s", "children_s")}
    res.update(wall_s=wall, shard_wall_s=sum(b - a for a, b in shard))
    res.update(resize_cpu_s=sum(b - a for a, b in resize))
    res.update({k: after[k] for k in after if "rss" in k})
    if cuda:  # the job synchronised before writing its stores
        res["gpu_busy"], res["gpu_samples"] = sampler.busy(*shard[0]), len(sampler.samples)
        res["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if job.get("ceiling_s"):
        res["bare_segments_per_s"] = bare_ceiling(built, job["batch_size"], job["ceiling_s"])
    Path(job["result"]).write_text(json.dumps(res))


# -- the parent ----------------------------------------------------------------------------


def run_job(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One measured job in a fresh interpreter with ``PYTHONPATH=tree``."""
    result = Path(tempfile.mkdtemp(prefix="job-", dir=tempfile.gettempdir())) / "result.json"
    log = result.with_suffix(".log")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--child", json.dumps({**job, "result": str(result)})]
    with log.open("w") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"measured job failed ({rc}); its log {log}:\n{log.read_text()[-3000:]}")
    return json.loads(result.read_text())


def tree_bytes(path: Path) -> int:
    """Apparent size of the files under ``path``."""
    return sum(q.stat().st_size for q in path.rglob("*") if q.is_file())


def segments(manifest: Path) -> int:
    from avpipe.datasets.manifest import Manifest

    return sum(s.n_segments for s in Manifest.read(manifest).samples)


def raw_bytes(args: argparse.Namespace, recipes: list[str], n_segments: int) -> int:
    """Uncompressed bytes of the recipes' outputs (the stubs' zeros compress; features do not)."""
    from avpipe.features import registry

    total = 0
    for r in recipes:
        spec = registry.spec_for(r, {**args.options, **args.recipe_options.get(r, {})})
        shapes = [spec.output_shape, *spec.extra_outputs.values()]
        total += sum(int(np.prod(s)) for s in shapes) * np.dtype(spec.store_dtype).itemsize
    return total * n_segments


def new_job(args: argparse.Namespace, manifest: Path, name: str, out: Path, **kw: Any) -> dict:
    """The current path: one ``avpipe extract shard`` job for every recipe of the set."""
    cfg = {
        "recipes": {r: {**args.options, **args.recipe_options.get(r, {})} for r in SETS[name]},
        "shards": 1,
        "batch_size": args.batch_size,
        "device": args.device,
        "num_threads": args.threads,
        "prepare": kw.get("prepare", "auto"),
    }
    argv = ["extract", "shard", "--manifest", str(manifest), "--shard", "0", "--out", str(out)]
    argv += ["--config-json", json.dumps(cfg), "--workers", str(kw.get("workers", 1))]
    argv += ["--cache-dir", f"{out}-cache"]  # what a job without one spills and deletes
    return {"argv": argv, "stub": args.models == "stub", "device": args.device}


def old_jobs(args: argparse.Namespace, manifest: Path, name: str, base: Path, workers: int):
    """The path of commit 52029c6: ``avpipe decode`` to a store, then one job per recipe."""
    decode = {"shards": 1, "frames_per_segment": OLD_DECODE[name], "frame_size": OLD_FRAME_SIZE}
    store = str(base / "shard0.zarr")
    yield ["decode", "--manifest", str(manifest), "--shard", "0", "--out", store,
           "--status", str(base / "shard0.tsv"), "--config-json", json.dumps(decode),
           "--workers", str(workers)]  # fmt: skip
    for recipe in SETS[name]:
        cfg = {"recipe": recipe, "options": args.options, "device": "cpu",
               "batch_size": args.batch_size, "num_threads": args.threads}  # fmt: skip
        yield ["extract", "shard", "--decoded", store, "--config-json", json.dumps(cfg),
               "--out", str(base / f"{recipe}.zarr")]  # fmt: skip


def measure(tree: Path, jobs: list[dict], name: str, n: int, out: Path, **labels: Any) -> dict:
    """CPU-s per video of ``jobs`` (one after another), and the bytes they left in ``out``."""
    parts = [run_job(tree, job) for job in jobs]
    cpu = [(r["self_s"] + r["children_s"]) / n for r in parts]
    stores = sum(tree_bytes(out / f"{x}.zarr") for x in SETS[name])
    cache = Path(f"{out}-cache")
    row = {"set": name, **labels, "cpu_per_video": sum(cpu), "jobs_cpu_per_video": cpu}
    row["resize_per_video"] = sum(r["resize_cpu_s"] for r in parts) / n
    row["wall_s"] = sum(r["wall_s"] for r in parts)
    row["features_per_video"] = stores / n
    row["other_per_video"] = (tree_bytes(out) - stores) / n
    row["cache_per_video"] = tree_bytes(cache) / n if cache.exists() else 0
    print(json.dumps(row), flush=True)
    return row


def feed_side(args: argparse.Namespace, work: Path, manifest: Path, name: str, n: int) -> list:
    rows = []
    for prepare, workers, rep in itertools.product(args.prepare, args.workers, range(args.repeats)):
        out = work / f"new-{name}-{prepare}-w{workers}-{rep}"
        job = new_job(args, manifest, name, out, prepare=prepare, workers=workers)
        rows.append(measure(args.tree, [job], name, n, out, path="new", prepare=prepare,
                            workers=workers))  # fmt: skip
    old = args.workers if args.old_tree else []
    for workers, rep in itertools.product(old, range(args.repeats)):
        out = work / f"old-{name}-w{workers}-{rep}"
        out.mkdir()
        jobs = [{"argv": a, "stub": True} for a in old_jobs(args, manifest, name, out, workers)]
        rows.append(measure(args.old_tree, jobs, name, n, out, path="old",
                            prepare="decoded store", workers=workers))  # fmt: skip
    return rows


def real_models(args: argparse.Namespace, work: Path, manifest: Path, name: str, n: int) -> dict:
    out = work / f"real-{name}"
    job = new_job(args, manifest, name, out, workers=args.workers[-1])
    r = run_job(args.tree, {**job, "ceiling_s": args.ceiling_s, "batch_size": args.batch_size})
    bare = r.pop("bare_segments_per_s")
    per_segment = sum(1 / v for v in bare.values())  # the set's models one after another
    row = {"set": name, **r, "videos_per_s": n / r["shard_wall_s"], "bare": bare}
    row["bare_videos_per_s"] = n / (per_segment * segments(manifest))
    print(json.dumps(row), flush=True)
    return row


def synthetic_clips(folder: Path, n: int, seconds: float, size: str) -> list[Path]:
    """``n`` clips of ``seconds`` at ``size`` (WxH), 30 fps; clips already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = map(int, size.split("x"))
    paths = [folder / f"clip{i:04d}.mp4" for i in range(n)]
    for i, q in enumerate(paths):
        if not q.exists():
            make_clip(q, seconds, (w, h), 30, i)
    return paths


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--device", default="cpu", help="cpu or cuda")
    add("--models", choices=["stub", "real"], help="default: stub on cpu, real on cuda")
    add("--videos", type=Path, help="folder of videos (default: make synthetic clips)")
    add("--clips", type=int, default=24, help="synthetic 30-fps clips to make")
    add("--seconds", type=float, default=10.0, help="length of the synthetic clips")
    add("--size", default="320x240", help="synthetic clip size WxH")
    add("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    add("--workers", nargs="+", type=int, default=[1, 2], help="decoding processes")
    add("--prepare", nargs="+", default=["workers", "device"], help="where frames are resized")
    add("--repeats", type=int, default=1, help="runs of each feed-side measurement")
    add("--batch-size", type=int, default=16)
    add("--threads", type=int, default=2, help="torch threads of the job")
    add("--options", type=json.loads, default={}, help="JSON options for every recipe")
    add("--recipe-options", type=json.loads, default={}, help="JSON {recipe: options}")
    add("--old-tree", type=Path, help="a checkout of commit 52029c6: also run the old path")
    add("--rss-videos", nargs="*", type=int, default=[], help="peak RSS over shards of N clips")
    add("--rss-size", default="160x120", help="size of the peak-RSS clips (WxH)")
    add("--rss-seconds", type=float, default=2.0, help="length of the peak-RSS clips")
    add("--ceiling-s", type=float, default=10.0, help="bare-model timing per recipe")
    add("--work", type=Path, help="scratch folder (default: a new temporary one)")
    add("--json", type=Path, help="write all results here")
    add("--child", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        return child(json.loads(args.child))
    args.models = args.models or ("stub" if args.device == "cpu" else "real")
    if args.models == "real":
        args.options.setdefault("weights", "random")
    args.tree = Path(__file__).resolve().parents[1]
    work = args.work or Path(tempfile.mkdtemp(prefix="avpipe-bench-"))
    if args.videos:
        paths = sorted(q for q in args.videos.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
    else:
        paths = synthetic_clips(work / "clips", args.clips, args.seconds, args.size)
    n, size = len(paths), sum(q.stat().st_size for q in paths)
    res = {"videos": n, "mb_per_video": size / n / 1e6, "models": args.models, "rows": []}
    res["load_average_start"] = os.getloadavg()
    print(f"{n} videos, {size / n / 1e6:.2f} MB each on average, work folder {work}", flush=True)
    for name in args.sets:
        manifest = write_manifest(work / f"manifest-{name}", f"bench_{name}", paths)
        if args.models == "real":
            res["rows"].append(real_models(args, work, manifest, name, n))
            continue
        res[f"raw_features_per_video_{name}"] = raw_bytes(args, SETS[name], segments(manifest)) / n
        res["rows"] += feed_side(args, work, manifest, name, n)
        for count in args.rss_videos:
            many = max(args.rss_videos)
            few = synthetic_clips(work / "rss", many, args.rss_seconds, args.rss_size)[:count]
            m = write_manifest(work / f"manifest-rss-{name}-{count}", f"rss_{name}", few)
            job = new_job(args, m, name, work / f"rss-{name}-{count}", workers=args.workers[-1])
            res["rows"].append({"set": name, "rss_videos": count, **run_job(args.tree, job)})
            print(json.dumps(res["rows"][-1]), flush=True)
    res["load_average_end"] = os.getloadavg()
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


def report(res: dict[str, Any]) -> None:
    """One line per measurement (the JSON has everything)."""
    print(f"\n{res['videos']} videos (per video: CPU-s, bytes besides the feature stores)")
    for r in res["rows"]:
        what = f"{r['set']} {r.get('path', '')} {r.get('prepare', '')} w{r.get('workers', '')}"
        if "cpu_per_video" in r:
            print(f"{what}: {r['cpu_per_video']:.3f} CPU-s (main-process resize "
                  f"{r['resize_per_video']:.3f}), {r['other_per_video']:,.0f} B + cache "
                  f"{r['cache_per_video']:,.0f} B, wall {r['wall_s']:.1f} s")  # fmt: skip
        elif "rss_videos" in r:
            top, worker = r["maxrss_self_mb"], r["maxrss_children_mb"]
            print(f"{r['set']}, {r['rss_videos']} videos: peak RSS {top:.0f} MB (main process), "
                  f"{worker:.0f} MB (largest worker)")  # fmt: skip
        else:
            gpu = f"GPU busy {r.get('gpu_busy')}, peak {r.get('gpu_peak_mb', 0):.0f} MB"
            print(
                f"{r['set']}: {r['videos_per_s']:.2f} videos/s in extract_shard, bare-model "
                f"ceiling {r['bare_videos_per_s']:.2f} ({r['bare']} segments/s); {gpu}"
            )


if __name__ == "__main__":
    main()
