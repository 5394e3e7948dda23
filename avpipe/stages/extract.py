"""``avpipe extract``: feature extraction into Zarr stores, in four sub-commands.

``shard``     every recipe of a dataset over one shard of its videos, one decode per
              video (``avpipe/features/pipeline.py``) -> ``results/extract/<ds>/shards/
              shard<k>/{<recipe>.zarr,status.tsv}``
``gather``    the shard stores of a recipe -> ``results/extract/<ds>/<recipe>.zarr``
``failures``  the shards' status tables -> ``results/extract/<ds>/failures.tsv``
``import``    released features (AVE ``*_feature.h5``, LLP per-video ``.npy`` folders,
              CPSP's VGGSound-AVEL100k ``.zip`` folders) -> a store in the same format
              (``avpipe/io/released.py``)
``recompress`` a store -> the same store with another codec (``avpipe/io/store_codec.py``)

Every output is complete or absent.  The extractor comes from the registry
(``avpipe/features/registry.py``); its spec, the weights, the options and the
package versions go into the store attributes.
"""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from avpipe import config as configs
from avpipe.config import ConfigError, from_dict
from avpipe.io.store_codec import CODECS, DEFAULT_CODEC
from avpipe.stages import add_config_arguments, fill_paths, require
from avpipe.utils.atomic import write_tsv
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["video_id", "path", "status", "reason", "shard"]
SECTION = None  # --config-json is an ExtractConfig (built by resolve("extract", ...))
CONFIG_COMMANDS = ("shard",)  # sub-commands that take a config


@dataclass(frozen=True)
class ExtractConfig:
    """What one (dataset, shard) extraction job needs; built by workflow/rules/extract.smk."""

    recipes: dict[str, dict[str, Any]]  # recipe -> options (registry.py)
    shards: int = 2
    batch_size: int = 16
    device: str = "auto"
    num_threads: int = 2
    prefetch: int = 2
    prepare: Literal["auto", "workers", "device"] = "auto"
    keep_decoded: bool = False
    store_codec: Literal["zstd", "lz4", "none"] = "zstd"
    on_error: Literal["raise", "skip"] = "skip"
    truncation_tolerance_s: float = 1.0


def shard_videos(manifest: Any, shard: int, n_shards: int) -> list[tuple[str, str]]:
    """(video_id, path) of the manifest's videos in ``shard`` (crc32(id) % shards), sorted."""
    from avpipe.io.decode import shard_of

    if not 0 <= shard < n_shards:
        raise ConfigError(f"shard {shard} is outside 0..{n_shards - 1}")
    seen: dict[str, str] = {}
    for s in manifest.samples:
        if s.video_id not in seen and shard_of(s.video_id, n_shards) == shard:
            seen[s.video_id] = s.path
    return [(v, seen[v]) for v in sorted(seen)]


def fixed_segments(manifest: Any) -> dict[str, int]:
    """video_id -> n_segments where the dataset's labels fix T (manifest meta
    ``segments_from_labels``: VGGSound-AVEL100k's 10-element vectors), else {} (T from
    the decoded duration)."""
    if not manifest.meta.get("segments_from_labels"):
        return {}
    return {s.video_id: s.n_segments for s in manifest.samples}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("shard", help="every recipe of a dataset over one shard of its videos")
    s.add_argument("--manifest", type=Path, help="results/manifest/<dataset>")
    s.add_argument("--shard", type=int, default=0, help="shard index k (0-based)")
    add_config_arguments(s)
    s.add_argument("--out", type=Path, help="results/extract/<dataset>/shards/shard<k>")
    s.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="per-video feature cache (avpipe/io/cache.py), e.g. results/cache/extract/<ds>; "
        "videos with valid entries are not decoded or computed again",
    )
    s.add_argument("--workers", type=int, default=1, help="decoding processes")
    g = sub.add_parser("gather", help="shard stores of one recipe -> one store")
    g.add_argument("shards", nargs="+", type=Path)
    g.add_argument("--out", required=True, type=Path)
    f = sub.add_parser("failures", help="the shards' status tables -> failures.tsv")
    f.add_argument(
        "status", nargs="+", type=Path, help="results/extract/<dataset>/shards/shard<k>/status.tsv"
    )
    f.add_argument("--out", required=True, type=Path)
    i = sub.add_parser("import", help="released features -> a feature store")
    i.add_argument(
        "--format",
        required=True,
        choices=["ave_h5", "llp_npy", "vggsound_avel_zip"],
        help="ave_h5: AVE *_feature.h5; llp_npy: LLP <id>.npy folder; "
        "vggsound_avel_zip: CPSP's VGGSound-AVEL100k <id>.zip folder",
    )
    i.add_argument(
        "--source", required=True, type=Path, help="the .h5 file or the per-video folder"
    )
    i.add_argument(
        "--recipe", required=True, help="recipe name the features correspond to (e.g. vggish)"
    )
    i.add_argument(
        "--manifest",
        type=Path,
        help="results/manifest/<dataset>: maps AVE h5 rows to video ids; every video it "
        "lists must be in the release",
    )
    i.add_argument("--key", default="avadataset", help="HDF5 dataset name (AVE: avadataset)")
    i.add_argument("--dtype", default="float32", help="store dtype (released files are float64)")
    i.add_argument(
        "--any-shape",
        action="store_true",
        help="accept rows of any trailing shape (default: the release's, e.g. 7x7x512)",
    )
    i.add_argument(
        "--codec",
        choices=CODECS,
        default=DEFAULT_CODEC,
        help="how the store's chunks are compressed (docs/benchmarks.md, 'Store codecs'): "
        "zstd is the smallest, lz4 and none decode faster when training streams the store",
    )
    i.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("recompress", help="a store -> a copy whose features use another codec")
    r.add_argument("store", type=Path, help="a feature store (<recipe>.zarr)")
    r.add_argument("--codec", required=True, choices=CODECS, help="the copy's codec")
    r.add_argument("--out", required=True, type=Path)


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("extract", args.dataset, config=config)


