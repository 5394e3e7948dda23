"""``avpipe decode``: decode one shard of a dataset's videos once, for every recipe.

Reads the manifest (``results/manifest/<dataset>/samples.tsv``), takes the videos
whose stable shard (``crc32(video_id) % shards``) is ``--shard`` and writes

    results/decode/<dataset>/shard<k>.zarr   frames on the segment grid + 16 kHz mono audio
    results/decode/<dataset>/shard<k>.tsv    per-video status: ok / no_audio / no_video / failed + reason

(``avpipe/io/decode.py``).  ``on_error: raise`` stops at the first bad video;
``skip`` records it and goes on.  Both outputs are complete or absent.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from avpipe.config import from_dict, load_json_arg, to_dict
from avpipe.datasets.manifest import Manifest
from avpipe.io.decode import DecodeError, DecodePlan, decode_shard, shard_of
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeConfig:
    """``decode:`` of config.yaml, merged with ``decode.overrides.<dataset>`` by the workflow."""

    shards: int = 2
    frames_per_segment: int = 16  # the workflow resolves "auto" from the dataset's recipes
    frame_size: tuple[int, int] = (240, 320)
    resize: Literal["stretch", "crop"] = "stretch"
    sample_rate: int = 16000
    on_error: Literal["raise", "skip"] = "skip"
    truncation_tolerance_s: float = 1.0
    temp: bool = False

    def plan(self, hop_s: float) -> DecodePlan:
        return DecodePlan(self.frames_per_segment, self.frame_size, self.resize, self.sample_rate, hop_s, self.truncation_tolerance_s)


def shard_videos(manifest: Manifest, shard: int, n_shards: int) -> list[tuple[str, str, int]]:
    """(video_id, path, n_segments) of the manifest's videos in ``shard``, sorted by id."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    seen: dict[str, tuple[str, str, int]] = {}
    for s in manifest.samples:
        if s.video_id not in seen and shard_of(s.video_id, n_shards) == shard:
            seen[s.video_id] = (s.video_id, s.path, s.n_segments)
    return [seen[v] for v in sorted(seen)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path, help="results/manifest/<dataset>")
    p.add_argument("--shard", required=True, type=int, help="shard index k (0-based)")
    p.add_argument("--config-json", required=True, help="the decode config slice as JSON (or @file.json)")
    p.add_argument("--out", required=True, type=Path, help="results/decode/<dataset>/shard<k>.zarr")
    p.add_argument("--status", required=True, type=Path, help="results/decode/<dataset>/shard<k>.tsv")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")


def run(args: argparse.Namespace) -> int:
    raw = load_json_arg(args.config_json)
    cfg = from_dict(DecodeConfig, raw, where="decode")
    manifest = Manifest.read(args.manifest)
    hop = manifest.segment_hop
    videos = shard_videos(manifest, args.shard, cfg.shards)
    log.info("%s shard %d/%d: %d videos, %d frames per segment at %s", manifest.dataset, args.shard, cfg.shards, len(videos), cfg.frames_per_segment, cfg.frame_size)
    attrs = {"dataset": manifest.dataset, "shard": args.shard, "shards": cfg.shards, **provenance(to_dict(cfg))}
    try:
        rows = decode_shard(videos, args.out, args.status, cfg.plan(hop), workers=args.workers, on_error=cfg.on_error, attrs=attrs)
    except DecodeError as e:
        log.error("%s (decode.on_error is raise; set it to skip to record bad videos and go on)", e)
        return 1
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    log.info("decoded %s: %s", args.out, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no videos")
    return 0
