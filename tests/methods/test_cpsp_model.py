"""PSP backbone pieces, heads, predictions and one optimisation step (jasongief/CPSP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avpipe.methods.cpsp.config import ExperimentConfig, LossWeights, ModelConfig
from avpipe.methods.cpsp.experiment import Batch, objective, psp_weak_target
from avpipe.methods.cpsp.model import (
    AudioGuidedAttention,
    Output,
    PSPNet,
    predict_segments,
    propagation_weights,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second OpenMP thread only adds contention on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = ModelConfig(
    audio_hidden=16, embed=8, attention_hidden=8, visual_hidden=8, lstm_hidden=8, segment_hidden=8
)


def test_propagation_weights_prune_below_threshold_and_renormalise() -> None:
    sim = torch.tensor([[[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    got = propagation_weights(sim, threshold=0.2)
    assert torch.allclose(got[0, 0], torch.tensor([0.75, 0.25, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(got[0, 1], torch.full((4,), 0.25), atol=1e-6)
    got = propagation_weights(sim, threshold=0.3)
    assert torch.allclose(got[0, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(got[0, 1], torch.zeros(4), atol=1e-6)  # nothing above: no propagation


def test_attention_over_identical_positions_returns_that_vector() -> None:
    torch.manual_seed(0)
    att = AudioGuidedAttention(visual_dim=5, audio_dim=3, positions=4, hidden=6)
    vec = torch.randn(2, 3, 1, 5)
    out = att(vec.expand(2, 3, 4, 5), torch.randn(2, 3, 3))
    assert torch.allclose(out, vec.squeeze(2), atol=1e-6)


def test_predict_segments_gates_the_video_class() -> None:
    out = Output(
        *(torch.zeros(1, 3, 2) for _ in range(3)),
        pair_sim=torch.zeros(1, 3),
        event_logit=torch.tensor([[2.0, -1.0, 0.1]]),
        class_logit=torch.tensor([[0.1, 0.9, 0.3]]),
    )
    assert predict_segments(out, n_classes=3).tolist() == [[1, 3, 1]]
    out = Output(
        *(torch.zeros(1, 2, 2) for _ in range(3)),
        pair_sim=torch.zeros(1, 2),
        segment_logit=torch.tensor([[[0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 2.0]]]),
    )
    assert predict_segments(out, n_classes=3).tolist() == [[1, 3]]


@pytest.mark.parametrize("setting", ["full", "weak"])
@pytest.mark.parametrize("head", ["cpsp", "psp"])
def test_shapes(setting: str, head: str) -> None:
    torch.manual_seed(0)
    net = PSPNet(6, 4, 9, 3, SMALL, setting, head, 0.099).eval()
    out = net(torch.randn(2, 5, 9, 6), torch.randn(2, 5, 4))
    assert out.fused.shape == (2, 5, 16) and out.pair_sim.shape == (2, 5)
    if head == "cpsp":
        assert out.event_logit.shape == (2, 5) and out.class_logit.shape == (2, 3)
    else:
        assert out.segment_logit.shape == (2, 5, 4)
    if setting == "weak":
        n = 3 if head == "cpsp" else 4
        assert out.video_prob.shape == (2, n)
        assert torch.allclose(out.video_prob.sum(-1), torch.ones(2))


def _batch(n_classes: int = 3) -> Batch:
    g = torch.Generator().manual_seed(1)
    B, T = 6, 5
    labels = torch.full((B, T), n_classes)
    cls = torch.arange(B) % n_classes
    labels[:, 1:4] = cls[:, None]
    return Batch(
        visual=torch.randn(B, T, 9, 6, generator=g),
        audio=torch.randn(B, T, 4, generator=g),
        mask=torch.ones(B, T, dtype=torch.bool),
        labels=labels,
        fg=(labels < n_classes).float(),
        video_label=torch.nn.functional.one_hot(cls, n_classes).float(),
        video_class=cls,
    )


@pytest.mark.parametrize(
    "setting,weights",
    [
        ("full", LossWeights(avpsp=100, spsa=0.01, vpsa=1, ss=0)),
        ("full", LossWeights(avpsp=0, spsa=0, vpsa=0, ss=1)),
        ("weak", LossWeights(avpsp=0, spsa=0, vpsa=1, ss=0)),
    ],
)
def test_one_adam_step_lowers_the_loss(setting: str, weights: LossWeights) -> None:
    torch.manual_seed(0)
    exp = ExperimentConfig(setting=setting, weights=weights)
    net = PSPNet(6, 4, 9, 3, SMALL, setting, "cpsp", exp.threshold).eval()  # eval: no dropout noise
    b = _batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before, parts = objective(net(b.visual, b.audio), b, exp, 3)
    assert set(parts) == {"cls"} | {
        k for k in ("avpsp", "spsa", "vpsa", "ss") if getattr(weights, k) > 0
    }
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = objective(net(b.visual, b.audio), b, exp, 3)
    assert after.item() < before.item()


def test_psp_weak_target_labels_background_only_videos_background() -> None:
    """The original PSP's weak target: an event video keeps its normalised classes with the
    background column at 0 (AVE mil_labels.h5); a video without events is background
    (labels_noisy.h5)."""
    y = psp_weak_target(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]))
    expected = [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.5, 0.0]]
    assert y.tolist() == expected


def test_weak_background_column_scores_background_only_videos_as_background() -> None:
    """weak_labels background_column (CMRAN weak): a C+1-way category head, the background
    video's target is the background column, and one Adam step lowers that loss."""
    torch.manual_seed(0)
    exp = ExperimentConfig(setting="weak", weights=LossWeights(0, 0, 0, 0),
                           weak_labels="background_column")  # fmt: skip
    net = PSPNet(6, 4, 9, 3, SMALL, "weak", "cpsp", exp.threshold, background_column=True)
    b = _batch()
    b.video_label[0] = 0.0  # a background-only video
    out = net.eval()(b.visual, b.audio)
    assert out.class_logit.shape == (6, 4) and out.video_prob.shape == (6, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before, _ = objective(out, b, exp, 3)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = objective(net(b.visual, b.audio), b, exp, 3)
    assert after.item() < before.item()
    out.class_logit = torch.tensor([[0.0, 0.0, 0.0, 1.0]]).expand(6, 4)
    assert (predict_segments(out, n_classes=3) == 3).all()  # background class: no event


@pytest.mark.parametrize("setting", ["full", "weak"])
def test_padded_segments_change_nothing(setting: str) -> None:
    torch.manual_seed(0)
    net = PSPNet(6, 4, 9, 3, SMALL, setting, "cpsp", 0.099).eval()
    v, a = torch.randn(1, 5, 9, 6), torch.randn(1, 5, 4)
    ref = net(v, a)
    pad_v = torch.cat([v, torch.randn(1, 3, 9, 6)], 1)
    pad_a = torch.cat([a, torch.randn(1, 3, 4)], 1)
    mask = torch.arange(8)[None] < 5
    # batch it with a full-length video so the packed-LSTM path is taken
    out = net(torch.cat([pad_v, pad_v]), torch.cat([pad_a, pad_a]), torch.cat([mask, ~mask | mask]))
    assert torch.allclose(out.fused[0, :5], ref.fused[0], atol=1e-5)
    assert torch.allclose(out.class_logit[0], ref.class_logit[0], atol=1e-5)
    if setting == "weak":
        assert torch.allclose(out.video_prob[0], ref.video_prob[0], atol=1e-5)


def test_streamed_maps_equal_in_memory_maps(tmp_path) -> None:
    from cpsp_toy import make_toy

    from avpipe.methods.cpsp.config import DataConfig
    from avpipe.methods.cpsp.experiment import load_splits
    from avpipe.training.data import fit_standardizer

    manifest, v, a = make_toy(tmp_path, sizes=(6, 3, 3))
    mem = load_splits(manifest, v, a, ("train",), DataConfig(memory_budget_mb=100))["train"]
    cfg = DataConfig(memory_budget_mb=0, loader_workers=0)
    streamed = load_splits(manifest, v, a, ("train",), cfg)["train"]
    assert mem.in_memory and not streamed.in_memory
    idx = np.array([4, 1])
    b1, b2 = mem.batch(idx, torch.device("cpu")), streamed.batch(idx, torch.device("cpu"))
    assert torch.equal(b1.visual, b2.visual) and b1.visual.shape == (2, 10, 9, 16)
    # targets from the manifest: background = C = 3 outside [onset, offset)
    assert set(b1.labels[0].tolist()) == {4 % 3, 3} and b1.video_class.tolist() == [1, 1]
    n1, n2 = fit_standardizer(mem), fit_standardizer(streamed)
    for k in ("visual", "audio"):
        assert np.array_equal(n1.mean[k], n2.mean[k]) and np.array_equal(n1.std[k], n2.std[k])


def test_load_splits_accepts_stores_on_the_manifest_grid(tmp_path) -> None:
    """Hand-made stores (no grid attributes) and stores on the 1-s grid give the same data."""
    from cpsp_toy import make_toy
    from grid_cases import ONE_SECOND, stamp

    from avpipe.methods.cpsp.config import DataConfig
    from avpipe.methods.cpsp.experiment import load_splits

    manifest, v, a = make_toy(tmp_path, sizes=(4, 2, 2))
    plain = load_splits(manifest, v, a, ("train", "test"), DataConfig())
    for store in (v, a):
        stamp(store, ONE_SECOND)
    on_grid = load_splits(manifest, v, a, ("train", "test"), DataConfig())
    for name in ("train", "test"):
        assert on_grid[name].sample_ids == plain[name].sample_ids and on_grid[name].T == 10
        idx = np.arange(len(plain[name]))
        x, y = on_grid[name].raw(idx), plain[name].raw(idx)
        for k in ("visual", "audio"):
            assert torch.equal(x[k], y[k])
    assert len(on_grid["test"]) == 2 and on_grid["test"].raw([0, 1])["audio"].abs().sum() > 0


@pytest.mark.parametrize(
    ("case", "which"),
    [("grid hop 0.32", "visual"), ("grid hop 0.32", "audio"), ("legacy vggish", "audio")],
)
def test_load_splits_refuses_stores_off_the_manifest_grid(tmp_path, case: str, which: str) -> None:
    from cpsp_toy import make_toy
    from grid_cases import CASES, ONE_SECOND, stamp

    from avpipe.io.store import GridMismatchError
    from avpipe.methods.cpsp.config import DataConfig
    from avpipe.methods.cpsp.experiment import load_splits

    manifest, v, a = make_toy(tmp_path, sizes=(4, 2, 2))
    bad, good = (v, a) if which == "visual" else (a, v)
    stamp(good, ONE_SECOND)
    attrs, message = CASES[case]
    stamp(bad, attrs)
    with pytest.raises(GridMismatchError, match=message) as e:
        load_splits(manifest, v, a, ("train",), DataConfig())
    assert str(e.value).startswith(f"{bad}: ")


def test_video_class_largest_index_as_released_or_most_frequent() -> None:
    from avpipe.methods.cpsp.experiment import video_classes

    # 4 classes, background = 4
    labels = np.array(
        [
            [1, 1, 1, 3, 4],  # classes 1 (x3) and 3 (x1): released -> 3, most frequent -> 1
            [2, 0, 0, 4, 4],  # 0 (x2) and 2 (x1): 2 vs 0
            [4, 4, 4, 4, 4],  # no event segment: first video-level label
            [4, 4, 4, 4, 4],  # nothing at all
        ]
    )
    video_label = np.array([[0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]], float)
    assert video_classes(labels, video_label, "largest").tolist() == [3, 2, 2, -1]
    assert video_classes(labels, video_label, "most_frequent").tolist() == [1, 0, 2, -1]
    with pytest.raises(ValueError, match="most_frequent"):
        video_classes(labels, video_label, "mode")
