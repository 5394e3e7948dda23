"""The three stages of CLCL as library functions: inputs on disk -> outputs on disk.

Each function reads the manifest and the two feature stores, trains, and writes its
folder (every file atomically).  ``summary.json`` records under ``missing_stream`` the
videos left out because a store says they have no video or no audio stream
(:mod:`avpipe.training.streams`), per split: training videos, and for an EM round also
those absent from ``predictions.npz`` (so evaluated on fewer videos):

* :func:`run_pretrain` -> ``encoder.pt``, ``embeddings.npz`` (video_id, embed_visual,
  embed_audio (N, d)), ``history.tsv``, ``summary.json``
* :func:`run_selflabel` -> ``annotator.pt``, ``pseudo_labels.npz`` (video_id, z (N, C),
  pseudo_label (N,)), ``pseudo_labels.tsv``, ``history.tsv``, ``summary.json``
* :func:`run_em_round` -> the above for round k plus ``localizer.pt``,
  ``predictions.npz`` (see :mod:`avpipe.metrics.unsupervised`), ``embeddings.npz``
  (sample_id, embedding, pseudo_label of the training samples), ``timelines.tsv``

Every network is initialised from the run seed (and the round), never from whatever
ran before in the process.  EM round k >= 2 (defaults): the E-step pools the stage-A
encoder's features with round k-1's gamma (the space stage B trained in), trains a
fresh seeded annotator and permutes its pseudo-classes to match round k-1's (Hungarian);
the M-step trains a localizer from the stage-A encoder with fresh heads, then orients
gamma (:func:`~avpipe.methods.clcl.localizer.orient_gamma`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from avpipe.config import from_dict, to_dict
from avpipe.datasets.manifest import Manifest
from avpipe.localize.inputs import record_inputs
from avpipe.methods.clcl.annotator import align_to, fit_annotator, predict
from avpipe.methods.clcl.config import EMStage, EncoderConfig, PretrainStage, SelflabelStage
from avpipe.methods.clcl.data import (
    VideoFeatures,
    dims,
    n_pseudo_classes,
    open_features,
    train_samples,
)
from avpipe.methods.clcl.localizer import (
    foreground,
    infer,
    orient_gamma,
    representations,
    timelines,
    train_localizer,
)
from avpipe.methods.clcl.model import Annotator, CollaborativeEncoder, Localizer
from avpipe.methods.clcl.pretrain import train_encoder
from avpipe.training.checkpoint import load_checkpoint, save_checkpoint
from avpipe.training.data import Loading, fit_standardizer
from avpipe.training.device import resolve_device
from avpipe.training.epochs import seed_everything
from avpipe.training.streams import by_split
from avpipe.utils import atomic
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)


def _loading(cfg_data) -> Loading:
    return Loading(cfg_data.memory_budget_mb, cfg_data.loader_workers, 256)


def _setup(
    cfg_data, manifest: Manifest, visual: Path, audio: Path
) -> tuple[VideoFeatures, torch.device, dict]:
    """Training features, device, and the videos dropped for a missing stream by split."""
    torch.set_num_threads(cfg_data.num_threads)
    samples = train_samples(manifest, cfg_data.train_split, cfg_data.train_videos)
    feats = open_features(
        manifest, visual, audio, samples, _loading(cfg_data), name=samples[0].split
    )
    if cfg_data.standardize:
        # train statistics; every stage refits them on the same videos (deterministic)
        feats.norm = fit_standardizer(feats)
        log.info(
            "standardize: visual mean %.4g std %.4g, audio mean %.4g std %.4g (channel averages)",
            feats.norm.mean["visual"].mean(),
            feats.norm.std["visual"].mean(),
            feats.norm.mean["audio"].mean(),
            feats.norm.std["audio"].mean(),
        )
    return feats, resolve_device(cfg_data.device), by_split(samples, feats.missing)


def _fresh_encoder(ckpt: dict) -> CollaborativeEncoder:
    """An untrained encoder with the dimensions and settings recorded in ``ckpt``."""
    return CollaborativeEncoder(
        ckpt["visual_dim"], ckpt["audio_dim"], from_dict(EncoderConfig, ckpt["encoder"])
    )


def _encoder_from(ckpt: dict) -> CollaborativeEncoder:
    """The stage-A encoder stored in ``encoder.pt``."""
    enc = _fresh_encoder(ckpt)
    enc.load_state_dict(ckpt["state_dict"])
    return enc


def run_pretrain(
    manifest: Manifest, visual: Path, audio: Path, cfg: PretrainStage, seed: int, out: Path
) -> dict:
    t0 = time.perf_counter()
    feats, device, missing = _setup(cfg.data, manifest, visual, audio)
    res = train_encoder(feats, cfg.pretrain, seed, device)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "encoder.pt",
        res.encoder.state_dict(),
        to_dict(cfg),
        seed=seed,
        **dict(zip(("visual_dim", "audio_dim"), dims(feats), strict=True)),
        encoder=to_dict(cfg.pretrain.encoder),
        video_ids=feats.video_ids,
    )
    with atomic.atomic_path(out / "embeddings.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            video_id=np.asarray(feats.video_ids),
            embed_visual=res.embed_visual,
            embed_audio=res.embed_audio,
        )
    res.history.write(out / "history.tsv")
    summary = {
        "seconds": time.perf_counter() - t0,
        "n_videos": len(feats),
        "missing_stream": missing,
        "seed": seed,
        **provenance(to_dict(cfg)),
    }
    atomic.write_json(out / "summary.json", summary)
    return summary


def _annotator_input(f: torch.Tensor, cfg) -> torch.Tensor:
    """f = [a; v] (N, 2d) with its visual half scaled by ``selflabel.visual_weight``."""
    w = cfg.selflabel.visual_weight
    if w == 1.0:
        return f
    if w < 0:
        raise ValueError(f"selflabel.visual_weight must be >= 0, got {w}")
    d = f.shape[1] // 2
    return torch.cat([f[:, :d], w * f[:, d:]], dim=1)


def _save_labels(out: Path, video_ids: list[str], z: np.ndarray) -> None:
    with atomic.atomic_path(out / "pseudo_labels.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, video_id=np.asarray(video_ids), z=z.astype(np.float32), pseudo_label=z.argmax(1)
        )
    rows = [
        [v, int(r.argmax()), round(float(r.max()), 4)] for v, r in zip(video_ids, z, strict=True)
    ]
    atomic.write_tsv(out / "pseudo_labels.tsv", ["video_id", "pseudo_class", "confidence"], rows)


def run_selflabel(
    manifest: Manifest,
    visual: Path,
    audio: Path,
    pretrain_dir: Path,
    cfg: SelflabelStage,
    seed: int,
    out: Path,
) -> dict:
    """First E-step: uniform gamma over the stage-A encoder's features (a seeded annotator,
    fitted first to their k-means partition with ``selflabel.init: kmeans``)."""
    t0 = time.perf_counter()
    feats, device, missing = _setup(cfg.data, manifest, visual, audio)
    encoder = _encoder_from(load_checkpoint(pretrain_dir / "encoder.pt")).to(device)
    f = _annotator_input(representations(encoder, feats, 256, device), cfg)
    C = n_pseudo_classes(cfg.data.n_pseudo_classes, manifest)
    ann, hist, objectives = fit_annotator(
        f,
        cfg.selflabel,
        C,
        cfg.selflabel.epochs,
        seed,
        device,
        kmeans=cfg.selflabel.init == "kmeans",
    )
    z = predict(ann, f.to(device))
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "annotator.pt",
        ann.state_dict(),
        to_dict(cfg),
        seed=seed,
        in_dim=f.shape[1],
        n_classes=C,
    )
    _save_labels(out, feats.video_ids, z)
    hist.write(out / "history.tsv")
    summary = {
        "seconds": time.perf_counter() - t0,
        "n_videos": len(feats),
        "missing_stream": missing,
        "n_pseudo_classes": C,
        "nonempty_pseudo_classes": int(len(np.unique(z.argmax(1)))),
        "restart_objectives": objectives,
        "seed": seed,
        **provenance(to_dict(cfg)),
    }
    atomic.write_json(out / "summary.json", summary)
    return summary


def load_localizer(path: Path, cfg: EMStage, C: int) -> Localizer:
    ckpt = load_checkpoint(path)
    loc = Localizer(_fresh_encoder(ckpt), C, ckpt["encoder"]["heads"], cfg.em.dropout)
    loc.load_state_dict(ckpt["state_dict"])
    return loc


def _e_step(
    cfg: EMStage,
    feats: VideoFeatures,
    encoder: CollaborativeEncoder,
    prev: Path,
    round_k: int,
    seed: int,
    device: torch.device,
    C: int,
) -> tuple[np.ndarray, Annotator, torch.Tensor, list]:
    """Round k >= 2: f pooled with round k-1's gamma, retrain Phi, new Z (aligned to k-1's)."""
    loc = load_localizer(prev / "localizer.pt", cfg, C).to(device)
    pooled = encoder if cfg.em.estep_features == "pretrain" else loc.encoder
    f = _annotator_input(representations(pooled, feats, 256, device, localizer=loc), cfg)
    init = None
    if cfg.selflabel.init == "previous":
        init = load_checkpoint(prev / "annotator.pt")["state_dict"]
    ann, hist, _ = fit_annotator(
        f,
        cfg.selflabel,
        C,
        cfg.em.annotator_epochs,
        seed + 1000 * round_k,
        device,
        init,
        kmeans=cfg.selflabel.init == "kmeans",
    )
    z = predict(ann, f.to(device))
    if cfg.em.align_labels:
        with np.load(prev / "pseudo_labels.npz") as npz:
            z = align_to(z, npz["pseudo_label"])
    return z, ann, f, hist.rows


def run_em_round(
    manifest: Manifest,
    visual: Path,
    audio: Path,
    pretrain_dir: Path,
    selflabel_dir: Path,
    previous_dir: Path | None,
    round_k: int,
    cfg: EMStage,
    seed: int,
    out: Path,
) -> dict:
    """E-step (round 1: the self-label stage's Z) then M-step, inference and outputs."""
    t0 = time.perf_counter()
    feats, device, _ = _setup(cfg.data, manifest, visual, audio)
    C = n_pseudo_classes(cfg.data.n_pseudo_classes, manifest)
    pre = load_checkpoint(pretrain_dir / "encoder.pt")
    encoder = _encoder_from(pre).to(device)
    if round_k == 1:
        with np.load(selflabel_dir / "pseudo_labels.npz") as npz:
            z, vids = npz["z"], [str(v) for v in npz["video_id"]]
        if vids != feats.video_ids:
            raise ValueError(
                f"{selflabel_dir}: pseudo-labels are for other videos than the training split"
            )
        ann = Annotator(2 * pre["encoder"]["d_model"], cfg.selflabel.hidden, C)
        ann.load_state_dict(load_checkpoint(selflabel_dir / "annotator.pt")["state_dict"])
        f = _annotator_input(representations(encoder, feats, 256, device), cfg)
        e_rows: list = []
    else:
        if previous_dir is None:
            raise ValueError(f"EM round {round_k} needs round {round_k - 1}'s folder (--previous)")
        z, ann, f, e_rows = _e_step(cfg, feats, encoder, previous_dir, round_k, seed, device, C)
    # heads initialised from the run seed and round, not from whatever ran before
    seed_everything(seed + 1000 * round_k)
    if cfg.em.init == "previous" and previous_dir is not None:
        loc = load_localizer(previous_dir / "localizer.pt", cfg, C)
    else:
        loc = Localizer(_encoder_from(pre), C, pre["encoder"]["heads"], cfg.em.dropout)
    hist = train_localizer(loc, feats, z, cfg.em, seed + 1000 * round_k, device)
    flipped = False
    if cfg.em.gamma_orientation == "separability":
        flipped = orient_gamma(loc.to(device), feats, z.argmax(1), 256, device)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "localizer.pt",
        loc.state_dict(),
        to_dict(cfg),
        seed=seed,
        round=round_k,
        visual_dim=pre["visual_dim"],
        audio_dim=pre["audio_dim"],
        encoder=pre["encoder"],
        n_classes=C,
    )
    save_checkpoint(
        out / "annotator.pt", ann.state_dict(), to_dict(cfg), seed=seed, round=round_k, n_classes=C
    )
    record_inputs(
        out,
        "clcl",
        manifest.dataset,
        (manifest.segment_hop, manifest.segment_win),
        {"visual": visual, "audio": audio},
        feats.norm.flat() if feats.norm is not None else None,
    )
    _save_labels(out, feats.video_ids, z)
    predicted = _write_predictions(manifest, visual, audio, loc, cfg, feats, z, f, device, out)
    hist.rows = [{"phase": "e_step", **r} for r in e_rows] + [
        {"phase": "m_step", **r} for r in hist.rows
    ]
    hist.write(out / "history.tsv")
    summary = {
        "seconds": time.perf_counter() - t0,
        "round": round_k,
        "missing_stream": predicted,
        "gamma_flipped": flipped,
        "n_pseudo_classes": C,
        "nonempty_pseudo_classes": int(len(np.unique(z.argmax(1)))),
        "seed": seed,
        **provenance(to_dict(cfg)),
    }
    atomic.write_json(out / "summary.json", summary)
    return summary


