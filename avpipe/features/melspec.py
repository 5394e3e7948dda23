"""The VGGish log-mel front end, in torch, on the device.

Same numbers as the TF AudioSet reference (``tensorflow/models`` research/audioset
``mel_features.py`` / ``vggish_params.py``; facts only, the code is our own):

* 16 kHz mono; STFT frames of 400 samples (25 ms) every 160 samples (10 ms),
  framed from sample 0 with no centring or padding;
* periodic Hann window ``0.5 - 0.5 cos(2 pi n / 400)``; 512-point real FFT; magnitude
  (not power);
* 64 mel bands, 125-7500 Hz, on the HTK mel scale ``1127 ln(1 + f / 700)``, each a
  triangle that is linear *in mel* between its band edges; the DC bin gets weight 0;
* ``log(mel + 0.01)``; 96 frames x 64 bands per patch (0.96 s of hops).

``torch.stft`` would centre the 400-sample window inside the 512-point frame and
shift every frame by 56 samples against the reference ``vggish_input.py``, so framing
is done with ``unfold`` and the window is zero-padded on the right by ``rfft``.
"""

from __future__ import annotations

import math

import torch

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # 2 ** ceil(log2(400))
N_MELS = 64
F_MIN, F_MAX = 125.0, 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96


def samples_per_patch(frames: int = PATCH_FRAMES) -> int:
    """Audio samples one patch needs: 15,600 (0.975 s) for 96 frames."""
    return (frames - 1) * HOP + WINDOW


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale."""
    return 1127.0 * torch.log1p(hz / 700.0)


def periodic_hann(n: int = WINDOW, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    k = torch.arange(n, dtype=dtype)
    return 0.5 - 0.5 * torch.cos(2 * math.pi * k / n)


def mel_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(257, 64) weights from STFT-magnitude bins to mel bands, triangles linear in mel."""
    bins_hz = torch.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1, dtype=torch.float64)
    bins_mel = hz_to_mel(bins_hz)
    lo, hi = hz_to_mel(torch.tensor([F_MIN, F_MAX], dtype=torch.float64))
    edges = torch.linspace(float(lo), float(hi), N_MELS + 2, dtype=torch.float64)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - left) / (centre - left)
    falling = (right - bins_mel[:, None]) / (right - centre)
    w = torch.clamp(torch.minimum(rising, falling), min=0.0)
    w[0, :] = 0.0  # the reference drops the DC bin
    return w.to(dtype)


class LogMel(torch.nn.Module):
    """Waveform segments -> VGGish patches.

    ``audio``: (S, n) float, 16 kHz, n >= 15,600 (the first 15,600 samples are used)
    -> (S, 1, 96, 64) float32 log-mel patches.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", periodic_hann(WINDOW, torch.float32), persistent=False)
        self.register_buffer("mel", mel_matrix(torch.float32), persistent=False)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(S, n) -> (S, frames, 257) STFT magnitude, frames = 1 + (n - 400) // 160."""
        frames = audio.float().unfold(-1, WINDOW, HOP) * self.window
        return torch.fft.rfft(frames, n=FFT).abs()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        need = samples_per_patch()
        if audio.ndim != 2 or audio.shape[1] < need:
            raise ValueError(
                f"VGGish expects (segments, >= {need}) samples at 16 kHz, got {tuple(audio.shape)}"
            )
        spec = self.spectrogram(audio[:, :need])
        return torch.log(spec @ self.mel + LOG_OFFSET).unsqueeze(1)
