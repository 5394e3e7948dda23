"""CLCL losses, memory bank and affinity sets against values worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from avpipe.methods.clcl.annotator import affinity_sets, repulsion_ceiling
from avpipe.methods.clcl.losses import (
    decorrelation,
    instance_nce,
    label_contrast,
    marginal_entropy,
    mil_bce,
)
from avpipe.methods.clcl.memory import MemoryBank

torch.set_num_threads(1)


def test_instance_nce_with_memory_bank() -> None:
    x = torch.tensor([[1.0, 0.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # -log(e^1 / (e^1 + e^0)) = log(1 + e^-1)
    assert instance_nce(x, bank, torch.tensor([0]), 1.0).item() == pytest.approx(
        math.log(1 + math.exp(-1)), abs=1e-6
    )
    # tau = 0.5 doubles the logits; the positive is row 1 here
    assert instance_nce(x, bank, torch.tensor([1]), 0.5).item() == pytest.approx(
        math.log(1 + math.exp(2)), abs=1e-6
    )


def test_soft_decorrelation() -> None:
    # orthogonal columns: G = I / 2 -> -log(e^.5 / (e^.5 + 1)) per dimension
    x = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    assert decorrelation(x, 2.0).item() == pytest.approx(math.log(1 + math.exp(-0.5)), abs=1e-6)
    # identical columns: every entry of G equal -> log D
    y = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    assert decorrelation(y, 2.0).item() == pytest.approx(math.log(2), abs=1e-6)


def test_label_contrast_with_bounded_repulsion() -> None:
    p = torch.tensor([[0.5, 0.5]])
    aff = torch.tensor([[[0.5, 0.5], [0.8, 0.2]]])
    rep = torch.tensor([[[0.9, 0.1], [0.9, 0.1]]])
    kl_aff = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)  # 0.2231
    kl_rep = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # 0.5108
    loss, clipped = label_contrast(p, aff, rep, None, "sum")
    assert loss.item() == pytest.approx(kl_aff - 2 * kl_rep, abs=1e-5)
    assert clipped.item() == 0.0
    loss, clipped = label_contrast(p, aff, rep, 0.3, "sum", "clip")
    assert loss.item() == pytest.approx(kl_aff - 2 * 0.3, abs=1e-5)
    assert clipped.item() == 1.0
    loss, _ = label_contrast(p, aff, rep, 0.3, "mean", "clip")
    assert loss.item() == pytest.approx(kl_aff / 2 - 0.3, abs=1e-5)
    # smooth bound c * tanh(KL / c): 0.3 * tanh(0.5108 / 0.3) = 0.2807
    loss, clipped = label_contrast(p, aff, rep, 0.3, "mean", "tanh")
    assert loss.item() == pytest.approx(kl_aff / 2 - 0.3 * math.tanh(kl_rep / 0.3), abs=1e-5)
    assert clipped.item() == 1.0
    # the tanh bound keeps a gradient above the ceiling, the clip does not
    q = torch.tensor([[0.5, 0.5]], requires_grad=True)
    label_contrast(q, aff, rep, 0.3, "mean", "tanh")[0].backward()
    g_tanh = q.grad.clone()
    q.grad = None
    label_contrast(q, aff, rep, 0.3, "mean", "clip")[0].backward()
    assert not torch.allclose(g_tanh, q.grad)
    assert repulsion_ceiling("log_c", 28) == pytest.approx(math.log(28))


def test_entropy_sign_prevents_collapse() -> None:
    balanced = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    collapsed = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert marginal_entropy(balanced, "maximize").item() == pytest.approx(-math.log(2), abs=1e-6)
    assert marginal_entropy(collapsed, "maximize").item() == pytest.approx(0.0, abs=1e-6)
    # the minimised term is lower for balanced use of the pseudo-classes ...
    assert marginal_entropy(balanced, "maximize") < marginal_entropy(collapsed, "maximize")
    # ... and the printed sign rewards collapse
    assert marginal_entropy(balanced, "paper").item() == pytest.approx(math.log(2), abs=1e-6)
    assert marginal_entropy(balanced, "paper") > marginal_entropy(collapsed, "paper")


def test_mil_bce() -> None:
    y = torch.tensor([[0.5, 0.25]])
    z = torch.tensor([[1.0, 0.0]])
    assert mil_bce(y, z).item() == pytest.approx((math.log(2) - math.log(0.75)) / 2, abs=1e-6)


def test_memory_bank_momentum_update() -> None:
    bank = MemoryBank(3, 2, momentum=0.9, generator=torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(2 / 3)
    assert bank.bank.abs().max().item() <= bound
    bank.bank[1] = torch.tensor([1.0, 0.0])
    before = bank.bank.clone()
    bank.update(torch.tensor([1]), torch.tensor([[0.0, 1.0]]))
    n = math.hypot(0.9, 0.1)
    assert bank.bank[1].tolist() == pytest.approx([0.9 / n, 0.1 / n], abs=1e-6)
    assert torch.equal(bank.bank[[0, 2]], before[[0, 2]])  # other rows untouched
    with pytest.raises(ValueError, match="momentum"):
        MemoryBank(2, 2, momentum=1.0)


def test_affinity_and_repulsion_sets() -> None:
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    aff, rep = affinity_sets(f, 1)
    assert aff[:, 0].tolist() == [1, 0, 1, 2]
    assert rep[:, 0].tolist() == [3, 3, 3, 0]
    aff, rep = affinity_sets(f, 2)
    assert sorted(aff[0].tolist()) == [1, 2] and sorted(rep[0].tolist()) == [2, 3]
    assert all(i not in aff[i] and i not in rep[i] for i in range(4))
    with pytest.raises(ValueError, match="top_k"):
        affinity_sets(f, 4)
