"""Import released (published) features into avpipe's feature-store format.

Users who have the papers' feature files can skip extraction and run every method
on the exact published inputs.  Formats (:data:`FORMATS`):

* ``ave_h5`` (YapengTian/AVE-ECCV18): ``audio_feature.h5`` / ``visual_feature.h5``
  (and the ``*_noisy.h5`` variants), HDF5 dataset ``avadataset`` of shape (rows, 10, ...)
  float64, one row per line of ``Annotations.txt`` (the ``*_order.h5`` split files index
  these rows; the manifest carries each sample's ``row``).  With a manifest, row ``i`` is
  the sample whose ``row`` is ``i``; a video with several rows keeps its *first* row
  (CPSP's ``all_video_id_list.index`` convention), and the attributes say whether the
  dropped rows were identical.  Without one (the noisy files have no ids) the video ids
  are ``row00000`` ...
* ``llp_npy`` (YapengTian/AVVP-ECCV20 ``feats/``): a folder of ``<youtube_id>.npy`` per
  video: vggish (10, 128), r2plus1d_18 (10, 512), res152 (80, 2048) -> ``resnet152_llp``
  (features = mean of each 8 frames, ``frames`` = the 80 rows as (10, 8, 2048): segment,
  frame, channel).
* ``vggsound_avel_zip`` (jasongief/CPSP, ``cpsp_avel/dataset/vggsound_avel_dataset.py``):
  a folder of ``<video_id>.zip`` per video, each holding one pickled array: VGGish
  (T, 128) and VGG-19 pool5 (10, 7, 7, 512).  Like CPSP's loader, a video with T != 10
  rows is cut to 10 or padded by repeating its last row, so every video has 10 segments
  (``padding`` says so).

With a manifest, every video it lists must be in the release (a missing one is an error
naming the file it expected); released videos outside the manifest are skipped.  Each
row's trailing shape is checked against ``expect`` (the release's, :data:`RELEASE_SHAPES`,
when imported through the CLI or the workflow).

The import streams: one AVE row or one video file is in memory at a time, and
:class:`~avpipe.io.store.StoreWriter` writes whole chunks as they fill, so a release
larger than RAM imports in bounded memory.  Values are stored as ``dtype`` (float32 by
default; the releases are float64).  Every video gets ``has_audio`` / ``has_video`` True:
the releases do not say which videos lacked a stream.  The attributes name the source and
its sha256 (of the file; for a folder, of its sorted ``<file name> <sha256>`` lines).

Row t of every release stands for the 1-s segment t, so the stores get the grid
``{"hop_s": 1.0, "window_s": 1.0}`` that loaders check against the dataset's
(:func:`avpipe.io.store.check_grid`).  ``placement`` says how the release cut its
windows: ``"segment"`` (computed from segment t's own frames or audio) for all but the
LLP VGGish folder, whose rows are ``"contiguous"`` 0.96-s patches (row t covers
[0.96 t, 0.96 (t + 1)) s); ``grid_note`` says so in words.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avpipe.utils.provenance import provenance

if TYPE_CHECKING:  # h5py and zarr load when a release is imported, not with RELEASE_SHAPES
    import h5py

log = logging.getLogger(__name__)

FORMATS = ("ave_h5", "llp_npy", "vggsound_avel_zip")
# Trailing shape of one released row (after T) per (format, recipe): the AVE-ECCV18 h5
# files, the AVVP-ECCV20 feats/ folders, CPSP's VGGSound-AVEL100k loader comments.
RELEASE_SHAPES: dict[tuple[str, str], tuple[int, ...]] = {
    ("ave_h5", "vggish"): (128,),
    ("ave_h5", "vgg19_pool5"): (7, 7, 512),
    ("llp_npy", "vggish"): (128,),
    ("llp_npy", "resnet152_llp"): (2048,),
    ("llp_npy", "r2plus1d18"): (512,),
    ("vggsound_avel_zip", "vggish"): (128,),
    ("vggsound_avel_zip", "vgg19_pool5"): (7, 7, 512),
}
VGGSOUND_SEGMENTS = 10  # CPSP's loader cuts or pads every video to 10 rows
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


class ReleasedFeatureError(ValueError):
    """A released feature file does not match the dataset or its documented layout."""


def _flag(recipe: str) -> str:
    return "has_audio" if recipe in AUDIO_RECIPES else "has_video"


def source_sha256(source: Path, pattern: str = "*") -> str:
    """sha256 of a file, or of a folder's sorted ``<name> <sha256>`` lines (``pattern`` files)."""
    from avpipe.datasets.common import sha256  # PyAV with it: not for RELEASE_SHAPES

    if source.is_file():
        return sha256(source)
    h = hashlib.sha256()
    for p in sorted(source.glob(pattern)):
        h.update(f"{p.name} {sha256(p)}\n".encode())
    return h.hexdigest()


