"""Per-video event timelines from a model's segment decisions: TSV, JSON and PNG.

An event is a maximal run of segments where a class holds with one modality:
``audio`` (heard, not seen), ``visual`` (seen, not heard) or ``audio-visual`` (both;
PSP/CPSP and the CLCL localizer decide one audio-visual label per segment).  Segment
t covers ``[t * hop, t * hop + window)``, so a run of segments ``a..b`` is the event
``[a * hop, b * hop + window)``, as in the CLCL stage's own ``timelines.tsv``.  Score:
the mean over the run of the segment confidence of that class (audio-visual from two
lanes: the mean of the audio and visual confidences).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avpipe.localize.models import AUDIO, AV, VISUAL, Decisions
from avpipe.utils import atomic

COLUMNS = ["video", "class", "modality", "onset_s", "offset_s", "score"]
# per (segment, class): 1 audio only, 2 visual only, 3 both
_CODES = {1: AUDIO, 2: VISUAL, 3: AV}


@dataclass(frozen=True)
class Event:
    video: str
    label: str
    modality: str
    onset_s: float
    offset_s: float
    score: float

    def row(self) -> list[object]:
        return [self.video, self.label, self.modality, self.onset_s, self.offset_s, self.score]

    def as_dict(self) -> dict[str, object]:
        return dict(zip(COLUMNS, self.row(), strict=True))


def _codes(d: Decisions, i: int, n: int) -> np.ndarray:
    """(n, C) int: which modality each class holds with on each segment of video ``i``."""
    if AV in d.lanes:
        return d.lanes[AV][i, :n].astype(np.int8) * 3
    return d.lanes[AUDIO][i, :n].astype(np.int8) + 2 * d.lanes[VISUAL][i, :n].astype(np.int8)


def _confidence(d: Decisions, i: int, n: int, code: int) -> np.ndarray:
    if AV in d.scores:
        return d.scores[AV][i, :n]
    if code == 3:
        return (d.scores[AUDIO][i, :n] + d.scores[VISUAL][i, :n]) / 2
    return d.scores[AUDIO if code == 1 else VISUAL][i, :n]


def events(d: Decisions, video_ids: list[str], hop: float, win: float) -> list[Event]:
    """Every event of every video, by video, onset, class."""
    out: list[Event] = []
    for i, vid in enumerate(video_ids):
        n = int(d.n_segments[i])
        codes = _codes(d, i, n)
        found = []
        for c in range(codes.shape[1]):
            col, t = codes[:, c], 0
            while t < n:
                if not col[t]:
                    t += 1
                    continue
                start, code = t, int(col[t])
                while t < n and col[t] == code:
                    t += 1
                score = float(_confidence(d, i, n, code)[start:t, c].mean())
                found.append((start, c, code, t, score))
        for start, c, code, stop, score in sorted(found):
            out.append(
                Event(
                    vid,
                    d.classes[c],
                    _CODES[code],
                    round(start * hop, 3),
                    round((stop - 1) * hop + win, 3),
                    round(score, 4),
                )
            )
    return out


def write_tables(out: Path, evs: list[Event], meta: dict[str, object]) -> None:
    """``timelines.tsv`` (one row per event) and ``timelines.json`` (``meta`` + events)."""
    atomic.write_tsv(out / "timelines.tsv", COLUMNS, [e.row() for e in evs])
    atomic.write_json(out / "timelines.json", {**meta, "events": [e.as_dict() for e in evs]})


def draw(
    out: Path, d: Decisions, i: int, video: str, hop: float, title: str, dpi: int = 100
) -> Path:
    """The video's predicted lanes as the report draws its timelines
    (:func:`avpipe.report.figures.draw_lanes`), one colour per class."""
    import matplotlib.pyplot as plt

    from avpipe.report.figures import class_colors, draw_lanes

    n = max(int(d.n_segments[i]), 1)
    lanes = [(f"predicted · {k}", v[i, :n]) for k, v in d.lanes.items()]
    colors = class_colors(len(d.classes))
    fig, ax = plt.subplots(1, 1, figsize=(8, 0.45 * len(lanes) + 1.1))
    used = draw_lanes(ax, lanes, colors, hop)
    ax.set_xlim(0, n * hop)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{video}\n{title}", fontsize=8, loc="left")
    if used:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in sorted(used)]
        fig.legend(handles, [d.classes[c] for c in sorted(used)], loc="upper right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    path = out / "timelines" / f"{video}.png"
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path
