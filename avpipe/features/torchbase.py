"""What every torch extractor shares: weights, seeded random init, device and precision.

Weights (the ``weights`` option, see ``avpipe.features.registry``):

* ``pretrained`` -> the recipe's torchvision weight enum (e.g.
  ``ResNet152_Weights.IMAGENET1K_V1``) or reference URL, read from the torch hub
  cache (``$TORCH_HOME/hub/checkpoints``) or downloaded;
* a path -> ``torch.load(path, weights_only=True)``; a URL ->
  ``torch.hub.load_state_dict_from_url`` (cached the same way);
* ``random`` -> seeded initialisation on purpose, recorded as ``random(seed=N)``.

No network and no cached file raises :class:`WeightsUnavailableError` saying where
the file is expected and how to get it.  ``AVPIPE_OFFLINE=1`` skips download attempts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from avpipe.features.base import Extractor, ExtractorSpec

log = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """Weights cannot be read or fetched; the message says how to provide them."""


def _advice(what: str, url: str | None) -> str:
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    lines = [f"weights for {what} are not available."]
    if url:
        name = os.path.basename(urlparse(url).path)
        lines.append(
            f"Download {url} on a machine with network and copy it to {cache / name} "
            f"(the torch hub cache; set TORCH_HOME to move it), or"
        )
    lines.append(
        "set the extractor option `weights` to a local state-dict file, or to `random` "
        "to use random initialisation on purpose (features are then meaningless for "
        "downstream accuracy)."
    )
    return " ".join(lines)


def _from_url(url: str, what: str) -> dict[str, torch.Tensor]:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if not cached.is_file() and os.environ.get("AVPIPE_OFFLINE", "") not in ("", "0"):
        raise WeightsUnavailableError(
            f"AVPIPE_OFFLINE is set and {cached} does not exist; " + _advice(what, url)
        )
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu")
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        raise WeightsUnavailableError(f"{type(e).__name__}: {e}; " + _advice(what, url)) from e


def load_state_dict(weights: str, what: str, pretrained: Callable[[], str]) -> dict[str, Any]:
    """State dict for a non-random ``weights`` option.

    ``pretrained`` returns the reference URL (e.g. ``VGG19_Weights.IMAGENET1K_V1.url``)
    and is only called for ``weights: pretrained``.
    """
    if weights == "pretrained":
        sd = _from_url(pretrained(), what)
    elif weights.startswith(("http://", "https://")):
        sd = _from_url(weights, what)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{path} does not exist; " + _advice(what, None))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise WeightsUnavailableError(f"{weights}: expected a state dict, got {type(sd).__name__}")
    return dict(sd)


def load_into(
    module: torch.nn.Module, sd: Mapping[str, Any], ignore: tuple[str, ...], where: str
) -> None:
    """Strict load of ``sd`` minus keys starting with ``ignore`` (e.g. a dropped head)."""
    kept = {k: v for k, v in sd.items() if not k.startswith(ignore)}
    missing, unexpected = module.load_state_dict(kept, strict=False)
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"{where}: state dict does not match the architecture; "
            f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed the global RNG for a block and restore it afterwards (model init uses it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class TorchExtractor(Extractor):
    """Base of the torch extractors: ``self.net`` on a device, precision chosen in ``to``.

    Subclasses build ``self.net`` (eval mode) and implement ``forward(batch)`` which
    returns float32 outputs; ``__call__`` adds inference mode, autocast and the cast
    to the store dtype.  After ``to``, ``precision`` is ``"bf16-autocast"`` or ``"fp32"``.
    """

    memory_format: torch.memory_format = torch.channels_last

    def __init__(self, spec: ExtractorSpec, options: dict[str, Any]) -> None:
        self.spec = spec
        self.options = options
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.net: torch.nn.Module

    def to(self, device: torch.device | str) -> TorchExtractor:
        self.device = torch.device(device)
        self.net = self.net.to(self.device).eval()
        if self.options["channels_last"]:
            self.net = self.net.to(memory_format=self.memory_format)
        want = self.options["autocast"]
        if want and not bf16_supported(self.device):
            log.warning("%s: bf16 not supported on %s; running fp32", self.spec.name, self.device)
        self.precision = "bf16-autocast" if want and bf16_supported(self.device) else "fp32"
        log.info(
            "%s on %s: %s, channels_last=%s",
            self.spec.name,
            self.device,
            self.precision,
            self.options["channels_last"],
        )
        return self

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16-autocast"
        )

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            out = self.forward(batch.to(self.device, non_blocking=True))
        dtype = getattr(torch, self.spec.store_dtype)
        cast = {k: v.to(dtype) for k, v in out.items()}
        for k, v in cast.items():
            if not bool(torch.isfinite(v).all()):
                raise FloatingPointError(
                    f"{self.spec.name}: non-finite {k} in {self.spec.store_dtype} "
                    f"(max |x| before the cast {float(out[k].abs().max()):.3g}); "
                    "store float32 (option dtype) or check the weights"
                )
        return cast

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError
