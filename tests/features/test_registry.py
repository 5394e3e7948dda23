"""The extractor registry: names, specs without models, option checking, every recipe built."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from avpipe.config import ConfigError
from avpipe.features import registry
from avpipe.io.grid import Grid

# One thread: on a shared, loaded 2-core box OpenMP barriers make 2 threads ~10x slower.
torch.set_num_threads(1)

# Small inputs keep every recipe well under a second; 72 px checks the map-size
# arithmetic (VGG floors, ResNet ceils: 72 -> 2x2 vs 3x3).
SMALL = {
    "vggish": {},
    "vgg19_pool5": {"input_size": 72, "frames_per_segment": 2},
    "resnet152_maps": {"input_size": 72, "frames_per_segment": 2},
    "resnet152_llp": {"input_size": 72, "frames_per_segment": 2},
    "r2plus1d18": {"input_size": 32, "frames_per_segment": 2},
}
PAPER = {
    "vggish": ((128,), {}),
    "vgg19_pool5": ((7, 7, 512), {}),
    "resnet152_maps": ((7, 7, 2048), {}),
    "resnet152_llp": ((2048,), {"frames": (8, 2048)}),
    "r2plus1d18": ((512,), {}),
}


def test_names() -> None:
    assert registry.list_recipes() == sorted(PAPER)
    assert set(SMALL) == set(registry.RECIPES)


@pytest.mark.parametrize("recipe", sorted(PAPER))
def test_default_spec_is_the_paper_recipe(recipe: str) -> None:
    spec = registry.spec_for(recipe, {})
    shape, extra = PAPER[recipe]
    assert spec.name == recipe
    assert spec.output_shape == shape
    assert spec.extra_outputs == extra
    assert spec.weights == registry.get_recipe(recipe).reference_weights
    if spec.modality == "visual":
        assert spec.fps == {"vgg19_pool5": 16, "r2plus1d18": 8}.get(recipe, 8)
        assert spec.window_s == spec.hop_s == 1.0
        assert spec.store_dtype == ("float16" if len(shape) == 3 else "float32")
    else:
        assert spec.sample_rate == 16000
        assert spec.hop_s == 1.0  # the patch of segment t starts at t (the 1-s grid)
        assert round(spec.window_s * spec.sample_rate) == 15600  # 96 frames of 10 ms + 15 ms


def test_paper_details() -> None:
    r21 = registry.spec_for("r2plus1d18", {})
    assert r21.input_size == (112, 112) and r21.resize == "direct=112x112"
    assert r21.mean == (0.43216, 0.394666, 0.37645)
    assert r21.weights == "torchvision:R2Plus1D_18_Weights.KINETICS400_V1"
    llp = registry.spec_for("resnet152_llp", {})
    assert llp.resize == "shorter=256,center_crop=224"
    assert llp.weights == "torchvision:ResNet152_Weights.IMAGENET1K_V1"
    assert registry.spec_for("vgg19_pool5", {}).weights == "torchvision:VGG19_Weights.IMAGENET1K_V1"


def test_weights_ids() -> None:
    def wid(w: str, **kw: object) -> str:
        return registry.spec_for("vgg19_pool5", {"weights": w, **kw}).weights

    assert wid("random", seed=3) == "random(seed=3)"
    assert wid("/x/vgg19.pth") == "file:/x/vgg19.pth"
    assert wid("https://h/v.pth") == "url:https://h/v.pth"
    assert registry.spec_for("vggish", {"backend": "tfhub", "handle": "/m"}).weights == "tfhub:/m"


def test_unknown_recipe_lists_known() -> None:
    with pytest.raises(KeyError, match="known recipes: r2plus1d18, resnet152_llp"):
        registry.spec_for("i3d", {})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"fps": 8}, "unknown option.*'fps'"),
        ({"input_size": "224"}, "'input_size': expected int"),
        ({"autocast": 1}, "'autocast': expected bool"),
        ({"dtype": "float64"}, "not one of"),
        ({"input_size": 16}, ">= 32"),
        ({"frames_per_segment": 0}, ">= 1"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        registry.spec_for("resnet152_llp", options)


def test_the_grid_sets_hop_window_and_frame_rate() -> None:
    """UnAV-100's grid: the visual window is 0.96 s (not the 0.32-s hop); VGGish hops 0.32 s."""
    grid = Grid(0.32, 0.96)
    r21 = registry.spec_for("r2plus1d18", {}, grid)
    assert (r21.hop_s, r21.window_s, r21.fps) == (0.32, 0.96, pytest.approx(8 / 0.96))
    assert r21.details["grid"] == {"hop_s": 0.32, "window_s": 0.96, "placement": "segment"}
    vgg = registry.spec_for("vggish", {}, grid)
    assert vgg.hop_s == 0.32 and vgg.details["grid"]["window_s"] == 0.96
    released = registry.spec_for("vggish", {"placement": "contiguous"})
    assert released.hop_s == 0.96 and released.details["grid"]["placement"] == "contiguous"
    with pytest.raises(ConfigError, match="needs a 1-s grid"):
        registry.spec_for("vggish", {"placement": "contiguous"}, grid)
    with pytest.raises(ConfigError, match="segment grid"):
        registry.spec_for("vggish", {"hop_s": 0.96})


def test_spec_builds_no_model() -> None:
    code = (
        "import sys; from avpipe.features import registry as r; "
        "[r.spec_for(n, {}) for n in r.list_recipes()]; "
        "print(sorted(m for m in ('torchvision', 'avpipe.features.visual', "
        "'avpipe.features.vggish') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_describe_lists_every_option() -> None:
    table = registry.describe("vggish")
    assert "hop_s" not in table and table["placement"]["default"] == "segment"
    assert table["backend"]["type"] == ["torch", "tfhub"]
    assert set(registry.describe("vgg19_pool5")) >= {"frames_per_segment", "input_size", "resize"}


@pytest.mark.parametrize("recipe", sorted(SMALL))
def test_build_each_recipe(recipe: str) -> None:
    options = {"weights": "random", "autocast": False, **SMALL[recipe]}
    ext = registry.build(recipe, options).to("cpu")
    spec = ext.spec
    assert spec == registry.spec_for(recipe, options)
    if spec.modality == "visual":
        batch = torch.randint(0, 256, (2, spec.frames_per_segment, 40, 60, 3), dtype=torch.uint8)
    else:
        batch = 0.1 * torch.randn(2, round(spec.window_s * spec.sample_rate))
    out = ext(batch)
    assert set(out) == {"features", *spec.extra_outputs}
    assert tuple(out["features"].shape) == (2, *spec.output_shape)
    for name, shape in spec.extra_outputs.items():
        assert tuple(out[name].shape) == (2, *shape)
    for v in out.values():
        assert v.dtype == getattr(torch, spec.store_dtype)
        assert torch.isfinite(v).all()
        # Random ResNet-152 without zero_init_residual reaches ~4e8 (inf in float16).
        assert 1e-4 < float(v.abs().max()) < 1e3
