#!/usr/bin/env python3
"""Bare-model throughput of each extractor recipe (random weights; compute is identical).

For every recipe and configuration (fp32 / bf16 autocast x NCHW / channels_last) it
times the extractor call on in-memory batches, then reports the cosine of bf16 vs
fp32 features on the same input and the FLOPs per segment (FlopCounterMode, 2 per
multiply-add).  bf16 falls back to fp32 where the device lacks it (the config then
says ``fp32``).  Results go to stdout as a Markdown table and to ``--out`` as JSON.

    python scripts/benchmark_models.py --threads 2 --segments 1 --iters 2 \\
        --out results/benchmarks/models.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from avpipe.features import bench, registry
from avpipe.features.torchbase import bf16_supported

CONFIGS = {
    "fp32": {"autocast": False, "channels_last": False},
    "fp32 cl": {"autocast": False, "channels_last": True},
    "bf16": {"autocast": True, "channels_last": False},
    "bf16 cl": {"autocast": True, "channels_last": True},
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=registry.list_recipes())
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--segments", type=int, default=1, help="segments per batch")
    p.add_argument("--vggish-segments", type=int, default=32, help="segments per VGGish batch")
    p.add_argument("--iters", type=int, default=2, help="timed batches per configuration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--frame-hw",
        type=int,
        nargs=2,
        default=None,
        help="frame H W fed to the model (default: the recipe's input size, as the pipeline "
        "feeds it; a larger size adds the on-device resize)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="RECIPE.KEY=JSON",
        help="override a recipe option, e.g. vgg19_pool5.frames_per_segment=1",
    )
    p.add_argument("--out", type=Path, help="JSON file for the results")
    return p.parse_args()


def overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, value = item.split("=", 1)
        recipe, name = key.split(".", 1)
        out.setdefault(recipe, {})[name] = json.loads(value)
    return out


def bench_recipe(recipe: str, opts: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    spec = registry.spec_for(recipe, opts)
    segments = args.vggish_segments if spec.modality == "audio" else args.segments
    batch = bench.synthetic_batch(spec, segments, tuple(args.frame_hw) if args.frame_hw else None)
    rows = []
    for name in args.configs:
        ext = registry.build(recipe, {**opts, **CONFIGS[name]}).to(device)
        secs = bench.time_extractor(ext, batch, args.iters, args.warmup)
        label = (
            name if ext.precision != "fp32" or "bf16" not in name else name + " (fell back to fp32)"
        )
        tp = bench.Throughput(recipe, label, segments, secs, bench.items_per_segment(spec))
        rows.append(tp.row())
        print(
            f"  {recipe:15s} {label:28s} {tp.items_per_s:9.2f} items/s "
            f"{tp.segments_per_s:8.3f} seg/s",
            file=sys.stderr,
            flush=True,
        )
    ext = registry.build(recipe, {**opts, "autocast": False}).to(device)
    flops = bench.flops_per_segment(ext, batch[:1])
    agree = bench.bf16_agreement(recipe, opts, batch, device)
    return {
        "recipe": recipe,
        "options": opts,
        "spec_output_shape": spec.output_shape,
        "flops_per_segment": flops,
        "bf16_vs_fp32": agree,
        "throughput": rows,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | config | items/s | segments/s | GFLOP/seg | achieved GFLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        g = r["flops_per_segment"] / 1e9
        for t in r["throughput"]:
            lines.append(
                f"| {r['recipe']} | {t['config']} | {t['items_per_s']:.2f} | "
                f"{t['segments_per_s']:.3f} | {g:.1f} | {g * t['segments_per_s']:.0f} |"
            )
    lines += [
        "",
        "| recipe | bf16 precision used | cos min | cos mean | rel L2 max |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        a = r["bf16_vs_fp32"]
        lines.append(
            f"| {r['recipe']} | {a['precision']} | {a['cos_min']:.6f} | "
            f"{a['cos_mean']:.6f} | {a['rel_l2_max']:.2e} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = {
        "torch": torch.__version__,
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "bf16_supported": bf16_supported(device),
        "loadavg_start": os.getloadavg(),
        "argv": sys.argv,
    }
    print(f"# {env}", file=sys.stderr)
    opts = overrides(args.option)
    t0 = time.time()
    results = [
        bench_recipe(r, {"weights": "random", **opts.get(r, {})}, args) for r in args.recipes
    ]
    env["loadavg_end"] = os.getloadavg()
    env["wall_s"] = time.time() - t0
    print(markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"env": env, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
