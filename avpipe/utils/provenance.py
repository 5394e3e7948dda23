"""What made an output: package versions, the avpipe commit, config hash, code hash.

Stored in Zarr attributes, checkpoints and metric files so that an output can be
traced back to the exact recipe, weights and software that produced it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import avpipe

log = logging.getLogger(__name__)

# The runtime dependencies whose version can change a stored number.
_PACKAGES = ("torch", "torchvision", "av", "numpy", "zarr", "scipy", "scikit-learn")


@functools.cache
def avpipe_commit() -> str | None:
    """Short commit of the git checkout avpipe is imported from, ``"<sha>-dirty"`` when a
    tracked file differs from it; None for an installed wheel, a copied tree or without git.

    Computed once per process with one ``git describe`` call.  Only a checkout whose root
    holds the package (``<root>/.git`` next to ``<root>/avpipe``) counts, so a wheel
    installed inside some other repository does not report that repository's commit.
    Untracked files (results/, logs/) do not make it dirty, so reruns at one commit write
    the same provenance.
    """
    root = Path(avpipe.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    # GIT_DIR and friends (set inside git hooks) would point git at another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # --exclude='*' ignores tags: the answer is always the abbreviated commit.
    cmd = ["git", "-C", str(root), "describe", "--always", "--dirty", "--exclude=*"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("no avpipe commit: %s", e)
        return None
    if r.returncode != 0 or not r.stdout.strip():
        log.debug("no avpipe commit: %s exited %d: %s", cmd, r.returncode, r.stderr.strip())
        return None
    return r.stdout.strip()


def version_string() -> str:
    """``"0.1.0 (b881d36)"`` from a checkout, ``"0.1.0"`` otherwise (``avpipe --version``)."""
    commit = avpipe_commit()
    return f"{avpipe.__version__} ({commit})" if commit else avpipe.__version__


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "avpipe": avpipe.__version__,
        "avpipe_commit": avpipe_commit() or "unknown (not a git checkout)",
    }
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
