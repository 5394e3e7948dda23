"""The benchmark helpers: FLOP counts against known values, bf16 agreement, timing rows."""

from __future__ import annotations

import pytest
import torch

from avpipe.features import bench, registry

# One thread: on a shared, loaded 2-core box OpenMP barriers make 2 threads ~10x slower.
torch.set_num_threads(1)


def test_vggish_flops_match_the_architecture() -> None:
    """VGGish on a 96x64 patch: 0.86 GMAC = 1.73 GFLOP."""
    ext = registry.build("vggish", {"weights": "random"}).to("cpu")
    batch = bench.synthetic_batch(ext.spec, 1)
    assert batch.shape == (1, 15600)
    assert bench.flops_per_segment(ext, batch) == pytest.approx(1.73e9, rel=0.01)


def test_r21d_flops_scale_with_frames_and_pixels() -> None:
    spec_opts = {"weights": "random", "input_size": 32, "frames_per_segment": 2}
    ext = registry.build("r2plus1d18", spec_opts).to("cpu")
    batch = bench.synthetic_batch(ext.spec, 1, (24, 40))
    assert batch.shape == (1, 2, 24, 40, 3) and batch.dtype == torch.uint8
    # 40.52 GFLOP at 8 x 112 x 112; convs scale with T*H*W until strides bottom out
    flops = bench.flops_per_segment(ext, batch)
    assert 0.3 * 40.52e9 * (2 * 32 * 32) / (8 * 112 * 112) < flops < 40.52e9 / 8


def test_bf16_agreement_and_throughput_row() -> None:
    opts = {"weights": "random", "input_size": 32, "frames_per_segment": 2}
    spec = registry.spec_for("vgg19_pool5", opts)
    batch = bench.synthetic_batch(spec, 2, (32, 48))
    agree = bench.bf16_agreement("vgg19_pool5", opts, batch, torch.device("cpu"))
    assert agree["cos_min"] >= 0.999 or agree["precision"] == "fp32"
    ext = registry.build("vgg19_pool5", opts).to("cpu")
    secs = bench.time_extractor(ext, batch, iters=2, warmup=0)
    row = bench.Throughput("vgg19_pool5", "x", 2, secs, bench.items_per_segment(spec)).row()
    assert row["items_per_s"] == pytest.approx(2 * row["segments_per_s"])
    assert row["segments_per_s"] == pytest.approx(4 / sum(secs))
