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


def test_annotator_step_sends_each_video_through_phi_once() -> None:
    """A batch's anchors, affinity and repulsion sets name the same videos many times; the
    step puts each distinct video through the annotator once, with the loss and gradients
    of the paper's formulation (every anchor and neighbour row through Phi)."""
    import torch

    from avpipe.methods.clcl.annotator import AnnotatorTrainer, _loop_config, new_annotator
    from avpipe.methods.clcl.config import SelflabelConfig
    from avpipe.methods.clcl.losses import label_contrast, marginal_entropy
    from avpipe.training.loop import Step

    g = torch.Generator().manual_seed(1)
    f = torch.randn(30, 16, generator=g)
    cfg = SelflabelConfig(hidden=8, top_k=5, batch_size=12)
    ann = new_annotator(16, cfg, 4, seed=3)
    trainer = AnnotatorTrainer(f, ann, cfg, _loop_config(cfg, 1))
    idx = np.array([0, 4, 7, 9, 12, 15, 18, 21, 22, 25, 28, 29])
    rows_seen = []
    hook = ann.register_forward_hook(lambda m, inp, out: rows_seen.append(inp[0].shape[0]))
    loss, parts = trainer.batch_loss(Step(idx, 1, 0, 1))
    hook.remove()
    loss.backward()
    fast = [p.grad.clone() for p in ann.parameters()]
    assert rows_seen == [
        len(np.unique(np.r_[idx, trainer.aff[idx].ravel(), trainer.rep[idx].ravel()]))
    ]
    assert rows_seen[0] <= 30 < 12 * (1 + 2 * 5)

    ann.zero_grad()
    i = torch.from_numpy(idx)
    probs = ann(
        torch.cat([f[i], f[trainer.aff[i]].reshape(-1, 16), f[trainer.rep[i]].reshape(-1, 16)])
    )
    p, p_aff, p_rep = probs[:12], probs[12:72].view(12, 5, -1), probs[72:].view(12, 5, -1)
    l_c, _ = label_contrast(
        p, p_aff, p_rep, trainer.clip, cfg.neighbour_reduction, cfg.repulsion_bound
    )
    naive = l_c + cfg.entropy_weight * marginal_entropy(p, cfg.entropy_sign)
    naive.backward()
    assert loss.item() == pytest.approx(naive.item(), rel=1e-6)
    assert parts["label_contrast"] == pytest.approx(l_c.item(), rel=1e-6)
    for a, b in zip(fast, ann.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad, rtol=1e-5, atol=1e-7)


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


