"""Small, exact extractors for pipeline tests (no weights, values checkable by hand)."""

from __future__ import annotations

import torch

from avpipe.features.base import Extractor, ExtractorSpec


class FakeVisual(Extractor):
    """features: per-segment mean of the frames, 2x2 average-pooled -> (2, 2, 3);
    extra ``frames``: per-frame channel means (F, 3)."""

    def __init__(self, frames_per_segment: int = 2, fail_after: int | None = None):
        self.spec = ExtractorSpec(
            name="fake_visual", modality="visual", window_s=1.0, hop_s=1.0, output_shape=(2, 2, 3),
            weights="none", frames_per_segment=frames_per_segment, store_dtype="float32",
            extra_outputs={"frames": (frames_per_segment, 3)},
        )
        self.calls = 0
        self.fail_after = fail_after

    def to(self, device: torch.device) -> FakeVisual:
        return self

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("injected failure")
        x = batch.float()  # (S, F, H, W, 3)
        s, f, h, w, c = x.shape
        pooled = x.mean(1).reshape(s, 2, h // 2, 2, w // 2, c).mean((2, 4))
        return {"features": pooled, "frames": x.mean((2, 3))}


class FakeAudio(Extractor):
    """features: (rms, mean, first sample) of each segment's window -> (3,)."""

    def __init__(self, window_s: float = 0.96, hop_s: float = 1.0):
        self.spec = ExtractorSpec(
            name="fake_audio", modality="audio", window_s=window_s, hop_s=hop_s, output_shape=(3,),
            weights="none", sample_rate=16000, store_dtype="float32",
        )

    def to(self, device: torch.device) -> FakeAudio:
        return self

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": torch.stack([batch.pow(2).mean(1).sqrt(), batch.mean(1), batch[:, 0]], 1)}
