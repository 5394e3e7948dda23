"""AVE-style synthetic videos and their annotations in the real AVE layout.

Each video holds ONE audible-and-visible event of one class over a contiguous
run of whole seconds ``[onset, offset)``; the other seconds are background
(clutter + noise).  With probability ``single_modality_background`` the class
also shows up in background seconds in one modality only (heard off-screen or
seen silently): still background by AVE's definition, and a trap for models
that use one modality.  A share ``background_only`` of the training videos has
no audio-visual event at all (AVE's weakly supervised training adds such videos,
labels_noisy.h5); their annotation line has StartTime = EndTime, and the class
may still be heard-only or seen-only somewhere in them.

Written files (the AVE.zip layout of YapengTian/AVE-ECCV18)::

    Annotations.txt     header + Category&VideoID&Quality&StartTime&EndTime, end exclusive
    trainSet.txt valSet.txt testSet.txt   the same lines, one split each
    categories.txt      class names, line = index (= order of first appearance)

Rows are grouped by class in class order, like the real file, so the AVE
adapter's first-appearance rule gives the same class indices as categories.txt
whenever every class has a video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avpipe.datasets.synthetic.classes import ClassSpec
from avpipe.datasets.synthetic.config import SPLITS, SyntheticConfig
from avpipe.datasets.synthetic.plan import Track, VideoPlan, video_id, video_seed
from avpipe.utils.atomic import write_text

HEADER = "Category&VideoID&Quality&StartTime&EndTime"
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}


def plan_video(cfg: SyntheticConfig, split: str, index: int) -> VideoPlan:
    """Class ``index mod C`` (balanced splits) and one random contiguous event.

    A background-only video keeps an empty event ``[0, 0)`` as its first visual track
    (its class names the annotation line); the draw deciding it is a stream of its own,
    so the other videos do not change with ``background_only``.
    """
    part, d = cfg.ave, cfg.duration_s
    seed = video_seed(cfg.seed, "ave", split, index)
    background = (
        split == "train"
        and part.background_only > 0
        and np.random.default_rng([seed, 1]).uniform() < part.background_only
    )
    rng = np.random.default_rng([seed, 0])
    c = index % cfg.n_classes
    length = int(rng.integers(part.min_event_s, (part.max_event_s or d) + 1))
    onset = int(rng.integers(0, d - length + 1))
    anchor = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.35, 0.65)))
    phase = float(rng.uniform())
    pan = 1.6 * (anchor[0] - 0.5)
    if background:
        onset, length = 0, 0
    event = Track(c, onset, onset + length, anchor, phase, pan)
    plan = VideoPlan(video_id(cfg.seed, "ave", split, index), split, seed, [event], [event])
    gaps = [(0, onset), (onset + length, d)]
    gaps = [(a, b) for a, b in gaps if b > a]
    if gaps and rng.uniform() < part.single_modality_background:
        a, b = gaps[int(rng.integers(len(gaps)))]
        n = int(rng.integers(1, b - a + 1))
        start = int(rng.integers(a, b - n + 1))
        extra = Track(c, start, start + n, anchor, phase, pan)
        (plan.audio if rng.uniform() < 0.5 else plan.visual).append(extra)
    return plan


def plan_split(cfg: SyntheticConfig, split: str) -> list[VideoPlan]:
    return [plan_video(cfg, split, i) for i in range(getattr(cfg.ave, split))]


def event_of(plan: VideoPlan) -> Track:
    """The audio-visual event (the first visual track, which the audio shares)."""
    return plan.visual[0]


def annotation_line(plan: VideoPlan, classes: list[ClassSpec]) -> str:
    ev = event_of(plan)
    return f"{classes[ev.class_index].name}&{plan.video_id}&good&{ev.onset}&{ev.offset}"


def write_annotations(
    root: Path, plans: dict[str, list[VideoPlan]], classes: list[ClassSpec]
) -> list[str]:
    """Write the AVE annotation files into ``root``; returns the file names written."""
    rows = [p for split in SPLITS for p in plans.get(split, [])]
    rank = {split: i for i, split in enumerate(SPLITS)}
    order = {id(p): n for n, p in enumerate(rows)}
    rows.sort(key=lambda p: (event_of(p).class_index, rank[p.split], order[id(p)]))
    lines = {p.video_id: annotation_line(p, classes) for p in rows}
    write_text(root / "Annotations.txt", "\n".join([HEADER, *lines.values()]) + "\n")
    for split, name in SPLIT_FILES.items():
        body = "".join(lines[p.video_id] + "\n" for p in rows if p.split == split)
        write_text(root / name, body)
    write_text(root / "categories.txt", "".join(c.name + "\n" for c in classes))
    return ["Annotations.txt", *SPLIT_FILES.values(), "categories.txt"]
