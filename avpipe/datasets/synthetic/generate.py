"""Generate one part (``ave`` or ``llp``) of the synthetic dataset into a folder.

Layout of ``out_dir`` (``results/synthetic/<part>/``)::

    videos/<video_id>.mp4     H.264 + AAC (44.1 kHz stereo by default)
    <annotation files>        the real AVE or LLP files (see ave.py / llp.py)
    truth.tsv                 every track of every split: video_id filename split label
                              modality onset_s offset_s (LLP's train split has no dense
                              labels in the real format; tests and diagnostics use this)
    synthetic.json            resolved config, class signatures, counts, provenance

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from types import ModuleType

from avpipe.config import ConfigError, to_dict
from avpipe.datasets.synthetic import ave, llp
from avpipe.datasets.synthetic.classes import ClassSpec, make_classes
from avpipe.datasets.synthetic.config import PARTS, SPLITS, SyntheticConfig
from avpipe.datasets.synthetic.plan import VideoPlan
from avpipe.datasets.synthetic.render import render_audio, render_frames
from avpipe.datasets.synthetic.write import write_mp4
from avpipe.utils.atomic import atomic_path, write_json, write_text
from avpipe.utils.provenance import provenance

log = logging.getLogger(__name__)

FORMATS: dict[str, ModuleType] = {"ave": ave, "llp": llp}
TRUTH_COLUMNS = ("video_id", "filename", "split", "label", "modality", "onset_s", "offset_s")


def plan_part(cfg: SyntheticConfig, part: str) -> dict[str, list[VideoPlan]]:
    """Plans of every split; ids must be unique even on case-insensitive file systems."""
    if part not in PARTS:
        raise ConfigError(f"synthetic: unknown part {part!r}; known parts: {', '.join(PARTS)}")
    plans = {split: FORMATS[part].plan_split(cfg, split) for split in SPLITS}
    seen: dict[str, str] = {}
    for p in (p for split in SPLITS for p in plans[split]):
        key = p.video_id.lower()
        if key in seen:
            raise ConfigError(
                f"synthetic.seed {cfg.seed}: video ids {seen[key]!r} and {p.video_id!r} collide; "
                "choose another seed"
            )
        seen[key] = p.video_id
    return plans


def truth_rows(plans: dict[str, list[VideoPlan]], classes: list[ClassSpec]) -> list[str]:
    rows = ["\t".join(TRUTH_COLUMNS)]
    for split in SPLITS:
        for p in plans[split]:
            for modality, tracks in (("audio", p.audio), ("visual", p.visual)):
                for t in sorted(tracks, key=lambda t: (t.class_index, t.onset)):
                    if t.offset <= t.onset:  # the empty event of a background-only video
                        continue
                    name = classes[t.class_index].name
                    fields = (p.video_id, p.filename or p.video_id, split, name, modality)
                    rows.append("\t".join([*fields, str(t.onset), str(t.offset)]))
    return rows


def render_video(
    cfg: SyntheticConfig, classes: list[ClassSpec], plan: VideoPlan, path: Path
) -> None:
    frames = render_frames(cfg, classes, plan)
    audio = render_audio(cfg, classes, plan)
    write_mp4(path, frames, audio, cfg.fps, cfg.sample_rate, cfg.crf, cfg.audio_bitrate)


def generate(cfg: SyntheticConfig, part: str, out_dir: str | Path) -> dict:
    """Write part ``part`` into ``out_dir``; returns the summary also stored in synthetic.json."""
    t0 = time.perf_counter()
    classes = make_classes(cfg.n_classes, cfg.difficulty.similarity)
    plans = plan_part(cfg, part)
    total = sum(len(v) for v in plans.values())
    with atomic_path(out_dir, directory=True) as tmp:
        videos = tmp / "videos"
        videos.mkdir()
        done = 0
        for split in SPLITS:
            for p in plans[split]:
                render_video(cfg, classes, p, videos / f"{p.video_id}.mp4")
                done += 1
                if done % 25 == 0 or done == total:
                    log.info(
                        "%s: %d/%d videos (%.1f s)", part, done, total, time.perf_counter() - t0
                    )
        files = FORMATS[part].write_annotations(tmp, plans, classes)
        write_text(tmp / "truth.tsv", "\n".join(truth_rows(plans, classes)) + "\n")
        summary = {
            "part": part,
            "videos": {split: len(plans[split]) for split in SPLITS},
            "annotation_files": files,
            "classes": [dataclasses.asdict(c) for c in classes],
            "config": to_dict(cfg),
            "seconds": round(time.perf_counter() - t0, 2),
            "provenance": provenance(to_dict(cfg)),
        }
        write_json(tmp / "synthetic.json", summary)
    log.info("%s: %d videos in %.1f s -> %s", part, total, summary["seconds"], out_dir)
    return summary
