"""``avpipe localize``: event timelines of new videos from a trained model.

``avpipe localize --model MODEL_DIR VIDEO [VIDEO ...|FOLDER] --out DIR`` decodes and
extracts the videos as the model's training features were made (``inputs.json`` beside
the model: recipes, options, weights, segment grid, standardisation), runs the model
and writes to ``DIR``:

``timelines.tsv``/``timelines.json``  one row per event: video, class, modality
                                      (audio / visual / audio-visual), onset_s,
                                      offset_s, score (:mod:`avpipe.localize.timeline`)
``timelines/<video>.png``             the predicted lanes, drawn as the report's timelines
``predictions.npz``                   the model's arrays, in its predictions.npz layout
``features/``                         the new videos' feature stores and status.tsv

MODEL_DIR: ``results/cpsp/<ds>/<experiment>/seed<k>`` (PSP/CPSP),
``results/avvp/<ds>/<method>/seed<k>`` (HAN/CoLeaF: binarised with the setting the
evaluation scored, ``--avvp-setting``), ``results/em/<ds>/seed<k>/round<r>`` (CLCL:
pseudo-classes named by the evaluation's pseudo-class -> class mapping when it fitted
one, else ``pseudo<k>``).  The evaluation is looked up under ``results/evaluate/``
beside the model, or given with ``--evaluation``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avpipe.localize.inputs import LocalizeError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="a trained model's folder")
    p.add_argument("videos", nargs="*", type=Path, help="video files and/or folders of videos")
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="results/manifest/<dataset>: also every present video of that manifest",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="the model's evaluation folder (default: found under results/evaluate/)",
    )
    p.add_argument(
        "--avvp-setting",
        default="fixed",
        help="HAN/CoLeaF: the evaluated setting to binarise with (a key of "
        "avvp.evaluate.settings, or selected)",
    )
    p.add_argument("--recursive", action="store_true", help="search folders recursively")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=16, help="segments per extractor call")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution")


def collect_videos(
    paths: list[Path], recursive: bool, manifest: Path | None = None
) -> list[tuple[str, str]]:
    """(video_id, path) of the files, of the media files in the folders and of the present
    videos of ``manifest``; one id each."""
    from avpipe.datasets.common import DatasetError
    from avpipe.datasets.folder import scan
    from avpipe.datasets.manifest import Manifest

    found: dict[str, str] = {}
    if manifest is not None:
        try:
            m = Manifest.read(manifest)
        except (OSError, ValueError) as e:
            raise LocalizeError(f"--manifest {manifest}: {e}") from e
        found.update({s.video_id: s.path for s in m.samples if s.present})
        if not found:
            raise LocalizeError(f"--manifest {manifest}: no present video")
    elif not paths:
        raise LocalizeError("no videos: name video files or folders (or --manifest)")

    def add(vid: str, path: Path) -> None:
        if vid in found:
            raise LocalizeError(f"two videos with the id {vid!r}: {found[vid]} and {path}")
        found[vid] = str(path)

    for p in paths:
        if p.is_dir():
            try:
                media, _ = scan(p, recursive)
            except DatasetError as e:
                raise LocalizeError(str(e)) from e
            if not media:
                raise LocalizeError(f"{p}: no video files in this folder")
            for vid, f in media.items():
                add(vid, f)
        elif p.is_file():
            add(p.stem, p)
        else:
            raise LocalizeError(f"{p}: no such video file or folder")
    return sorted(found.items())


def _evaluation(model_dir: Path, family: str, given: Path | None) -> Path | None:
    """The model's evaluation folder: ``given``, or its place under results/evaluate/."""
    if given is not None:
        if not given.is_dir():
            raise LocalizeError(f"--evaluation {given}: no such folder")
        return given
    parts = model_dir.resolve().parts
    root = Path(*parts[:-4])
    if family == "clcl":  # results/em/<ds>/seed<k>/round<r>
        found = sorted(root.glob(f"evaluate/unsupervised/{parts[-3]}/*/{parts[-2]}/{parts[-1]}"))
        if len(found) > 1:
            raise LocalizeError(
                f"{model_dir}: several evaluations ({', '.join(map(str, found))}); "
                "name one with --evaluation"
            )
        return found[0] if found else None
    folder = root / "evaluate" / parts[-4] / Path(*parts[-3:])
    return folder if folder.is_dir() else None


def _avvp_binarisation(evaluation: Path | None, name: str, classes: list[str], model: Path):
    from avpipe.metrics import avvp
    from avpipe.report.collect import Run
    from avpipe.report.figure_data import Binarisation, avvp_binarisation

    metrics = evaluation / "metrics.json" if evaluation is not None else None
    if metrics is None or not metrics.is_file():
        conf = avvp.EvalConfig()
        if name not in conf.settings:
            raise LocalizeError(f"{model}: no evaluation found, and {name!r} is no default setting")
        log.warning("%s: no evaluation found; binarising with the default setting %r", model, name)
        return Binarisation(name, conf.settings[name])
    run = Run(metrics, "avvp", "", "", 0, None, "avvp", {})
    try:
        return avvp_binarisation(run, name, classes)
    except (KeyError, ValueError) as e:
        raise LocalizeError(str(e)) from e


