"""Where segments and frames sit: the segment grid of a dataset, and a recipe's frame geometry.

The segment grid: segment ``t`` covers ``[t * hop_s, t * hop_s + window_s)``.

Every modality of every store sits on its dataset's grid (the manifest's
``segment_hop`` / ``segment_win``): 1-s segments for AVE, LLP and VGGSound-AVEL100k,
0.96-s windows every 0.32 s for UnAV-100 (its reference I3D and VGGish features:
24 frames at 25 fps, stride 8).  A visual recipe samples its frames uniformly inside
each window; VGGish takes its 0.96-s patch starting at each segment's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    hop_s: float = 1.0
    window_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.hop_s > 0 and self.window_s > 0):
            raise ValueError(f"segment grid needs hop and window > 0, got {self}")

    def starts(self, n_segments: int) -> np.ndarray:
        """Start time in seconds of each of ``n_segments`` segments."""
        return np.arange(n_segments) * self.hop_s

    def frame_times(self, segment: int, frames_per_segment: int) -> np.ndarray:
        """``frames_per_segment`` times spread uniformly over the segment's window, start-aligned.

        On the 1-s grid with 8 frames these are ``t + k / 8``: what ``ffmpeg -r 8`` gives for LLP.
        """
        step = self.window_s / frames_per_segment
        return segment * self.hop_s + np.arange(frames_per_segment) * step

    def as_attrs(self, placement: str = "segment") -> dict[str, float | str]:
        return {"hop_s": self.hop_s, "window_s": self.window_s, "placement": placement}


def crop_geometry(h: int, w: int, size: int, resize: str) -> tuple[int, int, int, int]:
    """(resized h, resized w, top, left) of a recipe's resize + centre crop to size x size.

    ``direct``: the whole frame to size x size (Keras ``target_size``; AVVP's R(2+1)D
    ``Resize((112, 112))``).  ``shorter_crop``: shorter side to floor(size / 0.875),
    aspect kept, centre crop (Cadene ``LoadTransformImage``, LLP's ResNet-152).
    """
    if resize == "direct":
        return size, size, 0, 0
    if resize != "shorter_crop":
        raise ValueError(f"unknown resize {resize!r} (direct | shorter_crop)")
    short = math.floor(size / 0.875)
    th, tw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    return th, tw, int(round((th - size) / 2.0)), int(round((tw - size) / 2.0))
