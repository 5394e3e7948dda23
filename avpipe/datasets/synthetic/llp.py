"""LLP-style synthetic videos and their annotations in the real LLP (AVVP) layout.

Each video holds 1..``max_classes`` classes; each class is audio-only,
visual-only or audio-visual (``p_audio_only``, ``p_visual_only``, the rest),
with its own onset and offset in whole seconds.  An audio-visual event's visual
interval equals the audio one, except with probability ``p_av_misaligned``,
where it is drawn on its own (LLP annotates the two modalities separately).

Written files (the YapengTian/AVVP-ECCV20 ``data/*.csv`` layout, TAB-separated, with header)::

    AVVP_train.csv AVVP_val_pd.csv AVVP_test_pd.csv   filename, event_labels (weak, comma-joined)
    AVVP_dataset_full.csv                               the three splits together
    AVVP_eval_audio.csv AVVP_eval_visual.csv            filename, onset, offset, event_labels
                                                        (dense, val + test, offset exclusive)
    categories.txt                                      class names, line = index

``filename = <11-char id>_<start>_<end>``, like LLP's ``<ytid>_<start>_<end>``;
the weak label of a video is the union of its dense classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avpipe.datasets.synthetic.classes import ClassSpec
from avpipe.datasets.synthetic.config import SPLITS, SyntheticConfig
from avpipe.datasets.synthetic.plan import Track, VideoPlan, video_id, video_seed
from avpipe.utils.atomic import write_text

WEAK_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
FULL_FILE = "AVVP_dataset_full.csv"
DENSE_FILES = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
WEAK_HEADER = "filename\tevent_labels"
DENSE_HEADER = "filename\tonset\toffset\tevent_labels"
# Object positions, far enough apart that concurrent objects rarely cover each other.
SLOTS = ((0.25, 0.3), (0.75, 0.3), (0.25, 0.7), (0.75, 0.7), (0.5, 0.5))


def _interval(rng: np.random.Generator, min_len: int, duration: int) -> tuple[int, int]:
    length = int(rng.integers(min_len, duration + 1))
    onset = int(rng.integers(0, duration - length + 1))
    return onset, onset + length


def plan_video(cfg: SyntheticConfig, split: str, index: int) -> VideoPlan:
    """Classes: ``index mod C`` first (every class occurs), then random distinct others."""
    part, d, n_cls = cfg.llp, cfg.duration_s, cfg.n_classes
    seed = video_seed(cfg.seed, "llp", split, index)
    rng = np.random.default_rng([seed, 0])
    vid = video_id(cfg.seed, "llp", split, index)
    start = int(rng.integers(0, 300))
    plan = VideoPlan(vid, split, seed, filename=f"{vid}_{start}_{start + d}")
    k = int(rng.integers(1, min(part.max_classes, n_cls) + 1))
    first = index % n_cls
    others = [c for c in rng.permutation(n_cls).tolist() if c != first]
    slots = rng.permutation(len(SLOTS)).tolist()
    for j, c in enumerate([first, *others[: k - 1]]):
        anchor = SLOTS[slots[j % len(SLOTS)]]
        phase = float(rng.uniform())
        u = rng.uniform()
        audible = u < part.p_audio_only or u >= part.p_audio_only + part.p_visual_only
        visible = u >= part.p_audio_only
        on, off = _interval(rng, part.min_event_s, d)
        if audible:
            pan = 1.6 * (anchor[0] - 0.5) if visible else float(rng.uniform(-1, 1))
            plan.audio.append(Track(c, on, off, anchor, phase, pan))
        if visible:
            if audible and rng.uniform() < part.p_av_misaligned:
                on, off = _interval(rng, part.min_event_s, d)
            plan.visual.append(Track(c, on, off, anchor, phase))
    return plan


def plan_split(cfg: SyntheticConfig, split: str) -> list[VideoPlan]:
    return [plan_video(cfg, split, i) for i in range(getattr(cfg.llp, split))]


def weak_labels(plan: VideoPlan, classes: list[ClassSpec]) -> list[str]:
    """Class names of the video in order of first occurrence (audio tracks, then visual)."""
    idx = dict.fromkeys(t.class_index for t in [*plan.audio, *plan.visual])
    return [classes[c].name for c in idx]


def write_annotations(
    root: Path, plans: dict[str, list[VideoPlan]], classes: list[ClassSpec]
) -> list[str]:
    """Write the LLP annotation files into ``root``; returns the file names written."""
    weak_lines = {}
    for split in SPLITS:
        weak_lines[split] = [
            f"{p.filename}\t{','.join(weak_labels(p, classes))}" for p in plans.get(split, [])
        ]
        write_text(root / WEAK_FILES[split], "\n".join([WEAK_HEADER, *weak_lines[split]]) + "\n")
    full = [line for split in SPLITS for line in weak_lines[split]]
    write_text(root / FULL_FILE, "\n".join([WEAK_HEADER, *full]) + "\n")
    for modality, name in DENSE_FILES.items():
        lines = [DENSE_HEADER]
        for split in ("val", "test"):
            for p in plans.get(split, []):
                tracks = sorted(
                    p.audio if modality == "audio" else p.visual, key=lambda t: t.class_index
                )
                lines += [
                    f"{p.filename}\t{t.onset}\t{t.offset}\t{classes[t.class_index].name}"
                    for t in tracks
                ]
        write_text(root / name, "\n".join(lines) + "\n")
    write_text(root / "categories.txt", "".join(c.name + "\n" for c in classes))
    return [*WEAK_FILES.values(), FULL_FILE, *DENSE_FILES.values(), "categories.txt"]
