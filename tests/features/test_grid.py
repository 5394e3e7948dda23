"""Every window on the dataset's segment grid: a tone at the end of a 60-s clip lands in the
last segments, and on UnAV-100's grid (0.96-s windows every 0.32 s) a tone and a flash in
[3, 4) s land in exactly the segments whose windows cover them, in audio and vision alike."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avpipe.cli import main
from avpipe.datasets.manifest import Manifest, Sample
from avpipe.features import registry
from avpipe.features.base import Extractor, ExtractorSpec
from avpipe.io.grid import Grid
from avpipe.io.store import FeatureStore
from avpipe.stages import extract as extract_stage

RATE = 16000
TONE_RMS = np.sqrt(0.3**2 / 2)  # a 0.3-amplitude sine


def make_clip(path: Path, seconds: int, fps: int, event: tuple[float, float]) -> Path:
    """Black frames and silence, except white frames and a 440-Hz tone during ``event``."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for k in range(seconds * fps):
            on = event[0] <= k / fps < event[1]
            img = np.full((32, 32, 3), 255 if on else 0, np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        t = np.arange(seconds * RATE) / RATE
        sig = np.where((t >= event[0]) & (t < event[1]), 0.3 * np.sin(2 * np.pi * 440 * t), 0)
        pcm = (sig * 32767).astype(np.int16)
        for start in range(0, pcm.size, 4000):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 4000], "s16", "mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return path


class Probe(Extractor):
    """The real recipe's spec; the 'features' are the window's RMS or the frames' brightness."""

    def __init__(self, spec: ExtractorSpec, options: dict) -> None:
        self.spec = spec

    def to(self, device: torch.device) -> Probe:
        return self

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.spec.modality == "audio":
            value = batch.pow(2).mean(1).sqrt()
        else:
            value = batch.float().mean((1, 2, 3, 4)) / 255
        out = {"features": value[:, None].expand(-1, *self.spec.output_shape).clone()}
        for name, shape in self.spec.extra_outputs.items():
            out[name] = value[:, None, None].expand(-1, *shape).clone()
        return out


def extract(tmp_path: Path, clip: Path, grid: Grid, recipes: dict, monkeypatch) -> Path:
    monkeypatch.setattr(
        extract_stage,
        "build_extractor",
        lambda r, o, g: Probe(registry.spec_for(r, o, g), o),
    )
    Manifest(
        "g",
        "folder",
        [],
        [Sample("clip", "clip", "unlabeled", str(clip), 60.0, 1)],
        [],
        segment_hop=grid.hop_s,
        segment_win=grid.window_s,
    ).write(tmp_path / "manifest")
    cfg = {"recipes": recipes, "shards": 1, "device": "cpu", "batch_size": 8}
    out = tmp_path / "out"
    argv = ["extract", "shard", "--manifest", str(tmp_path / "manifest"), "--shard", "0"]
    assert main([*argv, "--config-json", json.dumps(cfg), "--out", str(out)]) == 0
    return out


def test_a_tone_in_the_last_two_seconds_of_60_lands_in_the_last_two_segments(
    tmp_path: Path, monkeypatch
) -> None:
    clip = make_clip(tmp_path / "long.mkv", 60, 2, (58.0, 60.0))
    out = extract(tmp_path, clip, Grid(1.0, 1.0), {"vggish": {}}, monkeypatch)
    s = FeatureStore(out / "vggish.zarr")
    rms = s.load()[0, :, 0]
    assert s.n_segments.tolist() == [60]
    # segment t's 0.975-s patch starts at t: 58 and 59 hold the tone, 57 does not
    # (with a 0.96-s hop, segment 59 would cover 56.64-57.60 s and miss it)
    np.testing.assert_allclose(rms[58:], TONE_RMS, rtol=0.02)
    assert rms[:58].max() < 1e-3
    assert s.attrs["grid"] == {"hop_s": 1.0, "window_s": 1.0, "placement": "segment"}


def test_tone_and_flash_on_the_unav100_grid(tmp_path: Path, monkeypatch) -> None:
    grid = Grid(0.32, 0.96)
    clip = make_clip(tmp_path / "flash.mkv", 6, 25, (3.0, 4.0))
    recipes = {"vggish": {}, "r2plus1d18": {"frames_per_segment": 3, "input_size": 32}}
    out = extract(tmp_path, clip, grid, recipes, monkeypatch)
    audio = FeatureStore(out / "vggish.zarr")
    visual = FeatureStore(out / "r2plus1d18.zarr")
    n = 16  # whole 0.96-s windows: floor((6 - 0.96) / 0.32) + 1
    assert audio.n_segments.tolist() == visual.n_segments.tolist() == [n]
    starts = np.arange(n) * 0.32
    # audio: the share of each 0.975-s patch inside [3, 4)
    win = 15600 / RATE
    share = np.clip(np.minimum(starts + win, 4.0) - np.maximum(starts, 3.0), 0, None) / win
    np.testing.assert_allclose(audio.load()[0, :n, 0], TONE_RMS * np.sqrt(share), atol=0.01)
    # vision: 3 frames over the 0.96-s window (not the 0.32-s hop), at t*0.32 + k*0.32 s
    times = starts[:, None] + np.arange(3)[None, :] * 0.32
    lit = ((times >= 3.0) & (times < 4.0)).mean(1)
    np.testing.assert_allclose(visual.load()[0, :n, 0], lit, atol=0.05)
    # the flash is in segments 8-12 (segment 8's window [2.56, 3.52) reaches it); frames
    # sampled over the 0.32-s hop instead of the window would see it in segments 9-12 only
    assert np.flatnonzero(lit).tolist() == [8, 9, 10, 11, 12]
    for s, window in ((audio, 15600 / RATE), (visual, 0.96)):
        assert s.attrs["grid"]["hop_s"] == 0.32 and s.attrs["grid"]["window_s"] == 0.96
        assert s.attrs["hop_s"] == 0.32 and s.attrs["window_s"] == pytest.approx(window)
    assert visual.attrs["fps"] == pytest.approx(3 / 0.96)


def test_contiguous_patches_reproduce_the_released_llp_layout(tmp_path: Path, monkeypatch) -> None:
    """placement: contiguous: patch t starts at 0.96 t (released LLP VGGish); longer than
    10 s is an error, not a silent drift."""
    clip = make_clip(tmp_path / "ten.mkv", 10, 2, (8.64, 9.6))
    out = extract(tmp_path, clip, Grid(), {"vggish": {"placement": "contiguous"}}, monkeypatch)
    s = FeatureStore(out / "vggish.zarr")
    rms = s.load()[0, :, 0]
    assert s.attrs["grid"]["placement"] == "contiguous" and s.attrs["hop_s"] == 0.96
    assert rms[9] > 0.9 * TONE_RMS and rms[:8].max() < 1e-3  # patch 9 = [8.64, 9.615)
    long = make_clip(tmp_path / "twelve.mkv", 12, 2, (0.0, 1.0))
    with pytest.raises(ValueError, match="at most 10 s"):
        extract(tmp_path / "x", long, Grid(), {"vggish": {"placement": "contiguous"}}, monkeypatch)