def test_kmeans_init_starts_every_restart_from_its_k_means_partition() -> None:
    """selflabel.init = kmeans: each restart's annotator is first fitted to the k-means
    partition (cosine) of f, so before any label-contrast epoch its pseudo-labels are
    that partition; the partition follows the restart's seed, not whatever ran before."""
    import dataclasses

    import torch
    from sklearn.metrics import normalized_mutual_info_score

    from avpipe.methods.clcl import annotator as A
    from avpipe.methods.clcl.config import SelflabelConfig

    g = torch.Generator().manual_seed(0)
    # four directions (cosine clusters) at different norms: k-means on the raw rows
    # would split by norm, on the normalised rows it finds the directions
    centres = torch.randn(4, 16, generator=g) * 3
    scale = torch.rand(40, 1, generator=g) * 4 + 0.5
    f = (centres.repeat_interleave(10, 0) + torch.randn(40, 16, generator=g) * 0.3) * scale
    truth = np.repeat(np.arange(4), 10)
    y = A.kmeans_labels(f, 4, seed=3)
    torch.rand(10)
    assert np.array_equal(y, A.kmeans_labels(f, 4, seed=3))
    assert normalized_mutual_info_score(truth, y) == pytest.approx(1.0)
    cfg = SelflabelConfig(hidden=16, top_k=4, batch_size=10, lr=0.1, log_every=1000)
    ann = A.new_annotator(16, cfg, 4, seed=3)
    before = A.predict(ann, f).argmax(1)
    A.kmeans_init(ann, f, dataclasses.replace(cfg, init_epochs=30), 3, torch.device("cpu"))
    after = A.predict(ann, f).argmax(1)
    assert normalized_mutual_info_score(truth, before) < 0.9
    assert np.array_equal(after, y)
    # through fit_annotator: zero label-contrast epochs leave the k-means partition
    kept, _, _ = A.fit_annotator(
        f,
        dataclasses.replace(cfg, init="kmeans", init_epochs=30),
        4,
        0,
        3,
        torch.device("cpu"),
        kmeans=True,
    )
    assert normalized_mutual_info_score(truth, A.predict(kept, f).argmax(1)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("study_init", "setting", "stage_b"),
    [
        ("previous", {"selflabel.init": "seeded"}, set()),  # E-steps only: stage B reused
        ("previous", {"selflabel.init": "kmeans"}, {"selflabel.init"}),  # stage B reruns
        ("kmeans", {"selflabel.init": "previous"}, {"selflabel.init"}),  # ... and back
        ("kmeans", {"selflabel.init_epochs": 40}, {"selflabel.init_epochs"}),
        ("previous", {"selflabel.init_epochs": 40}, set()),
        ("kmeans", {"em.annotator_epochs": 50}, set()),
    ],
)
def test_clcl_select_reruns_stage_b_only_for_what_it_reads(
    tmp_path, study_init: str, setting: dict, stage_b: set
) -> None:
    """scripts/clcl_select.py reuses the study's stage B unless the setting changes a key
    stage B reads: selflabel.init only through the k-means start, which stage B uses too."""
    import argparse
    import importlib.util
    import json
    from pathlib import Path

    from avpipe.config import to_dict
    from avpipe.methods.clcl.config import EMStage, PretrainStage, SelflabelStage

    path = Path(__file__).resolve().parents[2] / "scripts" / "clcl_select.py"
    spec = importlib.util.spec_from_file_location("clcl_select", path)
    cs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cs)
    for stage, cls, sub in (
        ("pretrain", PretrainStage, ""),
        ("selflabel", SelflabelStage, ""),
        ("em", EMStage, "round1"),
    ):
        cfg = to_dict(cls())
        if "selflabel" in cfg:
            cfg["selflabel"]["init"] = study_init
        folder = tmp_path / stage / "synth_ave" / "seed0" / sub
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"config": cfg}))
    args = argparse.Namespace(results=tmp_path, dataset="synth_ave", out=tmp_path / "out")
    seed = cs.Seed(args, setting, "s", 0)
    assert seed.keys["selflabel"] == stage_b
    assert seed.keys["later"] >= set(setting)
    study_b = tmp_path / "selflabel" / "synth_ave" / "seed0"
    assert (seed.selflabel() == study_b) == (not stage_b)


def test_stage_b_with_the_k_means_start_labels_the_k_means_partition(chain: dict) -> None:
    """selflabel.init = kmeans reaches stage B: with no label-contrast epoch its pseudo-labels
    are the k-means partition of the features it was given (round 1's saved embedding)."""
    import torch
    from clcl_chain import CFG
    from sklearn.metrics import normalized_mutual_info_score

    from avpipe.config import from_dict
    from avpipe.methods.clcl import stages
    from avpipe.methods.clcl.annotator import kmeans_labels
    from avpipe.methods.clcl.config import SelflabelStage

    r, manifest = chain["root"], chain["manifest"]
    v, a = chain["stores"]
    with np.load(r / "round1" / "embeddings.npz") as e:
        ids, f = e["sample_id"].tolist(), e["embedding"]
    video = {s.sample_id: s.video_id for s in manifest.samples}
    want = kmeans_labels(torch.from_numpy(f), 4, seed=0)

    def stage_b_labels(init: str) -> list[int]:
        sl = {**CFG["selflabel"], "init": init, "init_epochs": 60, "epochs": 0}
        cfg = from_dict(SelflabelStage, {"data": CFG["data"], "selflabel": sl})
        stages.run_selflabel(manifest, v, a, r / "pre", cfg, 0, r / f"sl_{init}")
        with np.load(r / f"sl_{init}" / "pseudo_labels.npz") as z:
            got = dict(zip(z["video_id"].tolist(), z["pseudo_label"].tolist(), strict=True))
        return [got[video[i]] for i in ids]

    # the fitted annotator gives each video its k-means cluster's very index
    kmeans = np.asarray(stage_b_labels("kmeans"))
    assert normalized_mutual_info_score(want, kmeans) > 0.95
    assert np.mean(kmeans == want) >= 0.95
    # without the k-means start, the untrained annotator's indices are others
    seeded = np.asarray(stage_b_labels("seeded"))
    assert np.mean(seeded == want) < 0.5
