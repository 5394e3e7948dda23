"""Label-free criteria of CLCL's EM rounds, for choosing EM settings without ground truth.

CLCL (Bao et al., AAAI 2023) is unsupervised, so its settings must not be chosen by
purity or accuracy, which read the labels.  These quantities read only the method's own
outputs (the E-step pseudo-labels of the training videos and the M-step localizer's
predictions of them):

* ``balance``: entropy of the pseudo-class sizes over ``log K`` (1 = equal sizes, 0 = one
  pseudo-class); the annotator's entropy term aims at 1, and a collapsed labelling agrees
  with itself trivially, so a low balance disqualifies a setting;
* ``agreement``: NMI (%) between round k's and round k-1's pseudo-labels of the same
  videos: how much of the partition survives a round (purity can only fall when the
  partition moves);
* ``fit``: percent of training videos whose localizer prediction is their E-step label
  (how well the M-step learns what the E-step asked).

:func:`score` combines them into one number per setting (higher is better); see there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

MIN_BALANCE = 0.8


def balance(labels: np.ndarray, n_classes: int) -> float:
    """Normalised entropy of the label counts, in [0, 1] (1 for a single class: K = 1)."""
    if n_classes < 2:
        return 1.0
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(n_classes))


def agreement(previous: np.ndarray, current: np.ndarray) -> float:
    """NMI (%) between two labellings of the same videos (label ids may be permuted)."""
    if len(previous) != len(current):
        raise ValueError(f"labellings of {len(previous)} and {len(current)} videos")
    return float(normalized_mutual_info_score(previous, current) * 100.0)


def fit(pseudo: np.ndarray, localizer: np.ndarray) -> float:
    """Percent of videos whose localizer label equals their pseudo-label."""
    if len(pseudo) != len(localizer) or len(pseudo) == 0:
        raise ValueError(f"{len(pseudo)} pseudo-labels vs {len(localizer)} localizer labels")
    return float((np.asarray(pseudo) == np.asarray(localizer)).mean() * 100.0)


def score(rounds: Sequence[dict[str, float]]) -> float:
    """One seed's score of a setting from its rounds' criteria (dicts with ``balance``,
    ``fit`` and, from round 2 on, ``agreement``).

    The worst round-to-round agreement (a setting is as stable as its least stable
    round), or ``-inf`` when some round's balance is below ``MIN_BALANCE`` (collapse).
    Settings are compared by the mean of this score over seeds, then by mean ``fit``.
    """
    if any(r["balance"] < MIN_BALANCE for r in rounds):
        return -math.inf
    agree = [r["agreement"] for r in rounds if "agreement" in r]
    return min(agree) if agree else math.nan
