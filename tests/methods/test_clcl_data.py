"""Feature access of CLCL: standardisation, absent videos, annotator input weighting."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from clcl_fixtures import make_dataset
from grid_cases import CASES, ONE_SECOND, stamp
from stream_flags import drop_stream

from avpipe.config import from_dict
from avpipe.datasets.manifest import Event, Manifest, Sample
from avpipe.io.store import FeatureStore, GridMismatchError
from avpipe.methods.clcl import stages
from avpipe.methods.clcl.config import EMStage, PretrainStage, SelflabelStage
from avpipe.methods.clcl.data import dims, open_features, train_samples
from avpipe.metrics.unsupervised import evaluate
from avpipe.training.data import Loading, fit_standardizer
from avpipe.training.streams import by_split


def test_normalizer_zscores_real_segments(tmp_path) -> None:
    m, v, a = make_dataset(tmp_path, n_train=12, n_test=4)
    feats = open_features(m, v, a, m.samples, Loading(4096))
    feats.norm = fit_standardizer(feats)
    b = feats.batch(np.arange(len(feats)), torch.device("cpu"))
    vis = b.visual[b.mask].reshape(-1, dims(feats)[0])
    aud = b.audio[b.mask]
    for x in (vis, aud):
        assert x.mean(0).abs().max() < 1e-2
        assert (x.std(0, unbiased=False) - 1).abs().max() < 1e-2
    # streamed (budget 0 MiB) gives the same statistics as in memory
    streamed = open_features(m, v, a, m.samples, Loading(0, workers=0))
    assert not streamed.in_memory
    assert np.array_equal(fit_standardizer(streamed).std["audio"], feats.norm.std["audio"])


def test_stores_on_the_manifest_grid_load(tmp_path) -> None:
    """Hand-made stores (no grid attributes) and stores on the 1-s grid give the same data."""
    m, v, a = make_dataset(tmp_path, n_train=6, n_test=2)
    ids = [s.video_id for s in m.samples]
    plain = open_features(m, v, a, m.samples, Loading(4096))
    for store in (v, a):
        stamp(store, ONE_SECOND)
    on_grid = open_features(m, v, a, m.samples, Loading(4096))
    assert on_grid.video_ids == plain.video_ids == ids and on_grid.T == 10
    b1, b2 = (f.batch(np.arange(len(ids)), torch.device("cpu")) for f in (plain, on_grid))
    assert torch.equal(b1.visual, b2.visual) and torch.equal(b1.audio, b2.audio)
    assert b1.audio.abs().sum() > 0


@pytest.mark.parametrize(
    ("case", "which"),
    [("grid hop 0.32", "visual"), ("grid hop 0.32", "audio"), ("legacy vggish", "audio")],
)
def test_stores_off_the_manifest_grid_are_refused(tmp_path, case: str, which: str) -> None:
    m, v, a = make_dataset(tmp_path, n_train=6, n_test=2)
    bad, good = (v, a) if which == "visual" else (a, v)
    stamp(good, ONE_SECOND)
    attrs, message = CASES[case]
    stamp(bad, attrs)
    with pytest.raises(GridMismatchError, match=message) as e:
        open_features(m, v, a, m.samples, Loading(4096))
    assert str(e.value).startswith(f"{bad}: ")
    # on a manifest with the store's grid the same store is accepted
    if "grid" in attrs:
        grid = attrs["grid"]
        m = m.replace(segment_hop=grid["hop_s"], segment_win=grid["window_s"])
        stamp(good, {"grid": {**grid}})
        assert len(open_features(m, v, a, m.samples, Loading(4096))) == 8


def test_absent_videos_are_dropped_and_logged(tmp_path, caplog) -> None:
    m, v, a = make_dataset(tmp_path, n_train=8, n_test=4)
    ids = [s.video_id for s in m.samples]
    ghost = Sample("ghost", "ghost", "train", "videos/ghost.mp4", 10.0, 10)
    with caplog.at_level(logging.WARNING):
        feats = open_features(m, v, a, [*m.samples[:3], ghost, *m.samples[3:]], Loading(4096))
    assert feats.video_ids == ids
    assert "ghost" in caplog.text


def test_chain_runs_with_a_video_missing_from_the_stores(tmp_path) -> None:
    """A manifest sample whose video failed extraction (on_error: skip) is skipped."""
    m, v, a = make_dataset(tmp_path, n_train=12, n_test=4)
    ghosts = [
        Sample("ghost_tr", "ghost_tr", "train", "videos/ghost_tr.mp4", 10.0, 10),
        Sample("ghost_te", "ghost_te", "test", "videos/ghost_te.mp4", 10.0, 10),
    ]
    events = [Event(g.sample_id, m.classes[0], "audio-visual", 0.0, 5.0) for g in ghosts]
    m = Manifest(m.dataset, m.format, m.classes, [*m.samples, *ghosts], [*m.events, *events])
    cfg = {
        "data": {"device": "cpu", "standardize": True},
        "pretrain": {"epochs": 1, "batch_size": 8, "encoder": {"d_model": 8, "heads": 2}},
        "selflabel": {"hidden": 8, "top_k": 2, "epochs": 1, "visual_weight": 0.5},
        "em": {"rounds": 2, "epochs": 1, "annotator_epochs": 1, "init": "previous"},
    }
    stages.run_pretrain(
        m,
        v,
        a,
        from_dict(PretrainStage, {k: cfg[k] for k in ("data", "pretrain")}),
        0,
        tmp_path / "pre",
    )
    sl = from_dict(SelflabelStage, {k: cfg[k] for k in ("data", "selflabel")})
    stages.run_selflabel(m, v, a, tmp_path / "pre", sl, 0, tmp_path / "sl")
    em = from_dict(EMStage, {k: cfg[k] for k in ("data", "selflabel", "em")})
    prev = None
    for k in (1, 2):
        out = tmp_path / f"round{k}"
        stages.run_em_round(m, v, a, tmp_path / "pre", tmp_path / "sl", prev, k, em, 0, out)
        prev = out
    with np.load(prev / "predictions.npz") as z:
        pred = {n: z[n] for n in z.files}
    assert "ghost_tr" not in set(pred["sample_id"]) and "ghost_te" not in set(pred["sample_id"])
    assert len(pred["train_sample_id"]) == 12
    assert 0 <= evaluate(m, pred, {"split": "test"}).metrics["accuracy"] <= 100


def test_visual_weight_scales_the_visual_half() -> None:
    f = torch.arange(8.0).reshape(2, 4)
    cfg = from_dict(SelflabelStage, {"selflabel": {"visual_weight": 0.5}})
    g = stages._annotator_input(f, cfg)
    assert torch.equal(g[:, :2], f[:, :2]) and torch.equal(g[:, 2:], 0.5 * f[:, 2:])
    same = from_dict(SelflabelStage, {})
    assert stages._annotator_input(f, same) is f


def test_videos_without_a_stream_are_dropped_from_training_and_predictions(
    tmp_path, caplog
) -> None:
    """v001 (train) has no video stream, v009 (test) no audio stream: both are left out,
    named in the log and the summary, and their zero rows are not in the statistics."""
    m, v, a = make_dataset(tmp_path, n_train=8, n_test=4)
    drop_stream(v, "has_video", ["v001"])
    drop_stream(a, "has_audio", ["v009"])
    train = [s.video_id for s in m.split("train")]
    with caplog.at_level(logging.WARNING):
        feats = open_features(m, v, a, m.split("train"), Loading(4096), name="train")
    kept = [i for i in train if i != "v001"]
    assert feats.video_ids == kept
    assert feats.missing == {"no_video": ["v001"], "no_audio": []}
    assert "toy/train: 1 of 8 videos lack a stream" in caplog.text and "v001" in caplog.text
    norm = fit_standardizer(feats)
    vis = FeatureStore(v).load(kept).reshape(-1, dims(feats)[0])
    aud = FeatureStore(a).load(kept).reshape(-1, dims(feats)[1])
    np.testing.assert_allclose(norm.mean["visual"], vis.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.std["visual"], vis.std(0), rtol=1e-3)
    np.testing.assert_allclose(norm.mean["audio"], aud.mean(0), rtol=1e-5, atol=1e-6)
    everything = open_features(m, v, a, m.samples, Loading(4096))
    assert everything.video_ids == [f"v{i:03d}" for i in range(12) if i not in (1, 9)]
    assert by_split(m.samples, everything.missing) == {
        "train": {"no_video": ["v001"], "no_audio": []},
        "test": {"no_video": [], "no_audio": ["v009"]},
    }

    cfg = {
        "data": {"device": "cpu", "standardize": True},
        "pretrain": {"epochs": 1, "batch_size": 8, "encoder": {"d_model": 8, "heads": 2}},
        "selflabel": {"hidden": 8, "top_k": 2, "epochs": 1},
        "em": {"rounds": 1, "epochs": 1, "annotator_epochs": 1},
    }
    pre = stages.run_pretrain(
        m, v, a, from_dict(PretrainStage, {k: cfg[k] for k in ("data", "pretrain")}), 0, tmp_path
    )
    assert pre["n_videos"] == 7
    assert pre["missing_stream"] == {"train": {"no_video": ["v001"], "no_audio": []}}
    sl = from_dict(SelflabelStage, {k: cfg[k] for k in ("data", "selflabel")})
    stages.run_selflabel(m, v, a, tmp_path, sl, 0, tmp_path / "sl")
    em = from_dict(EMStage, {k: cfg[k] for k in ("data", "selflabel", "em")})
    out = tmp_path / "round1"
    summary = stages.run_em_round(m, v, a, tmp_path, tmp_path / "sl", None, 1, em, 0, out)
    assert summary["missing_stream"] == {
        "train": {"no_video": ["v001"], "no_audio": []},
        "test": {"no_video": [], "no_audio": ["v009"]},
    }
    with np.load(out / "predictions.npz") as z:
        assert z["sample_id"].tolist() == [f"s{i:03d}" for i in range(12) if i not in (1, 9)]
        assert len(z["train_sample_id"]) == 7


def test_train_videos_with_event_leaves_out_background_only_videos() -> None:
    """An AVE line with an empty interval [t, t) is a background-only video: ``with_event``
    leaves it out of CLCL's training videos, ``all`` keeps it; other splits never count."""
    samples = [Sample(f"v{i}", f"v{i}", "train", f"v{i}.mp4", 10.0, 10) for i in range(3)]
    samples.append(Sample("t0", "t0", "test", "t0.mp4", 10.0, 10))
    events = [
        Event("v0", "bark", "audio-visual", 2.0, 7.0),
        Event("v1", "bark", "audio-visual", 0.0, 0.0),  # background-only
        Event("v2", "horn", "audio-visual", None, None),  # weak label
        Event("t0", "horn", "audio-visual", 0.0, 10.0),
    ]
    m = Manifest("toy", "ave", ["bark", "horn"], samples, events)
    assert [s.sample_id for s in train_samples(m, "auto")] == ["v0", "v1", "v2"]
    assert [s.sample_id for s in train_samples(m, "auto", "with_event")] == ["v0", "v2"]
    only_bg = Manifest("bg", "ave", ["bark"], samples[1:2], events[1:2])
    with pytest.raises(ValueError, match="no present samples with an event in split 'train'"):
        train_samples(only_bg, "train", "with_event")
