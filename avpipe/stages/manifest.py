"""``avpipe manifest``: a dataset's annotations -> avpipe's manifest + coverage report.

Reads the dataset's config entry (``datasets.<name>`` of config.yaml, passed as
JSON), runs its format's adapter (``avpipe/datasets/registry.py``) and writes into
``--out-dir`` (``results/manifest/<name>/``)::

    samples.tsv  events.tsv  classes.txt  meta.json     the manifest (avpipe/datasets/manifest.py)
    coverage.tsv  problems.tsv                          listed/present/decodable/with audio

Annotation errors (malformed, unknown class, not UTF-8, missing or unreadable
file) stop the stage with one message naming the file and line and exit status 1,
without a traceback; reportable anomalies go to ``meta.json`` (or stop it with
``on_anomaly: raise``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from avpipe import config as configs
from avpipe.datasets import coverage, registry
from avpipe.datasets.common import DatasetError, parse_config
from avpipe.datasets.manifest import ManifestError
from avpipe.stages import add_config_arguments, fill_paths, require
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)
SECTION = None  # --config-json is the dataset's entry, datasets.<name> of config.yaml


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--out-dir", type=Path, help="results/manifest/<dataset>")


def resolve_config(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    return configs.resolve("datasets", args.dataset, config=config)


def run(args: argparse.Namespace) -> int:
    fill_paths(args, out_dir=f"results/manifest/{args.dataset}")
    require(args, "dataset", "out_dir")
    raw = args.cfg
    cfg = parse_config(raw, args.dataset)
    try:
        manifest = registry.load(raw, args.dataset)
    except (DatasetError, ManifestError, KeyError, OSError) as e:
        # str(KeyError) quotes its message; OSError: e.g. an unreadable HDF5 split file.
        log.error("dataset %s: %s", args.dataset, e.args[0] if isinstance(e, KeyError) else e)
        return 1
    manifest.meta["provenance"] = provenance(raw)
    manifest.write(args.out_dir)
    rows = coverage.write(manifest, args.out_dir, decode=cfg.decode_check)
    log.info(
        "%s: %d samples, %d videos, %d events, %d classes -> %s",
        args.dataset,
        len(manifest.samples),
        len(manifest.video_ids),
        len(manifest.events),
        len(manifest.classes),
        args.out_dir,
    )
    for split, samples, listed, present, decodable, with_audio in rows:
        log.info(
            "coverage %-9s samples %d, videos listed %d, present %d, decodable %d, with audio %d",
            split,
            samples,
            listed,
            present,
            decodable,
            with_audio,
        )
    return 0
