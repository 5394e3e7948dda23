"""Import released (published) features into avpipe's feature-store format.

Users who have the papers' feature files can skip extraction and run every method
on the exact published inputs (YapengTian/AVE-ECCV18, YapengTian/AVVP-ECCV20):

* AVE: ``audio_feature.h5`` / ``visual_feature.h5`` (and the ``*_noisy.h5``
  variants), HDF5 dataset ``avadataset`` of shape (rows, 10, ...) float64, one row
  per line of ``Annotations.txt``.  With a manifest, row ``i`` is the sample whose
  ``row`` is ``i``; a video with several rows keeps its *first* row (CPSP's
  ``all_video_id_list.index`` convention), and the attributes say whether the
  dropped rows were identical.  Without one (the noisy files have no ids) the
  video ids are ``row00000`` ...
* LLP: a folder of ``<youtube_id>.npy`` per video: vggish (10, 128),
  r2plus1d_18 (10, 512), res152 (80, 2048) -> ``resnet152_llp`` (features = mean
  of each 8 frames, ``frames`` = the 80 rows as (10, 8, 2048): segment, frame, channel).

Values are stored as ``dtype`` (float32 by default; the releases are float64).
Every video gets ``n_segments`` = the file's T and ``has_audio`` / ``has_video``
True: the releases do not say which videos lacked a stream.

Row t of every release stands for the 1-s segment t, so the stores get the grid
``{"hop_s": 1.0, "window_s": 1.0}`` that loaders check against the dataset's
(:func:`avpipe.io.store.check_grid`).  ``placement`` says how the release cut its
windows: ``"segment"`` (computed from segment t's own frames or audio) for all but the
LLP VGGish folder, whose rows are ``"contiguous"`` 0.96-s patches (row t covers
[0.96 t, 0.96 (t + 1)) s); ``grid_note`` says so in words.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from avpipe.datasets.common import sha256
from avpipe.io.store import ArraySpec, StoreWriter
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)

AUDIO_RECIPES = ("vggish",)
RELEASE_GRID = {"hop_s": 1.0, "window_s": 1.0}
GRID_NOTES = {
    "segment": "released features: row t was computed from 1-s segment t",
    "contiguous": (
        "released LLP VGGish: row t is the contiguous 0.96-s patch [0.96 t, 0.96 (t + 1)) s "
        "of the whole clip, used as 1-s segment t"
    ),
}
FRAMES_PER_SEGMENT = {"resnet152_llp": 8}  # per-frame releases averaged into segments


def _flag(recipe: str) -> str:
    return "has_audio" if recipe in AUDIO_RECIPES else "has_video"


def _attrs(
    source: Path, recipe: str, extra: dict[str, Any], placement: str = "segment"
) -> dict[str, Any]:
    return {
        "extractor": recipe,
        "recipe": recipe,
        "modality": "audio" if recipe in AUDIO_RECIPES else "visual",
        "weights": "released",
        "source": str(source),
        "source_bytes": source.stat().st_size if source.is_file() else 0,
        # hashing the 7.7-GiB visual_feature.h5 would take minutes: only small files
        "source_sha256": sha256(source)
        if source.is_file() and source.stat().st_size < 1 << 30
        else "",
        "padding": "as released (no padding)",
        "grid": {**RELEASE_GRID, "placement": placement},
        "grid_note": GRID_NOTES[placement],
        **provenance({"import": str(source), "recipe": recipe}),
        **extra,
    }


def _row_ids(n_rows: int, manifest: Path | None) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(video_id, h5 row) to keep, and what the mapping did."""
    if manifest is None:
        return [(f"row{i:05d}", i) for i in range(n_rows)], {"row_mapping": "row<i>: no manifest"}
    from avpipe.datasets.manifest import Manifest

    m = Manifest.read(manifest)
    by_row = {s.row: s.video_id for s in m.samples if s.row is not None}
    if len(by_row) != n_rows or set(by_row) != set(range(n_rows)):
        raise ValueError(
            f"{manifest}: the manifest has {len(by_row)} annotation rows, "
            f"the released file {n_rows}; "
            "import without --manifest (ids row<i>) or use the matching dataset"
        )
    first: dict[str, int] = {}
    for i in range(n_rows):
        first.setdefault(by_row[i], i)
    keep = sorted(first.items())
    return keep, {
        "row_mapping": "first annotation row of each video",
        "rows_dropped": n_rows - len(keep),
    }