def _write_predictions(
    manifest: Manifest,
    visual: Path,
    audio: Path,
    loc: Localizer,
    cfg: EMStage,
    train_feats: VideoFeatures,
    z: np.ndarray,
    f: torch.Tensor,
    device: torch.device,
    out: Path,
) -> dict:
    """Localizer output for every present sample of every split, plus the E-step labels.

    Returns the videos left out for a missing stream, by split (:func:`by_split`)."""
    samples = [s for s in manifest.samples if s.present]
    train_feats.release()  # one budget for the stage: the training features are done
    feats = open_features(
        manifest,
        visual,
        audio,
        samples,
        _loading(cfg.data),
        train_feats.norm,
        name="predictions (all splits)",
    )
    missing = by_split(samples, feats.missing)
    kept = set(feats.video_ids)
    samples = [s for s in samples if s.video_id in kept]
    res = infer(loc, feats, 256, device)
    fg = foreground(res.gamma, res.mask, cfg.em.foreground_rule, cfg.em.relative_threshold)
    pseudo = res.video_scores.argmax(1)
    row = {v: i for i, v in enumerate(feats.video_ids)}
    r = np.asarray([row[s.video_id] for s in samples])
    train_row = {v: i for i, v in enumerate(train_feats.video_ids)}
    train = [s for s in samples if s.video_id in train_row]
    tr = np.asarray([train_row[s.video_id] for s in train])
    with atomic.atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            sample_id=np.asarray([s.sample_id for s in samples]),
            split=np.asarray([s.split for s in samples]),
            video_pseudo=pseudo[r],
            video_scores=res.video_scores[r],
            gamma=res.gamma[r],
            foreground=fg[r],
            n_pseudo_classes=np.int64(z.shape[1]),
            train_sample_id=np.asarray([s.sample_id for s in train]),
            train_pseudo_label=z.argmax(1)[tr],
            train_localizer_label=pseudo[np.asarray([row[s.video_id] for s in train])],
        )
    with atomic.atomic_path(out / "embeddings.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            sample_id=np.asarray([s.sample_id for s in train]),
            embedding=f.numpy()[tr],
            pseudo_label=z.argmax(1)[tr],
        )
    rows = timelines(
        feats.video_ids, pseudo, fg, res.segment_scores, manifest.segment_hop, manifest.segment_win
    )
    atomic.write_tsv(
        out / "timelines.tsv", ["video_id", "pseudo_class", "onset_s", "offset_s", "score"], rows
    )
    return missing
