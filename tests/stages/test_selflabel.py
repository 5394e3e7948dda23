"""Stage B outputs: a pseudo-label for every training video, several pseudo-classes used."""

from __future__ import annotations

import numpy as np
import pytest
from clcl_chain import run_chain


@pytest.fixture(scope="module")
def chain() -> dict:
    return run_chain()


def test_pseudo_labels(chain: dict) -> None:
    with np.load(chain["root"] / "sl" / "pseudo_labels.npz") as z:
        assert z["z"].shape == (40, 4)
        assert np.allclose(z["z"].sum(1), 1.0, atol=1e-5)
        assert len(np.unique(z["pseudo_label"])) >= 3
    rows = (chain["root"] / "sl" / "pseudo_labels.tsv").read_text().splitlines()
    assert len(rows) == 41


def test_annotator_init_depends_only_on_the_seed() -> None:
    import torch

    from avpipe.methods.clcl.annotator import new_annotator
    from avpipe.methods.clcl.config import SelflabelConfig

    cfg = SelflabelConfig(hidden=8)
    a = new_annotator(16, cfg, 4, seed=5)
    torch.rand(100)  # whatever ran before must not matter
    b = new_annotator(16, cfg, 4, seed=5)
    c = new_annotator(16, cfg, 4, seed=6)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_restarts_keep_the_lowest_objective() -> None:
    """restarts = 1 is one annotator from the seed; restarts = 3 keeps the restart whose
    label-contrast objective over all videos is the lowest, restart 0 being the seed's."""
    import dataclasses

    import torch

    from avpipe.methods.clcl.annotator import fit_annotator, objective
    from avpipe.methods.clcl.config import SelflabelConfig

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 3
    f = centres.repeat_interleave(10, 0) + torch.randn(30, 16, generator=g)
    cfg = SelflabelConfig(hidden=8, top_k=4, batch_size=10, log_every=1000)
    cpu = torch.device("cpu")
    one, _, s1 = fit_annotator(f, cfg, 3, 3, seed=2, device=cpu)
    best, _, s3 = fit_annotator(f, dataclasses.replace(cfg, restarts=3), 3, 3, 2, cpu)
    assert len(s1) == 1 and len(s3) == 3
    assert s3[0] == pytest.approx(s1[0])
    assert len(set(s3)) == 3  # the restarts differ
    assert objective(best, f, cfg) == pytest.approx(min(s3))
    assert objective(one, f, cfg) == pytest.approx(s1[0])
    with pytest.raises(ValueError, match="restarts"):
        fit_annotator(f, dataclasses.replace(cfg, restarts=0), 3, 3, 2, cpu)


def test_consensus_keeps_the_medoid_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """restart_choice = consensus keeps the restart whose pseudo-labels have the highest
    mean NMI to the other restarts' (here every restart's labels are set by hand: the
    second one is the medoid, although the first has the lowest objective)."""
    import dataclasses

    import torch

    from avpipe.methods.clcl import annotator as A
    from avpipe.methods.clcl.config import SelflabelConfig

    parts = iter([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 1], [0, 1, 1, 2, 2, 1]])
    objectives = iter([-3.0, -2.0, -1.0])
    monkeypatch.setattr(A, "train_annotator", lambda *a, **k: None)
    monkeypatch.setattr(A, "objective", lambda *a, **k: next(objectives))
    monkeypatch.setattr(A, "predict", lambda *a, **k: np.eye(3)[next(parts)])
    cfg = SelflabelConfig(hidden=4, top_k=2, restarts=3, restart_choice="consensus")
    f, cpu = torch.zeros(6, 8), torch.device("cpu")
    kept, _, scores = A.fit_annotator(f, cfg, 3, 1, seed=0, device=cpu)
    assert scores == [-3.0, -2.0, -1.0]
    second = A.new_annotator(8, cfg, 3, seed=A.RESTART_STRIDE)
    for pk, ps in zip(kept.parameters(), second.parameters(), strict=True):
        assert torch.equal(pk, ps)
    with pytest.raises(ValueError, match="restart_choice"):
        A.fit_annotator(f, dataclasses.replace(cfg, restart_choice="best"), 3, 1, 0, cpu)
