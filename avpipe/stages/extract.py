"""``avpipe extract``: feature extraction into Zarr stores, in four sub-commands.

``shard``     one recipe over one decoded shard (``results/decode/<ds>/shard<k>.zarr``)
              -> ``results/extract/<ds>/<recipe>/shard<k>.zarr``
``gather``    the shard stores of a recipe -> ``results/extract/<ds>/<recipe>.zarr``
``failures``  the decode status tables of a dataset -> ``results/extract/<ds>/failures.tsv``
``import``    released features (AVE ``*_feature.h5``, LLP per-video ``.npy`` folders)
              -> a store in the same format (``avpipe/io/released.py``)

Every output is complete or absent.  The extractor comes from the registry
(``avpipe/features/registry.py``); its spec, the weights, the options and the
package versions go into the store attributes.
"""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avpipe.config import ConfigError, from_dict, load_json_arg
from avpipe.utils.atomic import write_tsv
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["video_id", "path", "status", "reason", "shard"]


@dataclass(frozen=True)
class ExtractConfig:
    """What one (dataset, recipe) extraction job needs; built by workflow/rules/extract.smk."""

    recipe: str
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    device: str = "auto"
    num_threads: int = 2
    prefetch: int = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("shard", help="one recipe over one decoded shard")
    s.add_argument(
        "--decoded", required=True, type=Path, help="results/decode/<dataset>/shard<k>.zarr"
    )
    s.add_argument("--config-json", required=True, help="ExtractConfig as JSON (or @file.json)")
    s.add_argument(
        "--out", required=True, type=Path, help="results/extract/<dataset>/<recipe>/shard<k>.zarr"
    )
    s.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="per-video feature cache (avpipe/io/cache.py), e.g. "
        "results/cache/extract/<ds>/<recipe>; videos with a valid entry are not recomputed",
    )
    g = sub.add_parser("gather", help="shard stores of one recipe -> one store")
    g.add_argument("shards", nargs="+", type=Path)
    g.add_argument("--out", required=True, type=Path)
    f = sub.add_parser("failures", help="decode status tables -> failures.tsv")
    f.add_argument("status", nargs="+", type=Path, help="results/decode/<dataset>/shard<k>.tsv")
    f.add_argument("--out", required=True, type=Path)
    i = sub.add_parser("import", help="released features -> a feature store")
    i.add_argument(
        "--format",
        required=True,
        choices=["ave_h5", "npy_dir"],
        help="ave_h5: AVE *_feature.h5; npy_dir: LLP <id>.npy folder",
    )
    i.add_argument("--source", required=True, type=Path, help="the .h5 file or the .npy folder")
    i.add_argument(
        "--recipe", required=True, help="recipe name the features correspond to (e.g. vggish)"
    )
    i.add_argument(
        "--manifest", type=Path, help="results/manifest/<dataset>: maps AVE h5 rows to video ids"
    )
    i.add_argument("--key", default="avadataset", help="HDF5 dataset name (AVE: avadataset)")
    i.add_argument("--dtype", default="float32", help="store dtype (released files are float64)")
    i.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    return {
        "shard": _run_shard,
        "gather": _run_gather,
        "failures": _run_failures,
        "import": _run_import,
    }[args.command](args)


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device is {name!r} but CUDA is not available")
    return torch.device(name)


def build_extractor(recipe: str, options: dict[str, Any]) -> Any:
    """The registry's extractor (a seam for tests, which pass small fakes)."""
    from avpipe.features import registry

    return registry.build(recipe, options)


