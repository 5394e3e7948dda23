"""The data contract every method reads through (avpipe.training.data)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from stream_flags import drop_stream

from avpipe.config import ConfigError
from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.store import write_store
from avpipe.training import data
from avpipe.training.data import Input, Loading, fit_standardizer, open_splits, read_rows
from avpipe.training.device import resolve_device

CPU = torch.device("cpu")
SIZES = {"train": 12, "val": 4, "test": 4}
T = 6
MAP = (7, 7, 112)  # 64 KiB per video: one video per chunk, as real maps


def _toy(root: Path, n_seg_store: dict[int, int] | None = None) -> tuple[Manifest, dict]:
    """Maps (N, T, 7, 7, 112) float16, one video per chunk; audio (N, T, 5) float32 in
    multi-video chunks.  Train and test features have different means; audio channel 4
    is constant.  Video 2 has 4 segments in the manifest, video 3 has 3 in the stores."""
    rng = np.random.default_rng(0)
    n = sum(SIZES.values())
    split = [s for s, k in SIZES.items() for _ in range(k)]
    shift = np.array([0.0 if s == "train" else 5.0 for s in split])[:, None, None]
    visual = rng.normal(2.0, 3.0, (n, T, *MAP)) + shift[..., None, None]
    audio = rng.normal(-1.0, 0.01, (n, T, 5)) + shift
    audio[:, :, 4] = 7.0
    ids = [f"v{i:02d}" for i in range(n)]
    n_seg = np.full(n, T)
    for r, k in (n_seg_store or {3: 3}).items():
        n_seg[r] = k
        visual[r, k:] = audio[r, k:] = 0
    stores = {"visual": root / "visual.zarr", "audio": root / "audio.zarr"}
    write_store(stores["visual"], {"features": visual.astype(np.float16)}, ids, n_seg, {})
    write_store(stores["audio"], {"features": audio.astype(np.float32)}, ids, n_seg, {})
    samples = [
        Sample(v, v, s, f"{v}.mp4", float(T), 4 if i == 2 else T)
        for i, (v, s) in enumerate(zip(ids, split, strict=True))
    ]
    return Manifest("toy", "folder", ["a", "b"], samples, []), stores


def _open(m: Manifest, stores: dict, loading: Loading) -> dict[str, data.Split]:
    inputs = {k: Input(p) for k, p in stores.items()}
    return open_splits(m, inputs, {s: m.split(s) for s in SIZES}, loading)


def _real(split: data.Split, name: str) -> np.ndarray:
    """The stored values of ``name`` on real segments, (segments * positions, channels)."""
    x = split.raw(np.arange(len(split)))[name].numpy().astype(np.float64)
    return x[split.mask].reshape(-1, x.shape[-1])


def test_statistics_come_from_the_training_split_with_one_floor(tmp_path: Path) -> None:
    m, stores = _toy(tmp_path)
    splits = _open(m, stores, Loading())
    norm = fit_standardizer(splits["train"])
    for name in ("visual", "audio"):
        x = _real(splits["train"], name)
        np.testing.assert_allclose(norm.mean[name], x.mean(0), rtol=1e-6)
        want = np.where(x.std(0) > 1e-6, x.std(0) + data.STD_EPS, 1.0)
        np.testing.assert_allclose(norm.std[name], want, rtol=1e-5)
    assert norm.std["audio"][4] == 1.0 and norm.mean["audio"][4] == 7.0  # constant channel
    assert abs(norm.mean["visual"].mean() - 2.0) < 0.5  # train only (test is shifted by 5)
    for s in splits.values():
        s.norm = norm
    test = splits["test"].batch(np.arange(4), CPU)
    assert test["audio"][test["mask"]][:, 4].abs().max() == 0  # centred, never blown up
    assert test["visual"][test["mask"]].mean() > 1.0  # test z-scored with train statistics
    zero, one = data.channel_stats(np.zeros(3), np.zeros(3), 0)
    assert not zero.any() and (one == 1).all()


def test_mask_joins_stores_and_manifest_and_zeroes_padding(tmp_path: Path) -> None:
    m, stores = _toy(tmp_path, {3: 3, 5: 0})
    splits = _open(m, stores, Loading())
    train = splits["train"]
    assert train.n_segments.tolist()[:5] == [6, 6, 4, 3, 6]  # manifest 4, store 3
    assert "v05" not in train.video_ids and train.missing["no_segment"] == ["v05"]
    train.norm = fit_standardizer(train)
    b = train.batch(np.arange(len(train)), CPU)
    assert b["visual"].dtype == torch.float32 and b["visual"].shape == (11, T, *MAP)
    assert not b["visual"][~b["mask"]].any() and not b["audio"][~b["mask"]].any()


def test_videos_without_a_stream_are_dropped_everywhere(tmp_path: Path, caplog) -> None:
    m, stores = _toy(tmp_path)
    drop_stream(stores["audio"], "has_audio", ["v01", "v13"])
    with caplog.at_level(logging.WARNING):
        splits = _open(m, stores, Loading())
    assert "toy/train: 1 of 12 videos lack a stream" in caplog.text
    assert "v01" not in splits["train"].video_ids and "v13" not in splits["val"].video_ids
    assert splits["train"].missing == {"no_video": [], "no_audio": ["v01"]}
    assert splits["val"].missing == {"no_video": [], "no_audio": ["v13"]}
    # the silent video's zero rows are in no statistics
    norm = fit_standardizer(splits["train"])
    np.testing.assert_allclose(norm.mean["audio"], _real(splits["train"], "audio").mean(0))
    assert abs(norm.mean["audio"][0] + 1.0) < 0.01


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_in_memory_batches_bit_for_bit(
    tmp_path: Path, workers: int, monkeypatch
) -> None:
    m, stores = _toy(tmp_path)
    monkeypatch.setattr(data, "PARALLEL_LOAD_BYTES", 0)  # maps held: read by the workers
    mem = _open(m, stores, Loading(budget_mb=100, workers=workers))
    streamed = _open(m, stores, Loading(budget_mb=0, workers=workers))
    assert all(s.in_memory for s in mem.values())
    assert not any(s.sources["visual"].held is not None for s in streamed.values())
    norm = fit_standardizer(mem["train"])
    streamed_norm = fit_standardizer(streamed["train"])
    for k in norm.mean:
        assert np.array_equal(norm.mean[k], streamed_norm.mean[k])
        assert np.array_equal(norm.std[k], streamed_norm.std[k])
    order = [np.array([5, 0, 11]), np.array([3, 7]), np.array([1, 2, 4, 6])]
    for name in SIZES:
        mem[name].norm = streamed[name].norm = norm
        order = [i[i < len(mem[name])] for i in order]
        pairs = zip(mem[name].batches(order, CPU), streamed[name].batches(order, CPU), strict=True)
        for (i1, b1), (i2, b2) in pairs:
            assert np.array_equal(i1, i2)
            for k in ("visual", "audio", "mask"):
                assert b1[k].dtype == b2[k].dtype and torch.equal(b1[k], b2[k])


def test_reused_worker_buffers_never_change_a_batch_handed_out(tmp_path: Path) -> None:
    """Loader workers decode into a ring of shared buffers in turn; batches from to_device stay
    intact however long they are kept, over several turns of the ring and two epochs."""
    m, stores = _toy(tmp_path)
    mem = _open(m, stores, Loading(budget_mb=100, workers=0))["train"]
    streamed = _open(m, stores, Loading(budget_mb=0, workers=2))["train"]
    assert streamed.sources["visual"].held is None
    order = [np.array([i, (i + 5) % 12]) for i in range(12)]  # 6 turns of each worker
    kept = [b for _ in range(2) for _, b in streamed.batches(order, CPU)]
    want = [b for _ in range(2) for _, b in mem.batches(order, CPU)]
    for b1, b2 in zip(want, kept, strict=True):
        assert torch.equal(b1["visual"], b2["visual"]) and torch.equal(b1["audio"], b2["audio"])
    raw = next(streamed.stored_batches(order[:1]))[1]["visual"]
    assert raw.is_shared() and raw.dtype == torch.float16


def test_workers_start_at_open_and_their_buffers_stay_mapped(tmp_path: Path) -> None:
    """A streamed split's loader workers are running when open_splits returns, with the
    stores open, and the training process keeps one mapping per worker buffer: over two
    epochs of 12 batches it sees only workers * ring distinct buffers (a new mapping per
    batch cost more CPU there than the wait for the workers)."""
    m, stores = _toy(tmp_path)
    train = _open(m, stores, Loading(budget_mb=0, workers=2))["train"]
    started = train._loader._iterator
    assert started is not None and all(w.is_alive() for w in started._workers)
    order = [np.array([i, (i + 5) % 12]) for i in range(12)]
    seen = {raw["visual"].data_ptr() for _ in range(2) for _, raw in train.stored_batches(order)}
    assert train._loader._iterator is started  # the same workers, not restarted
    assert len(seen) == 2 * (data.prefetch(2) + 1)
    train.release()
    assert not any(w.is_alive() for w in started._workers)


def test_one_budget_for_the_whole_stage(tmp_path: Path) -> None:
    """Vectors are held first, then maps split by split, never past the budget; room is
    kept for the loader's prefetched batches."""
    m, stores = _toy(tmp_path)
    everything = _open(m, stores, Loading(budget_mb=100))
    sizes = {s: {k: src.nbytes for k, src in sp.sources.items()} for s, sp in everything.items()}
    per_sample = max(b // SIZES[s] for s, d in sizes.items() for b in d.values())
    reserve = data.reserved_batches(1) * 1 * per_sample  # workers=1, batch_size=1
    assert data.reserved_batches(1) == 7 and data.reserved_batches(8) == 8 * 2 + 2
    fits = sum(d["audio"] for d in sizes.values()) + sizes["train"]["visual"] + reserve
    assert fits < sum(b for d in sizes.values() for b in d.values())
    splits = _open(m, stores, Loading(budget_mb=fits / 2**20, workers=1, batch_size=1))
    held = {
        s: {k: src.held is not None for k, src in sp.sources.items()} for s, sp in splits.items()
    }
    assert held == {
        "train": {"visual": True, "audio": True},
        "val": {"visual": False, "audio": True},
        "test": {"visual": False, "audio": True},
    }
    # a per-split budget would have held val's and test's maps as well
    assert sizes["val"]["visual"] + sizes["test"]["visual"] < fits - reserve
    # a later step of the stage gives the memory back; the split still reads (streamed)
    before = splits["train"].batch(np.arange(3), CPU)
    splits["train"].release()
    assert not any(src.held is not None for src in splits["train"].sources.values())
    after = splits["train"].batch(np.arange(3), CPU)
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Counting:
    """A zarr-like array that counts the reads."""

    def __init__(self, a: np.ndarray, chunk: int):
        self.a, self.chunks, self.shape, self.dtype = a, (chunk,), a.shape, a.dtype
        self.reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return self.a[key]


def test_rows_of_a_multi_video_chunk_are_read_with_one_read() -> None:
    z = _Counting(np.arange(40 * 3 * 2, dtype=np.float32).reshape(40, 3, 2), chunk=10)
    rows = np.array([3, 31, 7, 5, 35])
    np.testing.assert_array_equal(read_rows(z, rows, 2), z.a[rows, :2])
    assert z.reads == 2


def test_cuda_asked_for_without_cuda_is_a_config_error() -> None:
    assert resolve_device("cpu") == CPU
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert resolve_device("auto") == CPU
    with pytest.raises(ConfigError, match="data.device is 'cuda' but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="run.device is 'cuda:1'"):
        resolve_device("cuda:1", "run.device")
