"""Weakly supervised AVVP data: LLP-recipe features + targets from the manifest.

Inputs per video (feature stores of ``avpipe extract``, one row per video):
    audio   ``vggish``         features (N, T, Da)            Da = 128
    frames  ``resnet152_llp``  frames (N, T, k, Df) or features (N, T, Df); Df = 2048, k = 8
    motion  ``r2plus1d18``     features (N, T, Dm)            Dm = 512
D, k and T are read from the stores (the synthetic default shrinks them).

Targets (LLP: YapengTian/AVVP-ECCV20 ``dataloader.py``; UnAV-100: avpipe's weak setting):
    ``labels`` (N, C): modality-agnostic video-level multi-hot labels, the training
        target (LLP weak labels; UnAV-100: the classes of its annotated events);
    ``dense_audio`` / ``dense_visual`` (N, T, C): per-modality segment labels of the
        dense annotations (val/test); audio-visual events count for both modalities.

The inputs come through the shared data contract (:mod:`avpipe.training.data`: one
memory budget for the job, streamed from Zarr when they do not fit, one standardisation).
Videos whose stores say they have no audio or no video stream (all-zero rows), and
videos without a segment (``no_segment``: UnAV-100 clips shorter than one window), are left
out of every split, training and evaluation alike (:mod:`avpipe.training.streams`):
HAN and CoLeaF attend across the two modalities and have no clean way to mask one, and
their weak labels do not say which modality an event is heard or seen in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avpipe.datasets.manifest import Manifest
from avpipe.io.store import FeatureStore
from avpipe.training.data import Input, Loading, Split, open_splits


@dataclass(frozen=True)
class Dims:
    audio: int
    frames: int
    motion: int
    frames_per_segment: int
    n_classes: int


def _collate(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-segment 2-D features (B, T, Df) become (B, T, 1, Df): one frame per segment."""
    if b["frames"].ndim == 3:
        b["frames"] = b["frames"].unsqueeze(2)
    return b


def _frames_input(path: Path, use_frames: bool) -> Input:
    """The per-frame array ``frames`` (N, T, k, Df) when used, else ``features`` (N, T, Df)."""
    store = FeatureStore(path)
    if not (use_frames and "frames" in store.group):
        return Input(path)
    if store.array("frames").ndim != 4:
        raise ValueError(
            f"{path}: frames has shape {store.array('frames').shape}, expected (N, T, k, Df) "
            "(stores written before the (video, segment, frame, channel) layout: re-extract)"
        )
    return Input(path, "frames")


def load(
    manifest: Manifest | str | Path,
    audio_store: str | Path,
    frames_store: str | Path,
    motion_store: str | Path,
    splits: tuple[str, ...] = ("train", "val", "test"),
    use_frames: bool = True,
    loading: Loading | None = None,
) -> tuple[Manifest, dict[str, Split], Dims]:
    """Manifest (``manifest``, or read from that folder), one
    :class:`~avpipe.training.data.Split` per split (present samples with
    every store and both streams; the others in ``Split.missing``) with the targets
    ``labels``, ``dense_audio`` and ``dense_visual``, and the input dimensions.

    Raises :class:`~avpipe.io.store.GridMismatchError` when a store is not on the
    manifest's segment grid."""
    if not isinstance(manifest, Manifest):
        manifest = Manifest.read(manifest)
    inputs = {
        "audio": Input(Path(audio_store)),
        "frames": _frames_input(Path(frames_store), use_frames),
        "motion": Input(Path(motion_store)),
    }
    samples = {name: [s for s in manifest.split(name) if s.present] for name in splits}
    out = open_splits(manifest, inputs, samples, loading or Loading(), collate=_collate)
    by_id = {s.sample_id: s for s in manifest.samples}
    for split in out.values():
        kept = [by_id[i] for i in split.sample_ids]
        weak = manifest.video_targets(kept, ("unspecified",))
        labels = np.where(weak.any(1, keepdims=True), weak, manifest.video_targets(kept))
        split.set_targets(
            labels=labels.astype(np.float32),
            dense_audio=manifest.segment_targets(
                kept, ("audio", "audio-visual"), n_segments=split.T
            ),
            dense_visual=manifest.segment_targets(
                kept, ("visual", "audio-visual"), n_segments=split.T
            ),
        )
    first = out[splits[0]]
    frames = first.shape("frames")
    dims = Dims(
        audio=first.shape("audio")[-1],
        frames=frames[-1],
        motion=first.shape("motion")[-1],
        frames_per_segment=frames[1] if len(frames) == 3 else 1,
        n_classes=len(manifest.classes),
    )
    return manifest, out, dims
