"""Bare-extractor measurements: throughput, bf16-vs-fp32 agreement, FLOPs per segment.

Used by ``scripts/benchmark_models.py`` (and the pipeline's own throughput check):
the "bare" number is the extractor's ``__call__`` on batches that already sit in
memory (uint8 frames at the recipe's input size, as the pipeline feeds them, or 16 kHz
audio), so it includes the on-device normalisation but no decoding, resizing, batching
across videos or writing.
Items are frames for the 2D networks, clips for R(2+1)D and patches for VGGish.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from avpipe.features import registry
from avpipe.features.base import Extractor, ExtractorSpec


@dataclass(frozen=True)
class Throughput:
    recipe: str
    config: str  # e.g. "bf16-autocast cl"
    segments: int  # per batch
    seconds: list[float]  # per timed batch
    items_per_segment: int

    @property
    def segments_per_s(self) -> float:
        return self.segments * len(self.seconds) / sum(self.seconds)

    @property
    def items_per_s(self) -> float:
        return self.segments_per_s * self.items_per_segment

    def row(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "segments_per_s": self.segments_per_s,
            "items_per_s": self.items_per_s,
        }


def items_per_segment(spec: ExtractorSpec) -> int:
    """Network items one segment costs: frames (2D), one clip (R(2+1)D), one patch (audio)."""
    if spec.modality == "audio" or spec.name == "r2plus1d18":
        return 1
    return spec.frames_per_segment


def synthetic_batch(
    spec: ExtractorSpec, segments: int, frame_hw: tuple[int, int] | None = None, seed: int = 0
) -> torch.Tensor:
    """Random uint8 frames (S, F, H, W, 3), or audio (S, n).

    ``frame_hw`` defaults to the recipe's input size (what the pipeline feeds); another
    size adds the extractor's own resize to the measurement.
    """
    g = torch.Generator().manual_seed(seed)
    if spec.modality == "audio":
        n = round(spec.window_s * spec.sample_rate)
        return 0.1 * torch.randn(segments, n, generator=g)
    shape = (segments, spec.frames_per_segment, *(frame_hw or spec.input_size), 3)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def time_extractor(ext: Extractor, batch: torch.Tensor, iters: int, warmup: int) -> list[float]:
    """Seconds per call after ``warmup`` untimed calls (device synchronised)."""
    device = ext.device if hasattr(ext, "device") else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batch = batch.to(device)
    for _ in range(warmup):
        ext(batch)
    sync()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        ext(batch)
        sync()
        out.append(time.perf_counter() - t0)
    return out


def flops_per_segment(ext: Extractor, batch: torch.Tensor) -> float:
    """FLOPs (2 per multiply-add; conv and matmul) of one call, divided by the segments."""
    with FlopCounterMode(display=False) as counter:
        ext(batch.to(getattr(ext, "device", torch.device("cpu"))))
    return counter.get_total_flops() / batch.shape[0]


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-segment cosine similarity of two (S, ...) outputs, in float64."""
    return torch.nn.functional.cosine_similarity(
        a.flatten(1).double(), b.flatten(1).double(), dim=1
    )


def bf16_agreement(
    recipe: str, options: dict[str, Any], batch: torch.Tensor, device: torch.device
) -> dict[str, Any]:
    """Cosine and relative L2 of bf16-autocast vs fp32 features on the same input."""
    opts = {**options, "dtype": "float32"}
    fp32 = registry.build(recipe, {**opts, "autocast": False}).to(device)
    bf16 = registry.build(recipe, {**opts, "autocast": True}).to(device)
    a = fp32(batch.to(device))["features"].cpu()
    b = bf16(batch.to(device))["features"].cpu()
    c = cosine(a, b)
    rel = ((a - b).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1).clamp_min(1e-12)).max()
    return {
        "precision": bf16.precision,
        "cos_min": float(c.min()),
        "cos_mean": float(c.mean()),
        "rel_l2_max": float(rel),
    }
