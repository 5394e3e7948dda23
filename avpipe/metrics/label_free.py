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
  (how well the M-step learns what the E-step asked);
* ``consistency``: mean pairwise NMI (%) between the pseudo-labels that different seeds give
  the same videos in the same round: how reproducible the partition is.  Stability under
  resampling or reseeding is the classic label-free criterion for clustering settings
  (Lange, Roth, Braun and Buhmann, "Stability-based validation of clustering solutions",
  Neural Computation 2004); a setting whose partition depends on the seed cannot give
  narrow confidence intervals over seeds;
* ``mask_consistency``: the same for the foreground decisions of the localizer (segments of
  the training videos), as the mean pairwise Cohen's kappa between seeds: chance-corrected,
  so a rule that marks every segment (or none) scores 0, not 1.  The foreground rule is
  applied to gamma after training and changes no pseudo-label, so only this criterion
  can choose it.

:func:`score` combines them into one number per setting (higher is better); see there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, normalized_mutual_info_score

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


def consistency(labellings: Sequence[np.ndarray]) -> float:
    """Mean NMI (%) over the pairs of ``labellings`` (>= 2) of the same videos."""
    if len(labellings) < 2:
        raise ValueError(f"consistency needs the labellings of >= 2 seeds, got {len(labellings)}")
    pairs = list(itertools.combinations(labellings, 2))
    return float(np.mean([agreement(a, b) for a, b in pairs]))


def medoid(labellings: Sequence[np.ndarray]) -> int:
    """Index of the labelling with the highest mean NMI to the others (>= 1 labellings of
    the same videos; ties: the first).

    The "best of K" consensus partition (Goder and Filkov, "Consensus clustering
    algorithms: comparison and refinement", ALENEX 2008): the member of an ensemble that
    agrees most with the rest, the ensemble's average-NMI objective of Strehl and Ghosh
    ("Cluster ensembles", JMLR 2002) restricted to its members.
    """
    n = len(labellings)
    if n == 0:
        raise ValueError("medoid of no labellings")
    nmi = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        nmi[i, j] = nmi[j, i] = agreement(labellings[i], labellings[j])
    return int(np.argmax(nmi.sum(1)))


def mask_consistency(masks: Sequence[np.ndarray]) -> float:
    """Mean Cohen's kappa over the pairs of ``masks`` (>= 2 bool arrays of the same shape)."""
    if len(masks) < 2:
        raise ValueError(f"mask_consistency needs the masks of >= 2 seeds, got {len(masks)}")
    flat = [np.asarray(m, dtype=bool).ravel() for m in masks]
    return float(np.mean([_kappa(a, b) for a, b in itertools.combinations(flat, 2)]))


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two bool arrays; 0 when chance agreement is total (both constant
    and equal, where scikit-learn's quotient is 0/0)."""
    if a.shape != b.shape:
        raise ValueError(f"masks of shapes {a.shape} and {b.shape}")
    if np.unique(np.concatenate([a, b])).size == 1:
        return 0.0
    return float(cohen_kappa_score(a, b))


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