def _pseudo_names(evaluation: Path | None, n: int) -> list[str]:
    """Pseudo-class k -> its mapped class in the evaluation's mapping.tsv, else pseudo<k>."""
    from avpipe.report.collect import read_tsv

    names = [f"pseudo{k}" for k in range(n)]
    path = evaluation / "mapping.tsv" if evaluation is not None else None
    if path is None or not path.is_file():
        log.info("no pseudo-class -> class mapping fitted: classes are named pseudo<k>")
        return names
    for r in read_tsv(path):
        k = int(r["pseudo_class"])
        if 0 <= k < n and r.get("class"):
            names[k] = r["class"]
    log.info("pseudo-classes named by %s", path)
    return names


def _naming(args: argparse.Namespace, family: str, ckpt: dict, evaluation: Path | None) -> Any:
    """HAN/CoLeaF: the evaluated binarisation; CLCL: the pseudo-class names; CPSP: None."""
    if family == "avvp":
        return _avvp_binarisation(evaluation, args.avvp_setting, ckpt["classes"], args.model)
    if family == "clcl":
        return _pseudo_names(evaluation, int(ckpt["n_classes"]))
    return None


def _new_videos(records: list[dict[str, Any]], hop: float, win: float) -> Any:
    """The extracted videos as a manifest of the folder kind (split unlabeled, no classes)."""
    from avpipe.datasets.manifest import Manifest, Sample

    samples = [
        Sample(
            v["video_id"],
            v["video_id"],
            "unlabeled",
            v["path"],
            float(v["duration_s"]),
            int(v["n_segments"]),
        )
        for v in records
    ]
    return Manifest("localize", "folder", [], samples, [], hop, win)


def _write(out: Path, d: Any, hop: float, win: float, meta: dict[str, Any]) -> int:
    """PNGs and predictions.npz, then the tables (last: their presence means complete)."""
    from avpipe.localize import timeline
    from avpipe.utils import atomic

    ids = [str(v) for v in d.arrays["sample_id"]]
    for i, vid in enumerate(ids):
        timeline.draw(out, d, i, vid, hop, d.describe, meta["dpi"])
    with atomic.atomic_path(out / "predictions.npz") as tmp, tmp.open("wb") as fh:
        np.savez(fh, **d.arrays)
    evs = timeline.events(d, ids, hop, win)
    timeline.write_tables(out, evs, meta)
    log.info("%d events in %d videos -> %s", len(evs), len(ids), out / "timelines.tsv")
    return len(evs)


def localize(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from avpipe.localize import features, models
    from avpipe.localize.inputs import read_inputs
    from avpipe.stages.extract import resolve_device
    from avpipe.utils.provenance import provenance

    path = models.checkpoint_of(args.model)
    inputs = read_inputs(args.model)
    if inputs.family not in models.CHECKPOINTS[path.name]:
        raise LocalizeError(
            f"{args.model}: inputs.json says {inputs.family}, but the folder holds {path.name}"
        )
    ckpt = models.load(path)
    videos = collect_videos(args.videos, args.recursive, args.manifest)
    features.precheck(videos)
    evaluation = _evaluation(args.model, inputs.family, args.evaluation)
    naming = _naming(args, inputs.family, ckpt, evaluation)
    device = resolve_device(args.device)
    runs, roles = features.build_runs(inputs, device)
    log.info("%d videos, %s model %s", len(videos), inputs.family, args.model)
    prepare = "device" if device.type == "cuda" else "workers"
    stores, records = features.extract(
        runs, roles, inputs, videos, args.out / "features", args.batch_size, args.workers, prepare
    )
    features.check_decoded(records, roles)
    hop, win = inputs.segment_hop, inputs.segment_win
    manifest = _new_videos(records, hop, win)
    with torch.inference_mode():
        d = models.PREDICT[inputs.family](ckpt, path, inputs, manifest, stores, device, naming)
    meta = {
        "model": str(args.model),
        "family": inputs.family,
        "evaluation": str(evaluation) if evaluation else None,
        "decisions": d.describe,
        "classes": d.classes,
        "videos": [{"video": v, "path": p} for v, p in videos],
        "dpi": args.dpi,
        **provenance(),
    }
    _write(args.out, d, hop, win, meta)
    return meta


def run(args: argparse.Namespace) -> int:
    try:
        localize(args)
    except LocalizeError as e:
        log.error("%s", e)
        return 2
    return 0
