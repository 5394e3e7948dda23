"""The exact variant of one of our runs, read from its training summary's config.

A variant has a key shared with the published rows (:data:`avpipe.report.published.VARIANTS`)
and a label that says what ran: the summary pairs a run only with published rows of the
same key.  A run whose training wrote no summary (or an unknown config) gets the key ""
and is paired with nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avpipe.report.collect import Run, read_summary
from avpipe.report.published import VARIANTS


@dataclass(frozen=True)
class Variant:
    key: str  # a key of published.VARIANTS, or "" (unknown)
    label: str


def _schedule(train: dict[str, Any]) -> str:
    clip = train.get("grad_clip")
    parts = [
        f"{train.get('epochs', '?')} epochs",
        f"batch {train.get('batch_size', '?')}",
        "no clipping" if clip is None else f"clip {clip}",
    ]
    return ", ".join(parts)


def cpsp_variant(cfg: dict[str, Any]) -> Variant:
    """Variant of a PSP / CPSP stage config (``CpspStage`` as a dict)."""
    run = cfg.get("run", {})
    w = run.get("weights", {})
    if run.get("head") == "psp":
        key = "PSP-original"
    elif w.get("ss", 0):
        key = "SSPSP"
    elif not w.get("spsa", 0) and not w.get("vpsa", 0):
        key = "PSP-CPSP-code"
    elif run.get("setting") == "full" and w.get("spsa", 0):
        key = "CPSP-released" if run.get("spsa_impl") == "released_noop" else "CPSP-intended"
    else:
        key = "CPSP"
    if (
        key in ("PSP-CPSP-code", "CPSP")
        and run.get("setting") == "weak"
        and run.get("weak_labels") == "background_column"
    ):
        key += "-bgcol"
    how = _schedule(run.get("train", {}))
    return Variant(key, f"{VARIANTS[key]}; here {how}, epoch selected on val")


def avvp_variant(cfg: dict[str, Any]) -> Variant:
    """Variant of an AVVP stage config (``{"method": ..., <method>: {...}}``)."""
    method = cfg.get("method")
    if method == "han":
        return Variant("HAN", VARIANTS["HAN"])
    if method == "coleaf":
        key = f"CoLeaF-{cfg.get('coleaf', {}).get('anchor_backbone', 'han')}"
        if key in VARIANTS:
            return Variant(key, VARIANTS[key])
    return Variant("", f"{method or '?'} (variant unknown)")


def variant_of(run: Run) -> Variant:
    """The run's variant; an unsupervised run is CLCL."""
    if run.task == "unsupervised":
        return Variant("CLCL", VARIANTS["CLCL"])
    cfg = read_summary(run).get("config")
    if not isinstance(cfg, dict):
        return Variant("", "variant unknown: no training summary")
    if "method" in cfg:  # the AVVP stage (tasks avvp, unav100)
        return avvp_variant(cfg)
    if "run" in cfg:
        return cpsp_variant(cfg)
    return Variant("", "variant unknown")