def store_attrs(
    spec: Any, cfg: ExtractConfig, shard_attrs: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """Provenance of a feature store: the extractor spec, decoding, versions, config hash."""
    from dataclasses import asdict

    return {
        "extractor": spec.name,
        "recipe": cfg.recipe,
        "modality": spec.modality,
        "weights": spec.weights,
        "spec": asdict(spec),
        "fps": spec.fps,
        "sample_rate": spec.sample_rate,
        "window_s": spec.window_s,
        "hop_s": spec.hop_s,
        "decode": {"plan": shard_attrs.get("plan"), "config_hash": shard_attrs.get("config_hash")},
        "padding": shard_attrs.get("padding", ""),
        "dataset": shard_attrs.get("dataset", ""),
        **provenance({"recipe": cfg.recipe, "options": cfg.options}),
        **extra,
    }


def cache_material(spec: Any, cfg: ExtractConfig, plan: Any, device: Any, precision: str) -> dict:
    """What a cached video's features depend on besides its decoded input (avpipe/io/cache.py)."""
    from dataclasses import asdict

    from avpipe.utils.provenance import source_hash

    return {
        "recipe": cfg.recipe,
        "options": cfg.options,
        "spec": asdict(spec),
        "weights": spec.weights,
        "plan": asdict(plan),
        "device": getattr(device, "type", str(device)),
        "precision": precision,
        "code": source_hash("features"),
    }


def _run_shard(args: argparse.Namespace) -> int:
    import torch

    from avpipe.features.pipeline import extract_shard
    from avpipe.io.decode import DecodedShard

    cfg = from_dict(ExtractConfig, load_json_arg(args.config_json), where="extract")
    torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    shard = DecodedShard(args.decoded)
    extractor = build_extractor(cfg.recipe, cfg.options).to(device)
    spec = extractor.spec
    log.info(
        "%s: %d videos of %s on %s, weights %s",
        cfg.recipe,
        len(shard),
        args.decoded,
        device,
        spec.weights,
    )
    attrs = store_attrs(
        spec,
        cfg,
        dict(shard.group.attrs),
        {"device": str(device), "precision": getattr(extractor, "precision", "")},
    )
    cache = None
    if args.cache_dir is not None:
        from avpipe.io.cache import FeatureCache

        material = cache_material(
            spec, cfg, shard.plan, device, str(getattr(extractor, "precision", ""))
        )
        cache = FeatureCache(args.cache_dir, material)
    stats = extract_shard(
        shard,
        extractor,
        args.out,
        batch_size=cfg.batch_size,
        attrs=attrs,
        prefetch=cfg.prefetch,
        cache=cache,
    )
    if cache is not None:
        log.info(
            "%s: %d of %d videos from cache (%s), %d computed, %d entries ignored",
            args.out,
            stats.cached,
            stats.videos,
            args.cache_dir,
            stats.computed,
            cache.ignored,
        )
    log.info(
        "%s: %d videos, %d segments in %.1f s (%.2f videos/s, %.1f items/s; model %.0f%% of wall)",
        args.out,
        stats.videos,
        stats.segments,
        stats.wall_s,
        stats.videos / max(stats.wall_s, 1e-9),
        stats.items_per_s,
        100 * stats.model_s / max(stats.wall_s, 1e-9),
    )
    return 0


def _run_gather(args: argparse.Namespace) -> int:
    from avpipe.io.store import gather_stores

    gather_stores(args.shards, args.out, {"shard_stores": [str(p) for p in args.shards]})
    return 0


def read_failures(status_tables: list[Path]) -> list[list[Any]]:
    """Rows of the decode status tables whose status is not ``ok`` (no_audio is listed too)."""
    rows = []
    for path in status_tables:
        shard = path.stem.removeprefix("shard")
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                if r["status"] != "ok":
                    rows.append([r["video_id"], r["path"], r["status"], r["reason"], shard])
    return sorted(rows)


def _run_failures(args: argparse.Namespace) -> int:
    rows = read_failures(args.status)
    write_tsv(args.out, FAILURE_COLUMNS, rows)
    log.info("%s: %d videos failed or lack a stream", args.out, len(rows))
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from avpipe.io import released

    if args.format == "ave_h5":
        released.import_ave_h5(
            args.source,
            args.out,
            args.recipe,
            manifest=args.manifest,
            key=args.key,
            dtype=args.dtype,
        )
    else:
        released.import_npy_dir(args.source, args.out, args.recipe, dtype=args.dtype)
    return 0
