"""The visual extractors: VGG-19 pool5, ResNet-152 (maps and LLP), R(2+1)D-18.

Input is ``frames`` (S, F, size, size, 3) uint8 RGB, already resized and cropped by the
pipeline (``resize_frames`` on the GPU, swscale in the CPU workers); normalisation runs
on the device (``prepare``).  2D networks run on all
S*F frames in one batch and average over F on the device, in float32.

Recipes (AVE: Tian et al., ECCV 2018, YapengTian/AVE-ECCV18; LLP: Tian et al., ECCV 2020,
YapengTian/AVVP-ECCV20 ``scripts/extract_*_feat.py``):

* ``vgg19_pool5``: torchvision VGG-19 ``features`` (up to and including pool5),
  ImageNet weights ``VGG19_Weights.IMAGENET1K_V1``; 16 frames per segment averaged
  (AVE paper).  AVE's own script is Drive-only and probably Keras (BGR, Caffe
  weights), so bit-parity with ``visual_feature.h5`` is not expected.
* ``resnet152_maps`` / ``resnet152_llp``: ``ResNet152_Weights.IMAGENET1K_V1`` -- the
  original torchvision release, which is what LLP's Cadene ``pretrainedmodels.resnet152
  ('imagenet')`` loads (its ``resnet152-b121ed2d.pth`` URL; torchvision now serves
  V1 as ``resnet152-394f9c45.pth``).  Resize shorter side 256, centre crop 224.
  ``_maps`` keeps layer4 (7x7x2048) averaged over 8 frames; ``_llp`` keeps the
  global-average-pooled 2048-d vector per frame (extra output ``frames``) and the
  8-frame mean (HAN's ``avg_pool2d((8, 1))``).
* ``r2plus1d18``: ``R2Plus1D_18_Weights.KINETICS400_V1`` with ``fc`` removed (avgpool
  kept), one clip of 8 frames per segment, ``Resize((112, 112))``, no crop, Kinetics
  mean/std (AVVP ``extract_3D_feat.py``).

Random initialisation of the residual nets uses ``zero_init_residual=True``: in eval
mode BatchNorm with fresh running statistics is the identity, so with the default
init the 50 bottlenecks of ResNet-152 compound to activations ~1e8, beyond float16.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from avpipe.features.base import ExtractorSpec
from avpipe.features.torchbase import TorchExtractor, load_into, load_state_dict, seeded
from avpipe.io.grid import crop_geometry


def resize_frames(frames: torch.Tensor, size: int, resize: str) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8: a recipe's resize + centre crop.

    Runs where ``frames`` are (the GPU of an extraction job): bilinear with antialias,
    rounded back to uint8 like the CPU path (swscale in the decoding workers).
    """
    h, w = frames.shape[1:3]
    th, tw, top, left = crop_geometry(h, w, size, resize)
    x = frames.permute(0, 3, 1, 2)
    if (h, w) != (th, tw):
        x = F.interpolate(x.float(), size=(th, tw), mode="bilinear", antialias=True)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    x = x[..., top : top + size, left : left + size]
    return x.permute(0, 2, 3, 1).contiguous()


def prepare(frames: torch.Tensor, spec: ExtractorSpec) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float32, normalised.

    The extraction pipeline hands frames at the input size already; other sizes are
    resized here first (``resize_frames``).  A frame that is already size x size is
    taken as resized, also for ``shorter_crop``.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{spec.name}: expected (N, H, W, 3) uint8 frames, "
            f"got {frames.dtype} {tuple(frames.shape)}"
        )
    size = spec.input_size[0]
    if tuple(frames.shape[1:3]) != (size, size):
        frames = resize_frames(frames, size, spec.details["options"]["resize"])
    x = frames.permute(0, 3, 1, 2).float()
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def _check_frames(batch: torch.Tensor, spec: ExtractorSpec) -> tuple[int, int]:
    if batch.ndim != 5 or batch.shape[1] != spec.frames_per_segment:
        raise ValueError(
            f"{spec.name}: expected (S, {spec.frames_per_segment}, H, W, 3) frames, "
            f"got {tuple(batch.shape)}"
        )
    return batch.shape[0], batch.shape[1]


