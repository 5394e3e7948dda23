"""New videos -> feature stores made as the model's training stores were.

The recipes, their options and the segment grid come from ``inputs.json``; decoding
and extraction are the extract stage's (:func:`avpipe.features.pipeline.extract_shard`,
one decode per video for every recipe), into ``<out>/features/`` (one store per recipe
and ``status.tsv``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from avpipe.config import ConfigError
from avpipe.localize.inputs import Inputs, LocalizeError

log = logging.getLogger(__name__)


def build_runs(inputs: Inputs, device: Any) -> tuple[list[Any], dict[str, str]]:
    """One extraction run per recipe of the model's stores, on ``device``, and
    role -> recipe.  Weights that cannot be read end in one :class:`LocalizeError`."""
    from avpipe.features.pipeline import RecipeRun
    from avpipe.features.torchbase import WeightsUnavailableError
    from avpipe.io.grid import Grid
    from avpipe.stages.extract import build_extractor, store_attrs

    grid = Grid(inputs.segment_hop, inputs.segment_win)
    roles = {role: s["recipe"] for role, s in inputs.stores.items()}
    runs = []
    for role, store in inputs.stores.items():
        recipe = store["recipe"]
        if any(r.name == recipe for r in runs):
            continue
        options = dict(store["options"])
        try:
            extractor = build_extractor(recipe, options, grid).to(device)
        except (WeightsUnavailableError, FileNotFoundError, OSError) as e:
            raise LocalizeError(
                f"missing weights: the model's {role} features ({store['path']}) were made "
                f"by {recipe} with weights {options.get('weights', 'pretrained')!r} "
                f"({store.get('weights')}), which cannot be loaded here: {e}"
            ) from e
        except (ConfigError, KeyError) as e:
            raise LocalizeError(
                f"the {role} store's recipe {recipe!r} with options {options} cannot be "
                f"built by this avpipe: {e}"
            ) from e
        attrs = store_attrs(extractor.spec, recipe, options, grid, {"device": str(device)})
        runs.append(RecipeRun(recipe, extractor, None, attrs))
        log.info("%s (%s features) on %s, weights %s", recipe, role, device, extractor.spec.weights)
    return runs, roles


def extract(
    runs: list[Any],
    roles: dict[str, str],
    inputs: Inputs,
    videos: list[tuple[str, str]],
    out: Path,
    batch_size: int,
    workers: int,
    prepare: str,
) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Stores (role -> path) of ``videos`` ((video_id, path)) and one status record per
    video (video_id, path, status, reason, n_segments, ...)."""
    from avpipe.features.pipeline import Settings, extract_shard
    from avpipe.io.grid import Grid

    settings = Settings(
        grid=Grid(inputs.segment_hop, inputs.segment_win),
        batch_size=batch_size,
        workers=workers,
        prepare=prepare,
        on_error="skip",
    )
    res = extract_shard(sorted(videos), runs, out, settings)
    return {role: out / f"{recipe}.zarr" for role, recipe in roles.items()}, res.videos


def precheck(videos: list[tuple[str, str]]) -> None:
    """Fail before any extractor is built when a video cannot be opened, its first frame
    does not decode or it lacks a stream (:func:`avpipe.datasets.probe.probe`)."""
    from avpipe.datasets.probe import probe

    bad = []
    for _, path in videos:
        p = probe(path, True)
        if not p.opened or not p.decodable and p.has_video:
            bad.append(f"{path}: cannot be decoded ({p.error})")
        elif not (p.has_audio and p.has_video):
            what = "audio" if not p.has_audio else "video"
            bad.append(f"{path}: has no {what} stream, and the model reads both")
    if bad:
        raise LocalizeError("; ".join(bad))


def check_decoded(records: list[dict[str, Any]], roles: dict[str, str]) -> None:
    """One error naming every video that could not be decoded or lacks a stream the
    model needs (every family here reads both)."""
    bad = []
    for r in records:
        if r["status"] == "failed":
            bad.append(f"{r['path']}: cannot be decoded ({r['reason']})")
        elif not (r.get("has_audio") and r.get("has_video")):
            what = "audio" if not r.get("has_audio") else "video"
            bad.append(f"{r['path']}: has no {what} stream, and the model reads both")
        elif not r.get("n_segments"):
            bad.append(f"{r['path']}: shorter than one segment")
    if bad:
        raise LocalizeError("; ".join(bad))
