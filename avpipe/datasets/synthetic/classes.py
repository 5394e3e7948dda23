"""The built-in classes of the synthetic dataset: a visual and an audio signature each.

Every class differs from the others in at least two visual cues (shape, colour,
texture, motion) and two audio cues (pitch, timbre, rhythm), so that a model
can tell them apart from either modality alone.  ``n_classes`` takes the first
entries of :data:`CLASS_BANK`; ``similarity`` (0..1) pulls colours towards grey
and pitches towards a common 500 Hz, which makes classes harder to separate.

Names avoid ``&`` (AVE field separator) and ``,`` (LLP label separator).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SHAPES = ("disc", "square", "triangle", "ring", "cross", "diamond", "bar", "xshape")
TEXTURES = ("solid", "hstripes", "vstripes", "checker", "dots")
MOTIONS = ("static", "hosc", "vosc", "circle", "pulse", "blink", "jitter", "drift")
TIMBRES = ("sine", "square", "saw", "noise", "bell")
PITCH_MODS = ("none", "vibrato", "siren", "chirp")

MEAN_PITCH_HZ = 500.0
GREY = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class ClassSpec:
    """One class.  Visual: shape, RGB colour (0-255), texture, motion.

    Audio: fundamental ``pitch_hz``; ``timbre`` (waveform or noise band centred on
    the pitch); rhythm = on/off pulses at ``pulse_hz`` with duty cycle ``duty``
    (``pulse_hz`` 0 = continuous) and an exponential ``decay`` inside each pulse;
    ``pitch_mod`` with rate ``mod_hz`` and relative depth ``mod_depth``.
    """

    name: str
    shape: str
    colour: tuple[float, float, float]
    texture: str
    motion: str
    pitch_hz: float
    timbre: str
    pulse_hz: float
    duty: float
    decay: float
    pitch_mod: str
    mod_hz: float
    mod_depth: float

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.shape, SHAPES, "shape"),
            (self.texture, TEXTURES, "texture"),
            (self.motion, MOTIONS, "motion"),
            (self.timbre, TIMBRES, "timbre"),
            (self.pitch_mod, PITCH_MODS, "pitch_mod"),
        ):
            if value not in allowed:
                raise ValueError(f"class {self.name}: {what} {value!r} not in {allowed}")


def _c(name: str, visual: tuple, audio: tuple) -> ClassSpec:
    return ClassSpec(name, *visual, *audio)


# fmt: off
# name, (shape, colour, texture, motion),
#       (pitch_hz, timbre, pulse_hz, duty, decay, pitch_mod, mod_hz, mod_depth)
CLASS_BANK: tuple[ClassSpec, ...] = (
    _c("Chime",   ("disc", (230, 40, 40), "solid", "static"),
        (523.0, "sine", 2.0, 0.6, 3.0, "none", 0.0, 0.0)),
    _c("Buzzer",  ("square", (40, 210, 60), "solid", "hosc"),
        (220.0, "square", 0.0, 1.0, 0.0, "none", 0.0, 0.0)),
    _c("Whistle", ("triangle", (50, 90, 240), "hstripes", "vosc"),
        (1400.0, "sine", 0.0, 1.0, 0.0, "vibrato", 6.0, 0.03)),
    _c("Drum",    ("ring", (240, 220, 40), "solid", "pulse"),
        (150.0, "noise", 4.0, 0.25, 12.0, "none", 0.0, 0.0)),
    _c("Siren",   ("bar", (220, 50, 220), "vstripes", "drift"),
        (700.0, "saw", 0.0, 1.0, 0.0, "siren", 0.8, 0.35)),
    _c("Clicker", ("diamond", (40, 220, 230), "checker", "blink"),
        (3000.0, "noise", 10.0, 0.1, 30.0, "none", 0.0, 0.0)),
    _c("Organ",   ("cross", (250, 140, 30), "solid", "static"),
        (330.0, "saw", 0.0, 1.0, 0.0, "none", 0.0, 0.0)),
    _c("Bird",    ("xshape", (245, 245, 245), "dots", "circle"),
        (2600.0, "sine", 3.0, 0.5, 0.0, "vibrato", 14.0, 0.08)),
    _c("Hum",     ("disc", (130, 40, 200), "vstripes", "drift"),
        (110.0, "saw", 0.0, 1.0, 0.0, "vibrato", 4.0, 0.02)),
    _c("Knock",   ("square", (150, 100, 60), "checker", "jitter"),
        (160.0, "sine", 2.5, 0.15, 20.0, "none", 0.0, 0.0)),
    _c("Bell",    ("diamond", (30, 150, 140), "solid", "hosc"),
        (880.0, "bell", 1.0, 0.9, 2.5, "none", 0.0, 0.0)),
    _c("Rattle",  ("ring", (250, 130, 180), "dots", "jitter"),
        (5000.0, "noise", 16.0, 0.5, 0.0, "chirp", 0.5, 0.2)),
)
# fmt: on


def make_classes(n_classes: int, similarity: float = 0.0) -> list[ClassSpec]:
    """The first ``n_classes`` bank entries with colours and pitches pulled together.

    ``similarity`` 0 keeps the bank values; 1 makes every colour grey and every
    pitch 500 Hz (shape, texture, motion, timbre and rhythm still differ).
    """
    if not 1 <= n_classes <= len(CLASS_BANK):
        raise ValueError(f"n_classes {n_classes} outside 1..{len(CLASS_BANK)}")
    out = []
    for spec in CLASS_BANK[:n_classes]:
        colour = tuple(c + similarity * (g - c) for c, g in zip(spec.colour, GREY, strict=True))
        pitch = math.exp(
            math.log(spec.pitch_hz)
            + similarity * (math.log(MEAN_PITCH_HZ) - math.log(spec.pitch_hz))
        )
        out.append(dataclasses.replace(spec, colour=colour, pitch_hz=pitch))
    return out
