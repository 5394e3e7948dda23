"""Visual extractors on tiny random inputs: averaging, preprocessing, weights, precision."""

from __future__ import annotations

import pytest
import torch
import torchvision

from avpipe.features import registry
from avpipe.features.torchbase import WeightsUnavailableError, bf16_supported
from avpipe.features.visual import prepare

# One thread: on a shared, loaded 2-core box OpenMP barriers make 2 threads ~10x slower.
torch.set_num_threads(1)


def frames(s: int, f: int, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (s, f, h, w, 3), generator=g, dtype=torch.uint8)


def build(recipe: str, **options: object):
    base = {"weights": "random", "autocast": False, "dtype": "float32"}
    return registry.build(recipe, {**base, **options}).to("cpu")


@pytest.fixture(scope="module")
def r21d():
    return build("r2plus1d18", input_size=32, frames_per_segment=2)


def test_vgg_segment_output_is_mean_of_frame_outputs() -> None:
    seg = build("vgg19_pool5", input_size=64, frames_per_segment=4)
    one = build("vgg19_pool5", input_size=64, frames_per_segment=1)  # same seed, same weights
    x = frames(2, 4)
    per_frame = one(x.reshape(8, 1, *x.shape[2:]))["features"]
    want = per_frame.view(2, 4, *per_frame.shape[1:]).mean(1)
    torch.testing.assert_close(seg(x)["features"], want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(per_frame[0], per_frame[1])  # the mean is no single frame


def test_llp_segment_mean_and_per_frame_vectors() -> None:
    seg = build("resnet152_llp", input_size=32, frames_per_segment=2)
    one = build("resnet152_llp", input_size=32, frames_per_segment=1)
    x = frames(2, 2)
    out = seg(x)
    per_frame = one(x.reshape(4, 1, *x.shape[2:]))["features"].view(2, 2, 2048)
    torch.testing.assert_close(out["frames"], per_frame, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["features"], per_frame.mean(1), rtol=1e-4, atol=1e-5)
    assert (out["frames"] >= 0).all()  # pooled post-ReLU maps
    assert not torch.allclose(per_frame[:, 0], per_frame[:, 1])


def test_segments_are_independent(r21d) -> None:
    x = frames(3, 2)
    both = r21d(x)["features"]
    torch.testing.assert_close(both[1:2], r21d(x[1:2])["features"], rtol=1e-4, atol=1e-5)


def test_r2plus1d_is_temporal(r21d) -> None:
    x = frames(1, 2)
    assert not torch.allclose(r21d(x)["features"], r21d(x.flip(1))["features"])


def test_prepare_direct_normalises() -> None:
    spec = registry.spec_for("r2plus1d18", {"input_size": 32})
    x = torch.full((1, 20, 50, 3), 128, dtype=torch.uint8)
    y = prepare(x, spec)
    assert y.shape == (1, 3, 32, 32)
    want = (128 / 255 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    torch.testing.assert_close(y[0, :, 16, 16], want, rtol=1e-5, atol=1e-5)


def test_prepare_shorter_crop_keeps_the_centre() -> None:
    spec = registry.spec_for("resnet152_llp", {"input_size": 32})
    x = torch.zeros((1, 40, 100, 3), dtype=torch.uint8)
    x[:, :, :20] = 255  # outer fifth on each side: cut away by the centre crop
    x[:, :, 80:] = 255
    y = prepare(x, spec)  # 40x100 -> 36x90 -> crop 32x32 at columns 29..60 of 90
    assert y.shape == (1, 3, 32, 32)
    black = (0 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    torch.testing.assert_close(y[0].mean((1, 2)), black, rtol=1e-4, atol=1e-4)


def test_wrong_frames_shape_raises() -> None:
    ext = build("vgg19_pool5", input_size=32, frames_per_segment=2)
    with pytest.raises(ValueError, match=r"expected \(S, 2, H, W, 3\)"):
        ext(frames(1, 3))
    with pytest.raises(ValueError, match="uint8"):
        ext(frames(1, 2).float())


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="no bf16 on this CPU")
def test_bf16_autocast_close_to_fp32() -> None:
    x = frames(2, 2, 64, 64)
    fp32 = build("vgg19_pool5", input_size=64, frames_per_segment=2)
    bf16 = build("vgg19_pool5", input_size=64, frames_per_segment=2, autocast=True)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16-autocast")
    a, b = fp32(x)["features"].flatten(1), bf16(x)["features"].flatten(1)
    assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.999


def test_channels_last_matches_contiguous() -> None:
    x = frames(1, 2)
    a = build("vgg19_pool5", input_size=32, frames_per_segment=2, channels_last=False)(x)
    b = build("vgg19_pool5", input_size=32, frames_per_segment=2, channels_last=True)(x)
    torch.testing.assert_close(a["features"], b["features"], rtol=1e-4, atol=1e-5)


def test_weights_from_file(tmp_path) -> None:
    torch.manual_seed(1)
    ref = torchvision.models.video.r2plus1d_18().eval()  # full torchvision layout, fc included
    path = tmp_path / "r21d.pth"
    torch.save(ref.state_dict(), path)
    ext = build("r2plus1d18", weights=str(path), input_size=32, frames_per_segment=2)
    assert ext.spec.weights == f"file:{path}"
    torch.testing.assert_close(ext.net.stem[0].weight, ref.stem[0].weight)


def test_weights_file_for_another_architecture(tmp_path) -> None:
    path = tmp_path / "vggish.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, path)
    with pytest.raises(WeightsUnavailableError, match="missing keys"):
        build("r2plus1d18", weights=str(path), input_size=32)


def test_missing_weights_say_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("AVPIPE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        build("vgg19_pool5", weights="pretrained", input_size=32)
    msg = str(err.value)
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg
    assert "`random`" in msg
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build("vgg19_pool5", weights=str(tmp_path / "nope.pth"), input_size=32)


def test_unreachable_url_raises(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("AVPIPE_OFFLINE", raising=False)
    with pytest.raises(WeightsUnavailableError, match="127.0.0.1:9/r21d.pth"):
        build("r2plus1d18", weights="http://127.0.0.1:9/r21d.pth", input_size=32)


def test_bf16_falls_back_to_fp32_where_unsupported(monkeypatch, caplog) -> None:
    monkeypatch.setattr("avpipe.features.torchbase.bf16_supported", lambda device: False)
    ext = build("r2plus1d18", input_size=32, frames_per_segment=2, autocast=True)
    assert ext.precision == "fp32"
    assert "bf16 not supported" in caplog.text
    assert ext(frames(1, 2))["features"].dtype == torch.float32
