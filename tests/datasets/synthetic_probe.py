"""Hand features from decoded synthetic videos, for the learnability checks.

Per 1-s segment: a 64-bin colour histogram of the frames and 32 log-spaced
band energies of the audio (downmixed).  A logistic regression on these shows
that the classes are learnable and that the difficulty knobs bite.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from avpipe.datasets import ave


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames (N, H, W, 3) uint8, audio (C, S) float32 and its sample rate."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        sr = c.streams.audio[0].codec_context.sample_rate
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return frames, audio, sr


def segment_features(path: Path, fps: int, seconds: int) -> np.ndarray:
    """(seconds, 96) features: colour histogram (64) + audio band log-energies (32)."""
    frames, audio, sr = decode(path)
    mono = audio.mean(axis=0)
    edges = np.geomspace(100, 8000, 33)
    out = []
    for s in range(seconds):
        q = frames[s * fps : (s + 1) * fps] // 64
        codes = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel()
        hist = np.bincount(codes, minlength=64) / codes.size
        spec = np.abs(np.fft.rfft(mono[s * sr : (s + 1) * sr])) ** 2
        f = np.fft.rfftfreq(sr, 1.0 / sr)
        bands = [
            spec[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        out.append(np.concatenate([np.sqrt(hist), np.log(np.asarray(bands) + 1e-6)]))
    return np.stack(out)


def ave_foreground_accuracy(root: Path, fps: int, seconds: int) -> tuple[float, float, int]:
    """Fit on train foreground seconds, score on val+test ones: (accuracy, chance, n_test)."""
    m = ave.load({"format": "ave", "root": str(root), "classes_file": "categories.txt"})
    index = m.class_index
    events = {e.sample_id: e for e in m.events}
    data: dict[bool, tuple[list, list]] = {True: ([], []), False: ([], [])}
    for s in m.samples:
        ev = events[s.sample_id]
        feats = segment_features(Path(s.path), fps, seconds)
        xs, ys = data[s.split == "train"]
        for t in range(int(ev.onset), int(ev.offset)):
            xs.append(feats[t])
            ys.append(index[ev.label])
    (x_tr, y_tr), (x_te, y_te) = data[True], data[False]
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x_tr), y_tr)
    acc = float((clf.predict(scaler.transform(x_te)) == np.asarray(y_te)).mean())
    return acc, 1.0 / len(m.classes), len(y_te)
