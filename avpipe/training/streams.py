"""Videos that lack a stream, and the rule every method applies to them.

Extraction writes all-zero rows for a video without the store's stream and says so in
the store's flags: ``has_audio`` (audio stores) and ``has_video`` (visual stores; older
or imported stores have none, read as all True).  No method here has a clean way to
mask one modality (CLCL contrasts the two streams, PSP/CPSP fuse them segment by
segment, HAN/CoLeaF attend across them), so the zeros would train and score as if they
were features.  Every loader therefore drops such videos from training and from
evaluation (the predictions then cover fewer videos), logs how many and which, and the
stage records them (:func:`by_split`) in its outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from avpipe.datasets.manifest import Sample
from avpipe.io.store import FeatureStore

log = logging.getLogger(__name__)

FLAGS = {"has_video": "no_video", "has_audio": "no_audio"}
SHOWN = 5


def missing_streams(
    stores: Iterable[FeatureStore], video_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Reason (``no_video``, ``no_audio``) -> the ``video_ids`` (unique, in order) whose
    flag is False in one of ``stores``.  A store without the flag has the stream."""
    ids = list(dict.fromkeys(video_ids))
    out: dict[str, list[str]] = {reason: [] for reason in FLAGS.values()}
    for store in stores:
        for flag, reason in FLAGS.items():
            if flag not in store.group or not ids:
                continue
            present = np.asarray(store.group[flag][:], dtype=bool)[store.rows(ids)]
            seen = set(out[reason])
            out[reason] += [
                v for v, ok in zip(ids, present, strict=True) if not ok and v not in seen
            ]
    return out


def drop_missing_streams(
    video_ids: Sequence[str], stores: Sequence[FeatureStore], where: str
) -> tuple[list[str], dict[str, list[str]]]:
    """``video_ids`` without the videos that lack a stream (order and repeats kept), and
    those videos by reason (:func:`missing_streams`); logs a warning naming them."""
    missing = missing_streams(stores, video_ids)
    gone = {v for ids in missing.values() for v in ids}
    if gone:
        n_all = len(dict.fromkeys(video_ids))
        named = "; ".join(
            f"{reason.replace('_', ' ')} stream: {len(ids)} ({', '.join(ids[:SHOWN])}"
            + (", ...)" if len(ids) > SHOWN else ")")
            for reason, ids in missing.items()
            if ids
        )
        log.warning(
            "%s: %d of %d videos lack a stream (their features are zeros) and are left out "
            "of training and evaluation: %s",
            where,
            len(gone),
            n_all,
            named,
        )
    return [v for v in video_ids if v not in gone], missing


def by_split(
    samples: Iterable[Sample], missing: dict[str, list[str]]
) -> dict[str, dict[str, list[str]]]:
    """{split: {reason: video ids}} of ``samples`` whose video is in ``missing``, every
    split of ``samples`` present: the record a stage writes (counts = list lengths)."""
    sets = {reason: set(ids) for reason, ids in missing.items()}
    out: dict[str, dict[str, list[str]]] = {}
    for s in samples:
        per = out.setdefault(s.split, {reason: [] for reason in missing})
        for reason, ids in sets.items():
            if s.video_id in ids and s.video_id not in per[reason]:
                per[reason].append(s.video_id)
    return out
