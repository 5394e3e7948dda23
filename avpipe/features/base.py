"""The contract between the extraction pipeline and the extractors.

The pipeline (``avpipe/features/pipeline.py``) decodes each video once, samples
what every requested extractor's spec asks for, batches *segments* across videos,
and writes the outputs.  An extractor only turns a batch of segments into
features on a device; it never decodes, loops over videos or writes files.

Visual extractors receive uint8 RGB frames already at their input size (resized and
cropped by swscale in the decoding workers on a CPU job, or per video on the GPU,
``avpipe/features/pipeline.py``) and normalise them on the device.
Audio extractors receive 16 kHz mono float32 waveforms.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # annotations only: the registry and the DAG checks import no torch
    import torch


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor consumes and produces, recorded in the store's attributes.

    ``hop_s`` / ``window_s`` come from the dataset's segment grid (``avpipe/io/grid.py``).
    Visual: ``frames_per_segment`` frames are sampled uniformly inside each segment's
    window (``fps = frames_per_segment / window_s``).  Audio: ``sample_rate`` mono
    samples; ``window_s`` of audio (VGGish: its 0.975-s patch) per segment starting at
    ``t * hop_s``.
    """

    name: str
    modality: Literal["audio", "visual"]
    window_s: float
    hop_s: float
    output_shape: tuple[int, ...]  # per segment, e.g. (128,) or (7, 7, 512)
    # e.g. "torchvision:VGG19_Weights.IMAGENET1K_V1", "file:/x/vggish.pth", "random(seed=0)"
    weights: str
    frames_per_segment: int = 0  # visual only
    sample_rate: int = 0  # audio only
    input_size: tuple[int, int] | None = None  # (H, W) fed to the network
    resize: str = ""  # e.g. "shorter=256,center_crop=224" or "direct=112x112"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    store_dtype: str = "float32"  # float16 for maps
    # Extra per-segment arrays beyond "features", name -> shape per segment,
    # e.g. {"frames": (8, 2048)} for the LLP ResNet-152 recipe.
    extra_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth recording

    @property
    def fps(self) -> float:
        return self.frames_per_segment / self.window_s if self.modality == "visual" else 0.0


class Extractor(abc.ABC):
    """A model that maps a batch of segments to features.

    Construct with the recipe config; ``to(device)`` before use.  ``__call__``
    runs under ``torch.inference_mode`` and returns float tensors on the device:

    visual: ``frames`` (S, F, H, W, 3) uint8 -> {"features": (S, *output_shape), **extras}
    audio:  ``audio``  (S, n) float32 in [-1, 1], n = round(window_s * sample_rate)
            -> {"features": (S, *output_shape)}
    """

    spec: ExtractorSpec

    @abc.abstractmethod
    def to(self, device: torch.device) -> Extractor: ...

    @abc.abstractmethod
    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]: ...
