"""Render one synthetic video: RGB frames and multi-channel audio from a plan.

A :class:`VideoPlan` lists the *tracks* of a video: a class shown (visual track)
or heard (audio track) over whole seconds ``[onset, offset)``.  Frames are
``(N, H, W, 3) uint8`` with ``N = duration_s * fps``; audio is
``(channels, duration_s * sample_rate) float32`` in [-1, 1].

Every random draw comes from the plan's own seed, so a video depends only on
(config, classes, plan): adding videos to a split leaves the others unchanged.

Background, present in every second: a dark colour gradient with blocky
clutter, ``distractors`` moving ellipses/rectangles of random colours, per-pixel
Gaussian noise; pink noise at ``audio_snr_db`` below the event sounds plus
``distractor_sounds`` random tone blips.
"""

from __future__ import annotations

import math

import numpy as np

from avpipe.datasets.synthetic.classes import ClassSpec
from avpipe.datasets.synthetic.config import SyntheticConfig
from avpipe.datasets.synthetic.plan import Track, VideoPlan

EVENT_RMS = 0.1  # RMS of one sounding event; noise and blips are set relative to it
FADE_S = 0.005  # ramps at track edges avoid clicks that would leak into the next second


# -- video -------------------------------------------------------------------------
def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` in unit coordinates (radius 1, y pointing down)."""
    au, av_ = np.abs(u), np.abs(v)
    if shape == "disc":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(au, av_) <= 0.85
    if shape == "triangle":
        return (v >= -0.9) & (v <= 0.8) & (au <= (v + 0.9) * 0.56)
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.36)
    if shape == "cross":
        return ((au <= 0.3) & (av_ <= 1.0)) | ((av_ <= 0.3) & (au <= 1.0))
    if shape == "diamond":
        return au + av_ <= 1.0
    if shape == "bar":
        return (au <= 1.0) & (av_ <= 0.35)
    if shape == "xshape":
        return ((np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4)) & (np.maximum(au, av_) <= 0.8)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """0 (full colour) or 1 (darkened) per pixel, in the object's own coordinates."""
    if texture == "solid":
        return np.zeros_like(u)
    iu, iv = np.floor((u + 2.0) * 2.5), np.floor((v + 2.0) * 2.5)
    if texture == "hstripes":
        return iv % 2
    if texture == "vstripes":
        return iu % 2
    if texture == "checker":
        return (iu + iv) % 2
    if texture == "dots":
        fu, fv = (u * 2.5) % 1.0 - 0.5, (v * 2.5) % 1.0 - 0.5
        return (fu * fu + fv * fv > 0.08).astype(u.dtype)
    raise ValueError(f"unknown texture {texture!r}")


def _pose(spec: ClassSpec, track: Track, t: float, w: int, h: int, r: float, jitter: np.ndarray):
    """Centre (x, y), radius and visibility of a class object at time ``t`` seconds."""
    x, y = track.anchor[0] * w, track.anchor[1] * h
    ph = 2 * math.pi * track.phase
    amp_x, amp_y = 0.22 * w, 0.22 * h
    radius, visible = r, True
    m = spec.motion
    if m == "hosc":
        x += amp_x * math.sin(2 * math.pi * 0.5 * t + ph)
    elif m == "vosc":
        y += amp_y * math.sin(2 * math.pi * 0.5 * t + ph)
    elif m == "circle":
        x += 0.7 * amp_x * math.cos(2 * math.pi * 0.4 * t + ph)
        y += 0.7 * amp_y * math.sin(2 * math.pi * 0.4 * t + ph)
    elif m == "pulse":
        radius = r * (1.0 + 0.4 * math.sin(2 * math.pi * 1.5 * t + ph))
    elif m == "blink":
        visible = (3.0 * t + track.phase) % 1.0 < 0.6
    elif m == "jitter":
        x, y = x + jitter[0], y + jitter[1]
    elif m == "drift":
        tri = 2.0 * abs((0.15 * t + track.phase) % 1.0 - 0.5)  # triangle wave 0..1
        x = r + tri * (w - 2 * r)
    x = min(max(x, r), w - r)
    y = min(max(y, r), h - r)
    return x, y, radius, visible


def _paint(img: np.ndarray, x: float, y: float, r: float, shape: str, colour, texture: str) -> None:
    """Draw one object into ``img`` (H, W, 3 float32) inside its bounding box."""
    h, w, _ = img.shape
    x0, x1 = max(int(x - r) - 1, 0), min(int(x + r) + 2, w)
    y0, y1 = max(int(y - r) - 1, 0), min(int(y + r) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xx + 0.5 - x) / r, (yy + 0.5 - y) / r
    mask = _shape_mask(shape, u, v)
    shade = 1.0 - 0.55 * _texture(texture, u, v)
    patch = img[y0:y1, x0:x1]
    patch[mask] = (shade[..., None] * np.asarray(colour, np.float32))[mask]


def render_frames(cfg: SyntheticConfig, classes: list[ClassSpec], plan: VideoPlan) -> np.ndarray:
    """``(duration_s * fps, H, W, 3) uint8`` frames of one video."""
    rng = np.random.default_rng([plan.seed, 1])
    w, h, fps, d = cfg.width, cfg.height, cfg.fps, cfg.difficulty
    n = cfg.duration_s * fps
    lo, hi = rng.uniform(0, 70, size=(2, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    coarse = rng.uniform(-18, 18, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    clutter = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:h, :w]
    background = lo + (hi - lo) * ramp + clutter

    k = d.distractors
    d_pos = rng.uniform(0, 1, size=(k, 2)) * (w, h)
    d_vel = rng.uniform(-1, 1, size=(k, 2)) * (0.3 * w, 0.3 * h)  # px per second
    d_rad = rng.uniform(0.04, 0.12, size=k) * h
    d_col = rng.uniform(0, 255, size=(k, 3))
    d_shape = rng.choice(["disc", "square", "bar"], size=k)

    r = d.object_scale * h
    frames = np.empty((n, h, w, 3), np.uint8)
    jitter = rng.uniform(-0.04, 0.04, size=(n, 2)) * (w, h)
    noise_rng = np.random.default_rng([plan.seed, 2])
    for i in range(n):
        t = i / fps
        img = background.copy()
        for j in range(k):
            px, py = (d_pos[j] + d_vel[j] * t) % (w, h)
            _paint(img, px, py, d_rad[j], str(d_shape[j]), d_col[j], "solid")
        second = int(t)
        for tr in plan.visual:
            if tr.onset <= second < tr.offset:
                spec = classes[tr.class_index]
                x, y, rad, visible = _pose(spec, tr, t, w, h, r, jitter[i])
                if visible:
                    _paint(img, x, y, rad, spec.shape, spec.colour, spec.texture)
        if d.visual_noise > 0:
            img += noise_rng.standard_normal((h, w, 3), dtype=np.float32) * d.visual_noise
        np.clip(img, 0, 255, out=img)
        frames[i] = img.astype(np.uint8)
    return frames


# -- audio -------------------------------------------------------------------------
def _pink(rng: np.random.Generator, shape: tuple[int, int], sr: int) -> np.ndarray:
    """Unit-RMS 1/f noise, one independent row per channel."""
    white = rng.standard_normal(shape)
    spec = np.fft.rfft(white, axis=-1)
    f = np.fft.rfftfreq(shape[-1], 1.0 / sr)
    spec /= np.sqrt(np.maximum(f, 20.0))
    out = np.fft.irfft(spec, n=shape[-1], axis=-1)
    return out / (out.std(axis=-1, keepdims=True) + 1e-12)


def _band_noise(rng: np.random.Generator, n: int, sr: int, centre: float) -> np.ndarray:
    """White noise filtered to a Gaussian band around ``centre`` Hz (width 0.4 * centre)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.exp(-0.5 * ((f - centre) / (0.4 * centre)) ** 2)
    return np.fft.irfft(spec, n=n)


def _tone(
    spec: ClassSpec, t: np.ndarray, sr: int, phase: float, rng: np.random.Generator
) -> np.ndarray:
    """Unit-RMS waveform of a class at absolute times ``t`` (seconds), before its rhythm."""
    if spec.timbre == "noise":
        wave = _band_noise(rng, t.size, sr, spec.pitch_hz)
    else:
        f = np.full(t.size, spec.pitch_hz)
        mod = 2 * math.pi * spec.mod_hz * t + 2 * math.pi * phase
        if spec.pitch_mod in ("vibrato", "siren"):
            f = f * (1.0 + spec.mod_depth * np.sin(mod))
        elif spec.pitch_mod == "chirp":
            f = f * (1.0 + spec.mod_depth * (2.0 * ((spec.mod_hz * t + phase) % 1.0) - 1.0))
        ph = 2 * math.pi * np.cumsum(f) / sr
        if spec.timbre == "sine":
            wave = np.sin(ph)
        elif spec.timbre == "square":
            wave = sum(np.sin(k * ph) / k for k in (1, 3, 5, 7))
        elif spec.timbre == "saw":
            wave = sum((-1) ** (k + 1) * np.sin(k * ph) / k for k in range(1, 7))
        else:  # bell: inharmonic partials
            wave = sum(
                a * np.sin(p * ph) for p, a in ((1, 1.0), (2.76, 0.6), (5.4, 0.4), (8.93, 0.25))
            )
    return wave / (wave.std() + 1e-12)


def _rhythm(spec: ClassSpec, t: np.ndarray, phase: float) -> np.ndarray:
    if spec.pulse_hz <= 0:
        return np.ones_like(t)
    pos = (spec.pulse_hz * t + phase) % 1.0  # position inside the current pulse period
    return (pos < spec.duty) * np.exp(-spec.decay * pos / spec.pulse_hz)


def _edges(n: int, sr: int) -> np.ndarray:
    m = min(int(FADE_S * sr), n // 2)
    env = np.ones(n)
    if m > 0:
        ramp = np.linspace(0.0, 1.0, m)
        env[:m], env[n - m :] = ramp, ramp[::-1]
    return env


def _pan(pan: float, channels: int) -> np.ndarray:
    if channels == 1:
        return np.ones(1)
    a = (pan + 1.0) * math.pi / 4  # equal-power
    return np.array([math.cos(a), math.sin(a)]) * math.sqrt(2.0)


def render_audio(cfg: SyntheticConfig, classes: list[ClassSpec], plan: VideoPlan) -> np.ndarray:
    """``(channels, duration_s * sample_rate) float32`` audio of one video, peak <= 0.99."""
    rng = np.random.default_rng([plan.seed, 3])
    sr, ch, d = cfg.sample_rate, cfg.channels, cfg.difficulty
    n = cfg.duration_s * sr
    noise_rms = EVENT_RMS / 10 ** (d.audio_snr_db / 20)
    out = noise_rms * _pink(rng, (ch, n), sr)
    for tr in plan.audio:
        spec = classes[tr.class_index]
        s0, s1 = tr.onset * sr, tr.offset * sr
        if s1 <= s0:
            continue
        t = np.arange(s0, s1) / sr
        sig = (
            EVENT_RMS
            * _tone(spec, t, sr, tr.phase, rng)
            * _rhythm(spec, t, tr.phase)
            * _edges(s1 - s0, sr)
        )
        out[:, s0:s1] += _pan(tr.pan, ch)[:, None] * sig
    for _ in range(d.distractor_sounds):
        dur = int(rng.uniform(0.1, 0.5) * sr)
        start = int(rng.integers(0, n - dur))
        f0 = math.exp(rng.uniform(math.log(150), math.log(4000)))
        t = np.arange(dur) / sr
        blip = np.sin(2 * math.pi * f0 * t) + 0.3 * np.sin(4 * math.pi * f0 * t)
        blip *= 0.7 * EVENT_RMS * math.sqrt(2) * np.hanning(dur)
        out[:, start : start + dur] += _pan(rng.uniform(-1, 1), ch)[:, None] * blip
    peak = float(np.abs(out).max())
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)
