"""What a synthetic video contains (tracks) and its stable id and seed.

A video's id and seed are hashes of (seed, part, split, index) only, so raising
the number of videos of a split appends new videos and leaves the existing
ones, their files and their annotation lines unchanged.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

ID_LEN = 11  # YouTube-style ids, as AVE and LLP use; may contain '-' and '_'


@dataclass(frozen=True)
class Track:
    """A class seen (visual track) or heard (audio track) over whole seconds ``[onset, offset)``.

    anchor: centre of the object's path as fractions of (width, height);
    phase: 0..1, offsets its motion and rhythm; pan: -1 (left) .. 1 (right).
    """

    class_index: int
    onset: int
    offset: int
    anchor: tuple[float, float] = (0.5, 0.5)
    phase: float = 0.0
    pan: float = 0.0


@dataclass
class VideoPlan:
    """One video: id, split, seed of its random draws, and its tracks."""

    video_id: str
    split: str
    seed: int
    visual: list[Track] = field(default_factory=list)
    audio: list[Track] = field(default_factory=list)
    filename: str = ""  # LLP only: <video_id>_<start>_<end>


def _digest(seed: int, part: str, split: str, index: int) -> bytes:
    key = f"avpipe-synthetic/{seed}/{part}/{split}/{index}".encode()
    return hashlib.blake2b(key, digest_size=16).digest()


def video_id(seed: int, part: str, split: str, index: int) -> str:
    """An 11-character URL-safe base64 id (alphabet of YouTube ids)."""
    return base64.urlsafe_b64encode(_digest(seed, part, split, index)).decode()[:ID_LEN]


def video_seed(seed: int, part: str, split: str, index: int) -> int:
    """The 64-bit seed of every random draw of one video."""
    return int.from_bytes(_digest(seed, part, split, index)[8:], "little")
