"""Losses of Bao et al., AAAI'23 (paper Eqs. 6-17).

* :func:`instance_nce` Eq. 6: non-parametric softmax against a memory bank
  (the visual term's ``m_+`` typo read as ``m_i``).
* :func:`decorrelation` Eq. 7, the "soft" IDFD form: each feature dimension (columns
  normalised over the batch) must be most similar to itself.  The paper's hard form
  ``||X X^T - I||`` has the product order wrong: the intended matrix is the
  feature-dimension Gram matrix, as in IDFD
  (TTN-YKK/Clustering_friendly_representation_learning).
* :func:`label_contrast` Eq. 9 with each repulsion KL bounded by a ceiling (avpipe's
  choice: unbounded below otherwise): hard ``clip`` (zero gradient above it) or the
  smooth ``tanh`` surrogate ``c * tanh(KL / c)`` (gradient everywhere, value < c).
  Each neighbour sum is divided by K by default (``reduction="mean"``): with the printed
  sums the label-contrast term is K times larger than the marginal-entropy term, which
  then no longer prevents collapse (found on the synthetic toy, K = 6..30).
* :func:`marginal_entropy` Eq. 10 with the sign that prevents collapse: the minimised
  term is ``-H(mean p)`` (the printed sign contradicts the paper's stated goal);
  ``sign="paper"`` gives the printed ``+H``.
* :func:`mil_bce` Eq. 17.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def instance_nce(
    x: torch.Tensor, bank: torch.Tensor, index: torch.Tensor, tau: float
) -> torch.Tensor:
    """-mean_i log softmax_j(x_i . m_j / tau)[index_i].  x (B, D) unit rows; bank (N, D)."""
    return F.cross_entropy(x @ bank.t() / tau, index)


def decorrelation(x: torch.Tensor, tau: float) -> torch.Tensor:
    """-(1/D) sum_k log softmax_l(G_kl)[k],  G = X_hat^T X_hat / tau, X_hat columns unit norm.

    x: (B, D) batch features.  Returns a scalar.
    """
    xn = F.normalize(x, dim=0)
    gram = xn.t() @ xn / tau
    return F.cross_entropy(gram, torch.arange(gram.shape[0], device=x.device))


def kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis; p, q probabilities of the same shape -> shape[:-1]."""
    return (p * (torch.log(p + EPS) - torch.log(q + EPS))).sum(-1)


def bound_repulsion(kl: torch.Tensor, ceiling: float | None, bound: str) -> torch.Tensor:
    """Bounded repulsion KL: ``min(kl, c)`` (clip) or ``c tanh(kl / c)`` (tanh); c None = kl."""
    if ceiling is None:
        return kl
    if bound == "clip":
        return kl.clamp(max=ceiling)
    if bound == "tanh":
        return ceiling * torch.tanh(kl / ceiling)
    raise ValueError(f"repulsion_bound must be 'clip' or 'tanh', got {bound!r}")


def label_contrast(
    p: torch.Tensor,
    p_aff: torch.Tensor,
    p_rep: torch.Tensor,
    ceiling: float | None,
    reduction: str = "mean",
    bound: str = "clip",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 9: sum_{A_i} KL(p_i||p_j) - sum_{R_i} bound(KL(p_i||p_j)), mean over anchors.

    p (B, C); p_aff, p_rep (B, K, C).  ``reduction="mean"`` divides each sum by K;
    ``bound`` (:func:`bound_repulsion`) applies when ``ceiling`` is not None.
    Returns (loss, fraction of repulsion KLs at or above the ceiling).
    """
    attract = kl_rows(p.unsqueeze(1), p_aff)
    repel = kl_rows(p.unsqueeze(1), p_rep)
    clipped = torch.zeros((), device=p.device)
    if ceiling is not None:
        clipped = (repel >= ceiling).float().mean()
        repel = bound_repulsion(repel, ceiling, bound)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"neighbour_reduction must be 'sum' or 'mean', got {reduction!r}")
    reduce = torch.mean if reduction == "mean" else torch.sum
    return (reduce(attract, 1) - reduce(repel, 1)).mean(), clipped


def marginal_entropy(p: torch.Tensor, sign: str = "maximize") -> torch.Tensor:
    """Eq. 10 on the batch marginal p_bar = mean_i p_i (p: (B, C)).

    ``maximize`` returns sum_c p_bar log p_bar = -H(p_bar) (minimising it spreads the
    videos over the pseudo-classes); ``paper`` returns +H(p_bar) as printed.
    """
    p_bar = p.mean(0)
    neg_h = (p_bar * torch.log(p_bar + EPS)).sum()
    if sign == "maximize":
        return neg_h
    if sign == "paper":
        return -neg_h
    raise ValueError(f"entropy sign must be 'maximize' or 'paper', got {sign!r}")


def mil_bce(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 17: BCE(y, Z), y (B, C) in (0, 1) from MIL pooling, Z hard one-hot or soft."""
    return F.binary_cross_entropy(y.clamp(EPS, 1 - EPS), target)