def _stages(options: dict[str, Any]) -> list[str]:
    """Residual stages up to ``options["readout"]`` (default layer4: the whole trunk)."""
    last = int(options.get("readout", "layer4")[-1])
    return [f"layer{i}" for i in range(1, last + 1)]


class _Frame2D(TorchExtractor):
    """A 2D network applied per frame; ``trunk(x)`` -> (N, C, h, w) maps."""

    def frame_maps(self, batch: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        s, f = _check_frames(batch, self.spec)
        x = prepare(batch.flatten(0, 1), self.spec)
        if self.options["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            maps = self.trunk(x)
        return maps.float(), s, f

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _VGG19Features(nn.Module):
    """torchvision's VGG-19 ``features`` under the same key names (``features.N.*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
        for m in self.features.modules():  # torchvision VGG's own init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)


class VGG19Pool5(_Frame2D):
    """(S, F, H, W, 3) uint8 -> features (S, h, w, 512), the mean of F pool5 maps."""

    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        super().__init__(spec, options)
        with seeded(options["seed"]):
            self.net = _VGG19Features()
        if options["weights"] != "random":
            url = lambda: torchvision.models.VGG19_Weights.IMAGENET1K_V1.url  # noqa: E731
            sd = load_state_dict(options["weights"], "VGG-19 (vgg19_pool5)", url)
            load_into(self.net, sd, ("classifier.",), "vgg19_pool5")

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        maps, s, f = self.frame_maps(batch)
        return {"features": maps.view(s, f, *maps.shape[1:]).mean(1).permute(0, 2, 3, 1)}


class _ResNet152(_Frame2D):
    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        super().__init__(spec, options)
        random = options["weights"] == "random"
        with seeded(options["seed"]):
            self.net = torchvision.models.resnet152(zero_init_residual=random)
        self.net.fc = nn.Identity()
        if not random:
            url = lambda: torchvision.models.ResNet152_Weights.IMAGENET1K_V1.url  # noqa: E731
            sd = load_state_dict(options["weights"], f"ResNet-152 ({spec.name})", url)
            load_into(self.net, sd, ("fc.",), spec.name)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        for name in _stages(self.options):  # readout: stop after that stage (registry)
            x = getattr(n, name)(x)
        return x


class ResNet152Maps(_ResNet152):
    """(S, F, H, W, 3) uint8 -> features (S, h, w, 2048), the mean of F layer4 maps."""

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        maps, s, f = self.frame_maps(batch)
        return {"features": maps.view(s, f, *maps.shape[1:]).mean(1).permute(0, 2, 3, 1)}


class ResNet152LLP(_ResNet152):
    """(S, F, H, W, 3) uint8 -> features (S, 2048) frame mean, frames (S, F, 2048)."""

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        maps, s, f = self.frame_maps(batch)
        per_frame = maps.mean(dim=(2, 3)).view(s, f, -1)
        return {"features": per_frame.mean(1), "frames": per_frame}


class R2Plus1D18(TorchExtractor):
    """(S, F, H, W, 3) uint8 -> features (S, 512): one F-frame clip per segment."""

    memory_format = torch.channels_last_3d

    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        super().__init__(spec, options)
        random = options["weights"] == "random"
        with seeded(options["seed"]):
            self.net = torchvision.models.video.r2plus1d_18(zero_init_residual=random)
        self.net.fc = nn.Identity()
        if not random:
            url = lambda: torchvision.models.video.R2Plus1D_18_Weights.KINETICS400_V1.url  # noqa: E731
            sd = load_state_dict(options["weights"], "R(2+1)D-18 (r2plus1d18)", url)
            load_into(self.net, sd, ("fc.",), "r2plus1d18")

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        s, f = _check_frames(batch, self.spec)
        x = prepare(batch.flatten(0, 1), self.spec)
        x = x.view(s, f, *x.shape[1:]).transpose(1, 2)  # (S, 3, F, h, w)
        if self.options["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        n = self.net
        with self.autocast():
            y = n.stem(x)
            for name in _stages(self.options):  # readout: stop after that stage (registry)
                y = getattr(n, name)(y)
            y = n.avgpool(y).flatten(1)  # fc is Identity
        return {"features": y.float()}
