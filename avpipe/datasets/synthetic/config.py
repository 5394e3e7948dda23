"""Typed config of the synthetic generator and its presets.

``config/config.yaml: synthetic`` (schema ``workflow/schemas/synthetic.schema.yaml``)
names a ``preset`` and may override any of its values; a key left ``null`` takes
the preset's value.  :func:`resolve` merges the two and returns a frozen
:class:`SyntheticConfig`; unknown keys raise :class:`avpipe.config.ConfigError`
naming the key.

Presets:

``default``    6 classes, AVE 24/12/12 and LLP 24/12/12 videos (train/val/test);
               the embedded default dataset of the whole study.
``smoke``      3 classes, 6/3/3 videos per part; for tests.
``benchmark``  8 classes, AVE 240/60/120 (30 % of the training videos background-only, the
               class heard-only or seen-only in the background of every video with a
               background second) and LLP 240/60/120, harder than the default; the
               ``benchmark`` study (config/benchmark.yaml, ``snakemake benchmark``).
``hard``       default sizes with similar classes, strong noise and many distractors,
               so that scores land well below 100 %.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from avpipe.config import ConfigError, from_dict

PARTS = ("ave", "llp")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Difficulty:
    """Knobs that make the task harder; all 0 = clean renders.

    visual_noise: std of per-pixel Gaussian noise, on the 0-255 scale.
    audio_snr_db: level of every event sound over the background noise, dB.
    distractors: number of moving clutter shapes in every frame.
    distractor_sounds: random short tone blips per 10 s of audio.
    similarity: 0..1; pulls class colours and pitches towards a common mean.
    object_scale: object radius as a fraction of the frame height.
    """

    visual_noise: float
    audio_snr_db: float
    distractors: int
    distractor_sounds: int
    similarity: float
    object_scale: float


@dataclass(frozen=True)
class AvePart:
    """AVE-style videos: one audio-visual event over a contiguous run of whole seconds.

    single_modality_background: probability that a video also shows the event class
    in background seconds with only one modality (audible-only or visible-only),
    which is still background in AVE's sense.
    background_only: share of the TRAINING videos with no audio-visual event at all, like
    the background-only videos of AVE's weakly supervised training set (labels_noisy.h5);
    their annotation line has an empty event (StartTime = EndTime), which the AVE adapter
    keeps as all background and the weak setting reads as "no event class".
    """

    train: int
    val: int
    test: int
    min_event_s: int
    max_event_s: int | None  # None = duration_s
    single_modality_background: float
    background_only: float


@dataclass(frozen=True)
class LlpPart:
    """LLP-style videos: several events, each audio-only, visual-only or both.

    max_classes: most distinct classes in one video (at least 1).
    p_audio_only / p_visual_only: modality probabilities; the rest are audio-visual.
    p_av_misaligned: probability that an audio-visual event's visual interval has
    its own onset/offset instead of the audio one's.
    """

    train: int
    val: int
    test: int
    max_classes: int
    min_event_s: int
    p_audio_only: float
    p_visual_only: float
    p_av_misaligned: float


@dataclass(frozen=True)
class SyntheticConfig:
    preset: Literal["default", "smoke", "benchmark", "hard"]
    seed: int
    n_classes: int
    duration_s: int
    width: int
    height: int
    fps: int
    sample_rate: int
    channels: int
    crf: int
    audio_bitrate: int
    difficulty: Difficulty
    ave: AvePart
    llp: LlpPart

    def part(self, name: str) -> AvePart | LlpPart:
        if name not in PARTS:
            raise ConfigError(f"synthetic: unknown part {name!r}; known parts: {', '.join(PARTS)}")
        return getattr(self, name)

    def check(self) -> None:
        from avpipe.datasets.synthetic.classes import CLASS_BANK

        if not 1 <= self.n_classes <= len(CLASS_BANK):
            raise ConfigError(
                f"synthetic.n_classes: {self.n_classes} is outside 1..{len(CLASS_BANK)} "
                "(the built-in class bank)"
            )
        if self.duration_s < 1 or self.fps < 1:
            raise ConfigError("synthetic.duration_s and synthetic.fps must be >= 1")
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            raise ConfigError(
                f"synthetic.width/height: {self.width}x{self.height} "
                "must be even and >= 16 (H.264 4:2:0)"
            )
        if self.channels not in (1, 2):
            raise ConfigError(f"synthetic.channels: {self.channels}, expected 1 or 2")
        if not 0.0 <= self.difficulty.similarity <= 1.0:
            raise ConfigError(
                f"synthetic.difficulty.similarity: {self.difficulty.similarity} not in [0, 1]"
            )
        ave, llp = self.ave, self.llp
        if not 0.0 <= ave.background_only <= 1.0:
            raise ConfigError(f"synthetic.ave.background_only: {ave.background_only} not in [0, 1]")
        if not 1 <= ave.min_event_s <= (ave.max_event_s or self.duration_s) <= self.duration_s:
            raise ConfigError(
                f"synthetic.ave: need 1 <= min_event_s ({ave.min_event_s}) <= max_event_s "
                f"({ave.max_event_s}) <= duration_s ({self.duration_s})"
            )
        if not 1 <= llp.min_event_s <= self.duration_s:
            raise ConfigError(
                f"synthetic.llp.min_event_s: {llp.min_event_s} not in 1..{self.duration_s}"
            )
        if llp.max_classes < 1:
            raise ConfigError(f"synthetic.llp.max_classes: {llp.max_classes}, expected >= 1")
        if (
            llp.p_audio_only + llp.p_visual_only > 1.0
            or min(llp.p_audio_only, llp.p_visual_only) < 0
        ):
            raise ConfigError("synthetic.llp: p_audio_only + p_visual_only must lie in [0, 1]")
        for part in (ave, llp):
            for split in SPLITS:
                if getattr(part, split) < 0:
                    raise ConfigError(f"synthetic: negative number of {split} videos")


_DEFAULT: dict[str, Any] = {
    "preset": "default",
    "seed": 0,
    "n_classes": 6,
    "duration_s": 10,
    "width": 128,
    "height": 96,
    "fps": 16,
    "sample_rate": 44100,
    "channels": 2,
    "crf": 26,
    "audio_bitrate": 64000,
    "difficulty": {
        "visual_noise": 12.0,
        "audio_snr_db": 6.0,
        "distractors": 3,
        "distractor_sounds": 4,
        "similarity": 0.2,
        "object_scale": 0.16,
    },
    "ave": {
        "train": 24,
        "val": 12,
        "test": 12,
        "min_event_s": 2,
        "max_event_s": None,
        "single_modality_background": 0.2,
        "background_only": 0.0,
    },
    "llp": {
        "train": 24,
        "val": 12,
        "test": 12,
        "max_classes": 3,
        "min_event_s": 2,
        "p_audio_only": 0.25,
        "p_visual_only": 0.25,
        "p_av_misaligned": 0.3,
    },
}

# Each preset = the default with these values replaced.
_PRESET_CHANGES: dict[str, dict[str, Any]] = {
    "default": {},
    "smoke": {
        "n_classes": 3,
        "ave": {"train": 6, "val": 3, "test": 3},
        "llp": {"train": 6, "val": 3, "test": 3, "max_classes": 2},
    },
    # sizes and difficulty of the benchmark study: 5 seeds fit in an hour on 2 CPU cores
    "benchmark": {
        "n_classes": 8,
        "difficulty": {
            "visual_noise": 18.0,
            "audio_snr_db": 0.0,
            "distractors": 5,
            "distractor_sounds": 8,
            "similarity": 0.4,
            "object_scale": 0.14,
        },
        "ave": {
            "train": 240,
            "val": 60,
            "test": 120,
            # one-modality class seconds are where fully supervised models err (seed 0 of
            # 0.35: 42 % of them wrong, 1-2 % of other background seconds): in every video
            # with a background second, so that full rows leave the ceiling (94-95 % at 0.35)
            "single_modality_background": 1.0,
            # more negatives for the weak background column (48 of 240 at 0.2)
            "background_only": 0.3,
        },
        "llp": {"train": 240, "val": 60, "test": 120},
    },
    "hard": {
        "difficulty": {
            "visual_noise": 25.0,
            "audio_snr_db": -8.0,
            "distractors": 8,
            "distractor_sounds": 12,
            "similarity": 0.6,
            "object_scale": 0.13,
        },
        "ave": {"single_modality_background": 0.5},
    },
}
PRESETS = tuple(_PRESET_CHANGES)


def _merge(base: dict[str, Any], changes: dict[str, Any], where: str) -> dict[str, Any]:
    """``base`` with the non-null values of ``changes`` put in (recursively)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            continue
        if key not in base:
            raise ConfigError(
                f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(base))}"
            )
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def preset_values(name: str) -> dict[str, Any]:
    """The full value dict of preset ``name``."""
    if name not in _PRESET_CHANGES:
        raise ConfigError(f"synthetic.preset: {name!r} is not one of {list(PRESETS)}")
    values = _merge(_DEFAULT, _PRESET_CHANGES[name], "synthetic")
    values["preset"] = name
    return values


def resolve(raw: dict[str, Any] | None = None, **changes: Any) -> SyntheticConfig:
    """Preset values overridden by the non-null keys of ``raw`` (and ``changes``).

    ``raw`` is the ``synthetic`` section (or the slice one rule passes); a part
    section may be absent, it then takes the preset's values.
    """
    raw = _merge_plain(dict(raw or {}), changes)
    preset = raw.get("preset") or "default"
    values = _merge(preset_values(preset), raw, "synthetic")
    cfg = from_dict(SyntheticConfig, values, where="synthetic")
    cfg.check()
    return cfg


def _merge_plain(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = _merge_plain(dict(raw[key]), value)
        else:
            raw[key] = value
    return raw
