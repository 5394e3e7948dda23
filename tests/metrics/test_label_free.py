"""Label-free criteria of CLCL's EM rounds against hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avpipe.metrics import label_free


def test_balance_is_normalised_entropy_of_the_sizes() -> None:
    assert label_free.balance(np.array([0, 0, 1, 1]), 2) == pytest.approx(1.0)
    assert label_free.balance(np.array([0, 0, 0, 0]), 2) == 0.0
    # sizes 3 and 1: -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2 = 0.811278
    assert label_free.balance(np.array([0, 0, 0, 1]), 2) == pytest.approx(0.811278, abs=1e-6)
    # an empty pseudo-class counts against balance: sizes 2, 2, 0 of K = 3 -> ln 2 / ln 3
    assert label_free.balance(np.array([0, 0, 1, 1]), 3) == pytest.approx(math.log(2) / math.log(3))


def test_agreement_ignores_label_ids() -> None:
    assert label_free.agreement(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])) == 100.0
    assert label_free.agreement(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == 0.0
    with pytest.raises(ValueError, match="4 and 3 videos"):
        label_free.agreement(np.zeros(4), np.zeros(3))


def test_fit_is_the_share_of_matching_labels() -> None:
    assert label_free.fit(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0])) == 75.0
    with pytest.raises(ValueError, match="localizer labels"):
        label_free.fit(np.array([0, 1]), np.array([0]))


def test_score_is_the_worst_agreement_unless_a_round_collapses() -> None:
    rounds = [
        {"balance": 0.95, "fit": 90.0},
        {"balance": 0.9, "fit": 80.0, "agreement": 80.0},
        {"balance": 0.85, "fit": 85.0, "agreement": 70.0},
    ]
    assert label_free.score(rounds) == 70.0
    collapsed = [*rounds[:2], {"balance": 0.5, "fit": 99.0, "agreement": 99.0}]
    assert label_free.score(collapsed) == -math.inf
    assert math.isnan(label_free.score(rounds[:1]))


def test_consistency_is_the_mean_pairwise_nmi_over_seeds() -> None:
    a, b, c = np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), np.array([0, 1, 0, 1])
    assert label_free.consistency([a, b]) == 100.0
    # pairs (a, b) 100, (a, c) 0, (b, c) 0
    assert label_free.consistency([a, b, c]) == pytest.approx(100.0 / 3)
    with pytest.raises(ValueError, match=">= 2 seeds"):
        label_free.consistency([a])


def test_mask_consistency_is_cohens_kappa_between_seeds() -> None:
    a = np.array([[1, 1, 0, 0]], dtype=bool)
    assert label_free.mask_consistency([a, a]) == pytest.approx(1.0)
    assert label_free.mask_consistency([a, ~a]) == pytest.approx(-1.0)
    # observed 3/4, chance 1/2 * 1/4 + 1/2 * 3/4 = 1/2 -> kappa 1/2
    b = np.array([[1, 0, 0, 0]], dtype=bool)
    assert label_free.mask_consistency([a, b]) == pytest.approx(0.5)
    everything = np.ones((1, 4), dtype=bool)
    assert label_free.mask_consistency([everything, everything]) == 0.0
    with pytest.raises(ValueError, match=">= 2 seeds"):
        label_free.mask_consistency([a])


def test_medoid_is_the_labelling_closest_to_the_others() -> None:
    """Three restarts share the partition {0,1,2}{3,4,5} up to one moved video (ids
    permuted), the fourth splits another way: the medoid is the exact partition, the one
    one move from each of the three (ties would go to the first)."""
    exact = np.array([0, 0, 0, 1, 1, 1])
    moved = np.array([1, 1, 0, 0, 0, 0])  # video 2 moved, ids swapped
    other = np.array([0, 0, 0, 0, 1, 1])  # video 3 moved
    odd = np.array([0, 1, 0, 1, 0, 1])
    labellings = [moved, other, exact, odd]
    assert label_free.medoid(labellings) == 2
    assert label_free.medoid([exact]) == 0
    assert label_free.medoid([exact, exact.copy()]) == 0
    with pytest.raises(ValueError, match="no labellings"):
        label_free.medoid([])
