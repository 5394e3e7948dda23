"""What made an output: package versions, config hash, code hash.

Stored in Zarr attributes, checkpoints and metric files so that an output can be
traced back to the exact recipe, weights and software that produced it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import avpipe

_PACKAGES = ("torch", "torchvision", "torchaudio", "av", "numpy", "zarr", "librosa", "resampy")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version(), "avpipe": avpipe.__version__}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def config_hash(cfg: Any) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable config (key order ignored)."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def source_hash(*subpackages: str) -> str:
    """Hash of the Python sources of the given avpipe subpackages or modules.

    ``source_hash("methods/cpsp", "training")`` changes whenever any ``.py`` file
    below ``avpipe/methods/cpsp`` or ``avpipe/training`` changes.  The workflow
    passes it as a rule ``param`` so that editing a method's code reruns that
    method's stages (Snakemake does not track modules that a rule imports).
    """
    root = Path(avpipe.__file__).parent
    h = hashlib.sha256()
    for sub in sorted(subpackages):
        target = root / sub
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not files or not files[0].exists():
            raise FileNotFoundError(f"no avpipe sources at {target}")
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def provenance(cfg: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"versions": package_versions()}
    if cfg is not None:
        out["config"] = cfg
        out["config_hash"] = config_hash(cfg)
    out.update(extra)
    return out
