"""VGGish audio embeddings (Hershey et al., ICASSP 2017; TF AudioSet release).

``audio`` (S, n) float32 16 kHz mono, n >= 15,600 -> ``features`` (S, 128): one
96x64 log-mel patch per segment (``avpipe.features.melspec``), the VGGish network,
the 128-d embedding after the last ReLU.  No PCA or quantisation by default: the AVE
and LLP audio features are post-ReLU floats (checked on ``audio_feature_noisy.h5``).

Torch backend, weights in the converted-VGGish layout of harritaylor/torchvggish
(release ``vggish-10086976.pth``; layout cited as a fact, the code is ours):

* ``features.{0,3,6,8,11,13}.{weight,bias}``: conv 3x3 (pad 1) 1->64, 64->128,
  128->256, 256->256, 256->512, 512->512, each followed by ReLU, with 2x2 max-pools
  after convs 1, 2, 4 and 6 (module indices 2, 5, 10, 15 hold the pools);
* ``embeddings.{0,2,4}.{weight,bias}``: linear 12288->4096, 4096->4096, 4096->128,
  each followed by ReLU.  The 512x6x4 pool output is flattened in TF's NHWC order
  (``permute(0, 2, 3, 1)``) because the converted fc weights expect it.
* PCA (``postprocess``): ``vggish_pca_params-970ea276.pth`` with ``pca_eigen_vectors``
  (128, 128) and ``pca_means`` (128,); quantisation clips to [-2, 2] and maps to 0..255.

TF-Hub backend (``backend: tfhub``): ``tensorflow_hub.load(handle)`` called on each
segment's waveform; ``handle`` may be a local SavedModel directory.  Needs the
``tfhub`` extra; the ReLU is applied again (a no-op if the model already has it).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from avpipe.config import ConfigError
from avpipe.features.base import Extractor, ExtractorSpec
from avpipe.features.melspec import LogMel, samples_per_patch
from avpipe.features.registry import VGGISH_PCA_URL, VGGISH_URL
from avpipe.features.torchbase import TorchExtractor, load_into, load_state_dict, seeded

log = logging.getLogger(__name__)

QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0


def _conv_stack() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 1
    for c in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if c == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(c), 3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(c)
    return nn.Sequential(*layers)


class VGGishNet(nn.Module):
    """(N, 1, 96, 64) log-mel patches -> (N, 128) post-ReLU embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _conv_stack()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 128),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))


class PCAQuantise(nn.Module):
    """AudioSet post-processing: PCA (with whitening) then 8-bit quantisation (as floats)."""

    def __init__(self, eigen_vectors: torch.Tensor, means: torch.Tensor) -> None:
        super().__init__()
        if eigen_vectors.shape != (128, 128) or means.numel() != 128:
            raise ConfigError(
                f"VGGish PCA params: expected (128, 128) and (128,), got "
                f"{tuple(eigen_vectors.shape)} and {tuple(means.shape)}"
            )
        self.register_buffer("vectors", eigen_vectors.float())
        self.register_buffer("means", means.float().reshape(128))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        pca = (emb - self.means) @ self.vectors.T
        clipped = pca.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
        return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))


def _postprocessor(options: dict[str, Any]) -> PCAQuantise | None:
    if not options["postprocess"]:
        return None
    sd = load_state_dict(options["pca_params"], "VGGish PCA", lambda: VGGISH_PCA_URL)
    for key in ("pca_eigen_vectors", "pca_means"):
        if key not in sd:
            raise ConfigError(f"VGGish PCA params {options['pca_params']!r}: missing key {key!r}")
    return PCAQuantise(torch.as_tensor(sd["pca_eigen_vectors"]), torch.as_tensor(sd["pca_means"]))


class TorchVGGish(TorchExtractor):
    """audio (S, n) float32 -> features (S, 128)."""

    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        super().__init__(spec, options)
        with seeded(options["seed"]):
            net = VGGishNet()
        if options["weights"] != "random":
            sd = load_state_dict(options["weights"], "VGGish", lambda: VGGISH_URL)
            load_into(net, sd, (), "vggish")
        self.net = nn.ModuleDict({"logmel": LogMel(), "vggish": net})
        post = _postprocessor(options)
        if post is not None:
            self.net["post"] = post

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        patches = self.net["logmel"](audio)  # fp32 outside autocast: the log needs it
        if self.options["channels_last"]:
            patches = patches.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            emb = self.net["vggish"](patches)
        emb = emb.float()
        if "post" in self.net:
            emb = self.net["post"](emb)
        return {"features": emb}


class TFHubVGGish(Extractor):
    """The TF-Hub VGGish model, one segment at a time (optional backend)."""

    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        try:
            import tensorflow_hub as hub
        except ImportError as e:
            raise ConfigError(
                "vggish backend 'tfhub' needs tensorflow and tensorflow_hub "
                "(pip install 'avpipe[tfhub]'); or use backend: torch"
            ) from e
        self.spec = spec
        self.model = hub.load(options["handle"])
        self.post = _postprocessor(options)
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> TFHubVGGish:
        self.device = torch.device(device)  # TF places the model itself; outputs go here
        return self

    def __call__(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        need = samples_per_patch()
        wave = audio[:, :need].detach().float().cpu().numpy()
        rows = [torch.as_tensor(self.model(w).numpy()[0]) for w in wave]
        emb = torch.relu(torch.stack(rows))
        if self.post is not None:
            emb = self.post(emb)
        return {"features": emb.to(self.device, getattr(torch, self.spec.store_dtype))}


def VGGishExtractor(spec: ExtractorSpec, options: dict[str, Any]) -> Extractor:  # noqa: N802
    """The registry's entry point: the backend named by ``options['backend']``."""
    if options["backend"] == "tfhub":
        return TFHubVGGish(spec, options)
    return TorchVGGish(spec, options)
