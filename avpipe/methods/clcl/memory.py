"""Momentum memory bank of instance discrimination (Bao et al., AAAI 2023, Eq. 6; IDFD init).

One bank per modality, ``(N, D)`` unit rows, N = number of training videos.
Initialised uniformly in ``±1/sqrt(D/3)`` as IDFD does; after each step the rows of
the batch move towards the new embeddings: ``m_i <- norm(mu * m_i + (1 - mu) * x_i)``
(paper: mu = 0.9; IDFD code: 0.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class MemoryBank:
    def __init__(self, n: int, dim: int, momentum: float, generator: torch.Generator | None = None):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"memory momentum must be in [0, 1), got {momentum}")
        std = 1.0 / math.sqrt(dim / 3)
        self.momentum = momentum
        self.bank = torch.rand(n, dim, generator=generator) * (2 * std) - std

    def to(self, device: torch.device) -> MemoryBank:
        self.bank = self.bank.to(device)
        return self

    @torch.no_grad()
    def update(self, index: torch.Tensor, x: torch.Tensor) -> None:
        """index (B,) rows; x (B, D) new embeddings (detached)."""
        mixed = self.momentum * self.bank[index] + (1 - self.momentum) * x.detach()
        self.bank[index] = F.normalize(mixed, dim=1)
