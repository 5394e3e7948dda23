"""One small CLI per workflow stage: parse -> typed config -> library call -> outputs.

Every stage takes its config in one of two ways (``add_config_arguments``):

``--config config/config.yaml --dataset DS [--set KEY=VALUE ...]``
    the stage's slice resolved from the YAML by :func:`avpipe.config.resolve`, exactly
    as the workflow resolves it; KEY is a YAML path (``cpsp.train.epochs=3``);
``--config-json JSON|@file.json [--set KEY=VALUE ...]``
    the stage's section in the YAML's shape (``avpipe cpsp --config-json
    '{"train": {"epochs": 3}}'``) or the slice the workflow passes, already resolved;
    KEY is a path inside that JSON.

``--print-config`` prints the resolved slice, with every default its dataclass fills in,
and exits.  A stage module defines ``SECTION`` (its config.yaml section, or None when its
JSON is not one), ``resolve_config(args, config) -> dict`` and, where its config is one
dataclass, ``full_config(args, cfg) -> dict``; ``avpipe.cli`` calls :func:`stage_config`
and :func:`shown_config`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType
from typing import Any

from avpipe.config import ConfigError, load_config, load_json_arg, set_value


def add_config_arguments(p: argparse.ArgumentParser, *, dataset: bool = True) -> None:
    g = p.add_argument_group("config (give --config or --config-json)")
    g.add_argument(
        "--config",
        type=Path,
        help="config.yaml; the stage's slice is resolved for --dataset as the workflow does",
    )
    if dataset:
        g.add_argument("--dataset", help="dataset name (a key under `datasets` in config.yaml)")
    g.add_argument(
        "--config-json",
        help="the stage's config.yaml section as JSON (or @file.json), or the resolved slice",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one key before resolving (VALUE is YAML): with --config a YAML path "
        "(cpsp.train.epochs=3), with --config-json a path inside the JSON",
    )
    g.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def stage_config(module: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """The stage's resolved slice from ``--config`` or ``--config-json`` (+ ``--set``)."""
    if args.config is not None:
        if args.config_json is not None:
            raise ConfigError("give --config or --config-json, not both")
        return module.resolve_config(args, load_config(args.config, args.set))
    text = args.config_json or getattr(module, "DEFAULT_JSON", None)
    if text is None:
        raise ConfigError("give --config config/config.yaml (with --dataset) or --config-json")
    raw = load_json_arg(text)
    for assignment in args.set:
        set_value(raw, assignment)
    section = getattr(module, "SECTION", None)
    is_resolved = getattr(module, "is_resolved", lambda raw: False)
    if section is None or is_resolved(raw):
        return raw
    dataset = getattr(args, "dataset", None)
    config = {section: raw, "datasets": {} if dataset is None else {dataset: {}}}
    return module.resolve_config(args, config)


def shown_config(module: ModuleType, args: argparse.Namespace, cfg: dict[str, Any]) -> Any:
    """What --print-config prints: the slice with the dataclass defaults filled in."""
    full = getattr(module, "full_config", None)
    return cfg if full is None else full(args, cfg)


def add_run_arguments(p: argparse.ArgumentParser, *stores: str) -> None:
    """--manifest, one --<name>-store per store, --seed and --out-dir of a training stage;
    with --dataset they default to the workflow's paths (results/manifest/<ds>, ...)."""
    p.add_argument("--manifest", type=Path, help="results/manifest/<dataset>")
    for name in stores:
        p.add_argument(
            f"--{name}-store", type=Path, help=f"results/extract/<dataset>/<{name} recipe>.zarr"
        )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path)


def add_clcl_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of CLCL's three stages (pretrain, selflabel, em)."""
    add_config_arguments(p)
    add_run_arguments(p, "visual", "audio")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (the rule's threads); default: data.num_threads of the config",
    )


def clcl_paths(args: argparse.Namespace) -> None:
    data = args.cfg.get("data", {})
    base = f"results/extract/{args.dataset}"
    fill_paths(
        args,
        manifest=f"results/manifest/{args.dataset}",
        visual_store=f"{base}/{data.get('visual_recipe', 'vgg19_pool5')}.zarr",
        audio_store=f"{base}/{data.get('audio_recipe', 'vggish')}.zarr",
    )
    require(args, "manifest", "visual_store", "audio_store", "out_dir")


def fill_paths(args: argparse.Namespace, **paths: str) -> None:
    """Default path arguments from ``--dataset`` (results/manifest/<ds>, results/extract/<ds>/
    <recipe>.zarr): each ``dest=path`` is set where the command line left it out."""
    for dest, path in paths.items():
        if getattr(args, dest, None) is None and getattr(args, "dataset", None):
            setattr(args, dest, Path(path))


def require(args: argparse.Namespace, *dests: str) -> None:
    """One clear error for the first missing required option (they are optional only
    for --print-config)."""
    for dest in dests:
        if getattr(args, dest, None) is None:
            raise ConfigError(f"--{dest.replace('_', '-')} is required")