def import_ave_h5(
    source: str | Path,
    out: str | Path,
    recipe: str,
    *,
    manifest: str | Path | None = None,
    key: str = "avadataset",
    dtype: str = "float32",
) -> Path:
    """AVE ``*_feature.h5`` -> feature store ``out`` (see the module doc)."""
    source = Path(source)
    with h5py.File(source, "r") as f:
        if key not in f:
            raise KeyError(f"{source}: no dataset {key!r} (has {list(f)})")
        d = f[key]
        n_rows, t = d.shape[0], d.shape[1]
        keep, info = _row_ids(n_rows, Path(manifest) if manifest else None)
        dropped_identical = True
        kept_rows = {r for _, r in keep}
        if info.get("rows_dropped"):
            from avpipe.datasets.manifest import Manifest

            m = Manifest.read(manifest)
            first = {v: r for v, r in keep}
            for s in m.samples:
                if s.row is not None and s.row not in kept_rows:
                    dropped_identical &= bool(np.array_equal(d[s.row], d[first[s.video_id]]))
            info["dropped_rows_identical"] = dropped_identical
        spec = {"features": ArraySpec(tuple(d.shape[2:]), dtype)}
        attrs = _attrs(
            source,
            recipe,
            {"h5_key": key, "h5_shape": list(d.shape), "h5_dtype": str(d.dtype), **info},
        )
        flag = _flag(recipe)
        with StoreWriter(out, len(keep), t, spec, attrs, flags=(flag,)) as w:
            for video_id, r in keep:
                w.add(video_id, t, {"features": d[r].astype(dtype)}, {flag: True})
    log.info(
        "imported %s -> %s: %d videos x %d segments %s", source, out, len(keep), t, d.shape[2:]
    )
    return Path(out)


def import_npy_dir(
    source: str | Path, out: str | Path, recipe: str, *, dtype: str = "float32"
) -> Path:
    """LLP-style ``<video_id>.npy`` folder -> feature store ``out`` (see the module doc)."""
    source = Path(source)
    files = sorted(source.glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"{source}: no .npy files")
    k = FRAMES_PER_SEGMENT.get(recipe, 1)
    first = np.load(files[0], mmap_mode="r")
    lengths = []
    for p in files:
        a = np.load(p, mmap_mode="r")
        if a.shape[1:] != first.shape[1:] or a.shape[0] % k:
            raise ValueError(
                f"{p}: shape {a.shape}, expected (T*{k}, {', '.join(map(str, first.shape[1:]))})"
            )
        lengths.append(a.shape[0] // k)
    spec = {"features": ArraySpec(tuple(first.shape[1:]), dtype)}
    if k > 1:
        spec["frames"] = ArraySpec(tuple(first.shape[1:]), dtype, frames=k)
    attrs = _attrs(
        source,
        recipe,
        {"npy_shape": list(first.shape), "npy_dtype": str(first.dtype), "frames_per_segment": k},
        # the LLP VGGish release ran VGGish over the whole clip: back-to-back 0.96-s patches
        placement="contiguous" if recipe in AUDIO_RECIPES else "segment",
    )
    flag = _flag(recipe)
    with StoreWriter(out, len(files), max(lengths), spec, attrs, flags=(flag,)) as w:
        for p, n in zip(files, lengths, strict=True):
            a = np.load(p).astype(np.float32)
            arrays = {"features": a.reshape(n, k, *a.shape[1:]).mean(axis=1).astype(dtype)}
            if k > 1:
                arrays["frames"] = a.astype(dtype)
            w.add(p.stem, n, arrays, {flag: True})
    log.info("imported %s -> %s: %d videos", source, out, len(files))
    return Path(out)