def full_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    return configs.to_dict(from_dict(ExtractConfig, cfg, where="extract"))


def run(args: argparse.Namespace) -> int:
    return {
        "shard": _run_shard,
        "gather": _run_gather,
        "failures": _run_failures,
        "import": _run_import,
        "recompress": _run_recompress,
    }[args.command](args)


def build_extractor(recipe: str, options: dict[str, Any], grid: Any = None) -> Any:
    """The registry's extractor on the dataset's grid (a seam for tests, which pass fakes)."""
    from avpipe.features import registry

    return registry.build(recipe, options, grid)


def store_attrs(
    spec: Any, recipe: str, options: dict[str, Any], grid: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    """Provenance of a feature store: the extractor spec, the grid, versions, config hash."""
    from dataclasses import asdict

    return {
        "extractor": spec.name,
        "recipe": recipe,
        "modality": spec.modality,
        "weights": spec.weights,
        "spec": asdict(spec),
        "fps": spec.fps,
        "sample_rate": spec.sample_rate,
        "window_s": spec.window_s,
        "hop_s": spec.hop_s,
        "grid": spec.details["grid"],
        **provenance({"recipe": recipe, "options": options, "grid": asdict(grid)}),
        **extra,
    }


def cache_material(spec: Any, recipe: str, cfg: ExtractConfig, extra: dict[str, Any]) -> dict:
    """What a cached video's features depend on besides the file's content (avpipe/io/cache.py)."""
    from dataclasses import asdict

    from avpipe.utils.provenance import source_hash

    return {
        "recipe": recipe,
        "options": cfg.recipes[recipe],
        "spec": asdict(spec),
        "weights": spec.weights,
        "decode": decode_material(spec.details["grid"], cfg),
        "code": source_hash("features", "io/decode", "io/grid"),
        **extra,
    }


def decode_material(grid: Any, cfg: ExtractConfig) -> dict:
    """What decoding a video depends on besides the file (its cached segments and status)."""
    from avpipe.utils.provenance import source_hash

    return {
        "grid": {k: grid[k] for k in ("hop_s", "window_s")},
        "truncation_tolerance_s": cfg.truncation_tolerance_s,
        "sample_rate": 16000,
        "code": source_hash("io/decode", "io/grid", "datasets/manifest"),
    }


def _run_shard(args: argparse.Namespace) -> int:
    import torch

    from avpipe.datasets.manifest import Manifest
    from avpipe.features.pipeline import RecipeRun, Settings, extract_shard
    from avpipe.io.cache import DecodeCache, FeatureCache
    from avpipe.io.decode import DecodeError
    from avpipe.io.grid import Grid

    fill_paths(
        args,
        manifest=f"results/manifest/{args.dataset}",
        out=f"results/extract/{args.dataset}/shards/shard{args.shard}",
    )
    require(args, "manifest", "out")
    cfg = from_dict(ExtractConfig, args.cfg, where="extract")
    if not cfg.recipes:
        raise ConfigError("extract: no recipes to compute (extract.stores.<dataset> is empty)")
    torch.set_num_threads(cfg.num_threads)
    from avpipe.training.device import resolve_device

    device = resolve_device(cfg.device, "run.device")
    prepare = (
        cfg.prepare if cfg.prepare != "auto" else ("device" if device.type == "cuda" else "workers")
    )
    manifest = Manifest.read(args.manifest)
    grid = Grid(manifest.segment_hop, manifest.segment_win)
    videos = shard_videos(manifest, args.shard, cfg.shards)
    runs = []
    for recipe, options in cfg.recipes.items():
        extractor = build_extractor(recipe, options, grid).to(device)
        spec = extractor.spec
        precision = str(getattr(extractor, "precision", ""))
        where = {"device": str(device), "precision": precision, "frames_resized_in": prepare}
        cache = None
        if args.cache_dir is not None:
            material = cache_material(spec, recipe, cfg, {**where, "device": device.type})
            cache = FeatureCache(args.cache_dir / recipe, material)
        attrs = store_attrs(spec, recipe, options, grid, {"dataset": manifest.dataset, **where})
        runs.append(RecipeRun(recipe, extractor, cache, attrs))
        log.info("%s on %s (%s), weights %s", recipe, device, precision, spec.weights)
    decode_cache = None
    if args.cache_dir is not None:
        decode_cache = DecodeCache(
            args.cache_dir / "_decode", decode_material(grid.as_attrs(), cfg)
        )
    settings = Settings(
        grid=grid,
        batch_size=cfg.batch_size,
        workers=max(args.workers, 0),
        prefetch=cfg.prefetch,
        prepare=prepare,
        on_error=cfg.on_error,
        truncation_tolerance_s=cfg.truncation_tolerance_s,
        keep_decoded=cfg.keep_decoded,
        store_codec=cfg.store_codec,
        segments=fixed_segments(manifest),
    )
    log.info(
        "%s shard %d/%d: %d videos, grid hop %.3g s window %.3g s, recipes %s, "
        "%d decoding workers, frames resized in %s",
        manifest.dataset,
        args.shard,
        cfg.shards,
        len(videos),
        grid.hop_s,
        grid.window_s,
        ", ".join(cfg.recipes),
        settings.workers,
        prepare,
    )
    try:
        res = extract_shard(videos, runs, args.out, settings, decode_cache)
    except DecodeError as e:
        log.error("%s (decode.on_error is raise; set it to skip to record bad videos and go on)", e)
        return 1
    counts: dict[str, int] = {}
    for v in res.videos:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    log.info(
        "%s: %d videos (%s), %d decoded, %.1f s",
        args.out,
        len(res.videos),
        ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none",
        res.decoded,
        res.wall_s,
    )
    for name, st in res.stats.items():
        log.info(
            "%s: %d videos computed, %d from cache%s; %d segments, model %.1f s (%.1f items/s)",
            name,
            st.computed,
            st.cached,
            f" ({args.cache_dir / name})" if args.cache_dir else "",
            st.segments,
            st.model_s,
            st.items / max(st.model_s, 1e-9),
        )
    return 0


def _run_gather(args: argparse.Namespace) -> int:
    from avpipe.io.store import gather_stores

    gather_stores(args.shards, args.out, {"shard_stores": [str(p) for p in args.shards]})
    return 0


def read_failures(status_tables: list[Path]) -> list[list[Any]]:
    """Rows of the shards' status tables whose status is not ``ok``: failed (not in the
    stores), partial (the decoded prefix is), no_audio and no_video (zeros, flagged)."""
    rows = []
    for path in status_tables:
        shard = path.parent.name.removeprefix("shard")
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                if r["status"] != "ok":
                    rows.append([r["video_id"], r["path"], r["status"], r["reason"], shard])
    return sorted(rows)


def _run_failures(args: argparse.Namespace) -> int:
    rows = read_failures(args.status)
    write_tsv(args.out, FAILURE_COLUMNS, rows)
    log.info("%s: %d videos failed, were cut short or lack a stream", args.out, len(rows))
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from avpipe.io import released

    released.import_released(
        args.format,
        args.source,
        args.out,
        args.recipe,
        manifest=args.manifest,
        key=args.key,
        dtype=args.dtype,
        check_shape=not args.any_shape,
        codec=args.codec,
    )
    return 0


def _run_recompress(args: argparse.Namespace) -> int:
    from avpipe.io.store_codec import recompress

    recompress(args.store, args.out, args.codec)
    log.info("%s -> %s (%s)", args.store, args.out, args.codec)
    return 0