def _attrs(
    source: Path,
    recipe: str,
    extra: dict[str, Any],
    placement: str = "segment",
    pattern: str = "*",
    padding: str = "as released (no padding)",
) -> dict[str, Any]:
    return {
        "extractor": recipe,
        "recipe": recipe,
        "modality": "audio" if recipe in AUDIO_RECIPES else "visual",
        "weights": "released",
        "source": str(source),
        "source_bytes": source.stat().st_size
        if source.is_file()
        else sum(p.stat().st_size for p in source.glob(pattern)),
        "source_sha256": source_sha256(source, pattern),
        "padding": padding,
        "grid": {**RELEASE_GRID, "placement": placement},
        "grid_note": GRID_NOTES[placement],
        **provenance({"import": str(source), "recipe": recipe}),
        **extra,
    }


def _check_row_shape(
    where: str, shape: tuple[int, ...], expect: Sequence[int] | None, recipe: str
) -> None:
    if expect is not None and tuple(shape) != tuple(expect):
        raise ReleasedFeatureError(
            f"{where}: rows of shape {tuple(shape)}, expected {tuple(expect)} "
            f"for recipe {recipe!r} (the release's layout)"
        )


def _row_ids(
    n_rows: int, manifest: Path | None, where: str
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(video_id, h5 row) to keep, and what the mapping did."""
    if manifest is None:
        return [(f"row{i:05d}", i) for i in range(n_rows)], {"row_mapping": "row<i>: no manifest"}
    from avpipe.datasets.manifest import Manifest

    m = Manifest.read(manifest)
    by_row = {s.row: s.video_id for s in m.samples if s.row is not None}
    if len(by_row) != n_rows or set(by_row) != set(range(n_rows)):
        raise ReleasedFeatureError(
            f"{where}: {n_rows} rows, but the manifest {manifest} has {len(by_row)} "
            "annotation rows (one per line of Annotations.txt); use the release that "
            "belongs to this dataset, or import without a manifest (ids row<i>)"
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
    expect: Sequence[int] | None = None,
    codec: str | None = None,
) -> Path:
    """AVE ``*_feature.h5`` -> feature store ``out``, one row at a time (see the module doc).

    ``expect``: the trailing shape of a row after T, e.g. (7, 7, 512); None = any.
    """
    import h5py

    from avpipe.io.store import ArraySpec, StoreWriter
    from avpipe.io.store_codec import DEFAULT_CODEC

    codec = codec or DEFAULT_CODEC
    source = Path(source)
    with h5py.File(source, "r") as f:
        if key not in f:
            raise KeyError(f"{source}: no dataset {key!r} (has {list(f)})")
        d = f[key]
        where = f"{source}:{key}"
        if d.ndim < 3:
            raise ReleasedFeatureError(f"{where}: shape {d.shape}, expected (rows, T, ...)")
        _check_row_shape(where, d.shape[2:], expect, recipe)
        n_rows, t = d.shape[0], d.shape[1]
        keep, info = _row_ids(n_rows, Path(manifest) if manifest else None, where)
        if info.get("rows_dropped"):
            info["dropped_rows_identical"] = _dropped_identical(d, keep, Path(manifest))
        spec = {"features": ArraySpec(tuple(d.shape[2:]), dtype, codec=codec)}
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


def _dropped_identical(d: h5py.Dataset, keep: list[tuple[str, int]], manifest: Path) -> bool:
    """Whether every dropped row of a multi-row video equals the video's kept row."""
    from avpipe.datasets.manifest import Manifest

    first = dict(keep)
    kept_rows = set(first.values())
    return all(
        np.array_equal(d[s.row], d[first[s.video_id]])
        for s in Manifest.read(manifest).samples
        if s.row is not None and s.row not in kept_rows
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (a release is data, not code)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def load_zip_pickle(path: Path) -> np.ndarray:
    """The array pickled in the ``.pkl`` member of a CPSP VGGSound-AVEL ``<video_id>.zip``."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(".pkl")]
        if len(names) != 1:
            raise ReleasedFeatureError(
                f"{path}: {len(names)} .pkl members ({names}), expected exactly one"
            )
        with z.open(names[0]) as fh:
            try:
                return np.asarray(_ArrayUnpickler(io.BytesIO(fh.read())).load())
            except (pickle.UnpicklingError, EOFError, ValueError) as e:
                raise ReleasedFeatureError(f"{path}:{names[0]}: not a pickled array ({e})") from e


def _video_files(
    source: Path, suffix: str, manifest: Path | None
) -> tuple[list[tuple[str, Path]], int]:
    """(video_id, file) to import, sorted by id, and how many released files were skipped."""
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: released feature folder not found")
    files = {p.name[: -len(suffix)]: p for p in source.glob(f"*{suffix}")}
    if manifest is None:
        if not files:
            raise FileNotFoundError(f"{source}: no {suffix} files")
        return sorted(files.items()), 0
    from avpipe.datasets.manifest import Manifest

    wanted = sorted({s.video_id for s in Manifest.read(manifest).samples})
    missing = [v for v in wanted if v not in files]
    if missing:
        raise ReleasedFeatureError(
            f"{source}: {len(missing)} of the {len(wanted)} videos of {manifest} have no "
            f"released file, e.g. {source / (missing[0] + suffix)} (missing: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})"
        )
    return [(v, files[v]) for v in wanted], len(files) - len(wanted)


def _fixed_length(a: np.ndarray, t: int) -> np.ndarray:
    """``a`` cut to ``t`` rows, or padded by repeating its last row (CPSP's loader)."""
    if len(a) >= t:
        return a[:t]
    return np.concatenate([a, np.repeat(a[-1:], t - len(a), axis=0)])


def import_folder(
    source: str | Path,
    out: str | Path,
    recipe: str,
    fmt: str,
    *,
    manifest: str | Path | None = None,
    dtype: str = "float32",
    expect: Sequence[int] | None = None,
    codec: str | None = None,
) -> Path:
    """Per-video release folder (``llp_npy`` or ``vggsound_avel_zip``) -> store ``out``.

    Videos are read one at a time; ``expect`` is the trailing shape of a row after T
    (None = the first file's).
    """
    from avpipe.io.store import ArraySpec, StoreWriter
    from avpipe.io.store_codec import DEFAULT_CODEC

    codec = codec or DEFAULT_CODEC
    source = Path(source)
    suffix = {"llp_npy": ".npy", "vggsound_avel_zip": ".zip"}[fmt]
    videos, skipped = _video_files(source, suffix, Path(manifest) if manifest else None)
    k = FRAMES_PER_SEGMENT.get(recipe, 1)
    load: Callable[[Path], np.ndarray]
    if fmt == "llp_npy":
        load = _load_npy
        shapes = [np.load(p, mmap_mode="r").shape for _, p in videos]  # headers only
        first = shapes[0]
    else:
        load, first = load_zip_pickle, load_zip_pickle(videos[0][1]).shape
        shapes = [(VGGSOUND_SEGMENTS * k, *first[1:])] * len(videos)
    row = tuple(expect) if expect is not None else tuple(first[1:])
    for (_, p), shape in zip(videos, shapes, strict=True):
        _check_shape(p, shape, row, k, recipe)
    lengths = [shape[0] // k for shape in shapes]
    spec = {"features": ArraySpec(row, dtype, codec=codec)}
    if k > 1:
        spec["frames"] = ArraySpec(row, dtype, frames=k, codec=codec)
    padding = (
        f"each video cut or padded (last row repeated) to {VGGSOUND_SEGMENTS} segments, "
        "as CPSP's VGGSound-AVEL loader does"
        if fmt == "vggsound_avel_zip"
        else "as released (no padding)"
    )
    attrs = _attrs(
        source,
        recipe,
        {"format": fmt, "row_shape": list(row), "frames_per_segment": k, "skipped": skipped},
        # the LLP VGGish release ran VGGish over the whole clip: back-to-back 0.96-s patches
        placement="contiguous" if fmt == "llp_npy" and recipe in AUDIO_RECIPES else "segment",
        pattern=f"*{suffix}",
        padding=padding,
    )
    flag = _flag(recipe)
    with StoreWriter(out, len(videos), max(lengths), spec, attrs, flags=(flag,)) as w:
        for (video_id, p), n in zip(videos, lengths, strict=True):
            a = load(p).astype(np.float32)
            if fmt == "vggsound_avel_zip":
                _check_shape(p, a.shape, row, k, recipe)
                a = _fixed_length(a, n * k)
            arrays = {"features": a.reshape(n, k, *row).mean(axis=1).astype(dtype)}
            if k > 1:
                arrays["frames"] = a.astype(dtype)
            w.add(video_id, n, arrays, {flag: True})
    log.info("imported %s -> %s: %d videos (%d skipped)", source, out, len(videos), skipped)
    return Path(out)


def _load_npy(path: Path) -> np.ndarray:
    return np.load(path)


def _check_shape(
    path: Path, shape: tuple[int, ...], row: tuple[int, ...], k: int, recipe: str
) -> None:
    if len(shape) < 2 or shape[0] == 0 or shape[0] % k:
        raise ReleasedFeatureError(
            f"{path}: shape {shape}, expected (T*{k}, {', '.join(map(str, row))}) "
            f"for recipe {recipe!r}"
        )
    _check_row_shape(str(path), shape[1:], row, recipe)


def import_released(
    fmt: str,
    source: str | Path,
    out: str | Path,
    recipe: str,
    *,
    manifest: str | Path | None = None,
    key: str = "avadataset",
    dtype: str = "float32",
    check_shape: bool = True,
    codec: str | None = None,
) -> Path:
    """Import ``source`` in format ``fmt`` (:data:`FORMATS`) as ``recipe``'s store ``out``.

    ``check_shape``: rows must have the release's trailing shape (:data:`RELEASE_SHAPES`);
    ``codec``: the store's compression (:mod:`avpipe.io.store_codec`; None: its default).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown released format {fmt!r} (known: {', '.join(FORMATS)})")
    expect = RELEASE_SHAPES.get((fmt, recipe)) if check_shape else None
    if check_shape and expect is None:
        known = sorted(r for f, r in RELEASE_SHAPES if f == fmt)
        raise ValueError(
            f"{source}: format {fmt!r} has no released {recipe!r} features "
            f"(released: {', '.join(known)})"
        )
    if fmt == "ave_h5":
        return import_ave_h5(
            source, out, recipe, manifest=manifest, key=key, dtype=dtype, expect=expect, codec=codec
        )
    return import_folder(
        source, out, recipe, fmt, manifest=manifest, dtype=dtype, expect=expect, codec=codec
    )
