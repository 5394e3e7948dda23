"""Extraction throughput: the pipeline against the bare model, in the same run.

For each recipe this script measures, back to back on the same machine:

* **bare**: the extractor called on one ready-made batch of decoded segments, repeated
  (no reading, batching or writing): items/s the model alone sustains;
* **pipeline**: ``extract_shard`` over a decoded shard (reader thread, model, writer
  thread, Zarr store), wall clock from first read to the store renamed into place;

and reports pipeline / bare.  It also times decoding (``decode_shard``, processes x 1
thread).  Clips are synthetic 10-s videos made with PyAV (or ``--videos DIR``).
The box may be shared and noisy: read the ratio, which is robust to that, more than
the absolute numbers.  Results go to stdout as a Markdown table and to ``--json``.

    python scripts/benchmark_extract.py --recipes vggish vgg19_pool5 resnet152_llp r2plus1d18 \
        --videos-n 8 --options '{"weights": "random"}' --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avpipe.features import registry
from avpipe.features.pipeline import _segments, extract_shard
from avpipe.io.decode import DecodedShard, DecodePlan, decode_shard


def make_clip(path: Path, seconds: int, size: tuple[int, int], fps: int, seed: int) -> Path:
    """A textured moving clip with a stereo 44.1-kHz AAC tone (like the synthetic default)."""
    import av

    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, (h + 64, w + 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=44100, layout="stereo")
        for k in range(seconds * fps):
            dx, dy = (2 * k) % 64, k % 64
            img = base[dy : dy + h, dx : dx + w]
            for pkt in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        n = seconds * 44100
        sig = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100) + 0.05 * rng.normal(size=n)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = np.repeat(sig[None, start : start + 1024], 2, axis=0)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return path


def items_per_segment(spec: Any) -> int:
    """Frames (2D nets), clips (R(2+1)D) or patches (VGGish) per segment."""
    if spec.modality == "audio" or spec.details.get("aggregation") == "clip":
        return 1
    return spec.frames_per_segment


def bare_throughput(extractor: Any, batch: torch.Tensor, seconds: float) -> float:
    """Items/s of the extractor alone on one batch (after two warm-up calls)."""
    for _ in range(2):
        extractor(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        extractor(batch)
        n += 1
    return n * len(batch) * items_per_segment(extractor.spec) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=registry.list_recipes())
    p.add_argument("--options", default='{"weights": "random"}', help="JSON options for every recipe")
    p.add_argument("--recipe-options", default="{}", help='JSON {recipe: {options}} on top of --options')
    p.add_argument("--videos", type=Path, help="folder of videos (default: make synthetic clips)")
    p.add_argument("--videos-n", type=int, default=8, help="synthetic clips to make")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--size", default="320x240", help="synthetic clip size WxH")
    p.add_argument("--frame-size", default="240x320", help="decoded frame size HxW")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="torch threads and decode workers")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bare-seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3, help="paired bare/pipeline runs per recipe (medians reported)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base_opts = json.loads(args.options)
    per_recipe = json.loads(args.recipe_options)
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="avpipe-bench-"))
    if args.videos:
        paths = sorted(q for q in args.videos.iterdir() if q.suffix in (".mp4", ".mkv", ".webm", ".avi", ".mov"))
    else:
        w, h = map(int, args.size.split("x"))
        paths = [make_clip(work / f"clip{i:03d}.mp4", args.seconds, (w, h), 25, i) for i in range(args.videos_n)]
    specs = {r: registry.spec_for(r, {**base_opts, **per_recipe.get(r, {})}) for r in args.recipes}
    fps = max((s.frames_per_segment for s in specs.values()), default=1) or 1
    fh, fw = map(int, args.frame_size.split("x"))
    plan = DecodePlan(frames_per_segment=fps, frame_size=(fh, fw))
    videos = [(q.stem, str(q), args.seconds) for q in paths]
    t0 = time.perf_counter()
    decode_shard(videos, work / "shard0.zarr", work / "shard0.tsv", plan, workers=args.threads)
    decode_s = time.perf_counter() - t0
    shard = DecodedShard(work / "shard0.zarr")
    results: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "device": str(device), "threads": args.threads},
        "videos": len(shard), "segments": int(shard.n_segments.sum()), "decode_s": decode_s,
        "decode_videos_per_s": len(shard) / decode_s, "decode_plan": {"frames_per_segment": fps, "frame_size": [fh, fw]},
        "recipes": {},
    }
    print(f"decode: {len(shard)} videos in {decode_s:.2f} s ({len(shard) / decode_s:.2f} videos/s, {args.threads} workers)")
    for recipe in args.recipes:
        options = {**base_opts, **per_recipe.get(recipe, {})}
        ex = registry.build(recipe, options).to(device)
        spec = ex.spec
        segs = np.concatenate([_segments(shard, spec, r) for r in range(min(len(shard), 4))])
        batch = torch.from_numpy(segs[: args.batch_size])
        bares, pipes = [], []
        for rep in range(args.repeats):  # paired, alternating: drift on a shared box hits both
            bares.append(bare_throughput(ex, batch, args.bare_seconds))
            stats = extract_shard(shard, ex, work / f"{recipe}{rep}.zarr", batch_size=args.batch_size)
            pipes.append(stats.segments * items_per_segment(spec) / stats.wall_s)
        ratios = [q / b for q, b in zip(pipes, bares, strict=True)]
        bare, best = float(np.median(bares)), float(np.median(pipes))
        row = {
            "options": options, "precision": getattr(ex, "precision", ""),
            "items": "frames" if items_per_segment(spec) > 1 else "segments",
            "bare_items_per_s": bare, "pipeline_items_per_s": best, "ratio": float(np.median(ratios)),
            "ratios": ratios, "bare_runs": bares, "pipeline_runs": pipes,
            "pipeline_videos_per_s": best / (items_per_segment(spec) * results["segments"] / len(shard)),
        }
        results["recipes"][recipe] = row
        print(f"{recipe}: bare {bare:.1f}/s, pipeline {best:.1f}/s, ratio {row['ratio']:.2f} {[round(r, 2) for r in ratios]} ({row['precision']})", flush=True)
    print("\n| recipe | precision | bare items/s | pipeline items/s | ratio | videos/s |\n|---|---|---|---|---|---|")
    for recipe, r in results["recipes"].items():
        print(f"| {recipe} | {r['precision']} | {r['bare_items_per_s']:.1f} | {r['pipeline_items_per_s']:.1f} | {r['ratio']:.2f} | {r['pipeline_videos_per_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
