"""The ``readout`` option of resnet152_llp / r2plus1d18: which residual stage is pooled."""

from __future__ import annotations

import pytest
import torch

from avpipe.features import registry

torch.set_num_threads(1)


def frames(s: int, f: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (s, f, 40, 56, 3), generator=g, dtype=torch.uint8)


def build(recipe: str, **options: object):
    base = {"weights": "random", "autocast": False, "dtype": "float32"}
    return registry.build(recipe, {**base, **options}).to("cpu")


@pytest.mark.parametrize(
    ("recipe", "readout", "d"),
    [
        ("resnet152_llp", "layer2", 512),
        ("resnet152_llp", "layer4", 2048),
        ("r2plus1d18", "layer1", 64),
    ],
)
def test_spec_and_output_width_follow_readout(recipe: str, readout: str, d: int) -> None:
    spec = registry.spec_for(recipe, {"weights": "random", "readout": readout})
    assert spec.output_shape == (d,)
    assert readout in spec.details["readout"]  # recorded in the store attrs
    if recipe == "resnet152_llp":
        assert spec.extra_outputs["frames"][1] == d
    out = build(recipe, input_size=32, frames_per_segment=2, readout=readout)(frames(2, 2))
    assert out["features"].shape == (2, d)


def test_r2plus1d_default_readout_is_the_whole_network() -> None:
    ex = build("r2plus1d18", input_size=32, frames_per_segment=2)
    x = frames(2, 2)
    from avpipe.features.visual import prepare

    clip = prepare(x.flatten(0, 1), ex.spec).view(2, 2, 3, 32, 32).transpose(1, 2)
    with torch.no_grad():
        want = ex.net(clip)
    torch.testing.assert_close(ex(x)["features"], want, rtol=1e-4, atol=1e-5)


def test_unknown_readout_is_an_error() -> None:
    with pytest.raises(Exception, match="readout"):
        registry.spec_for("resnet152_llp", {"readout": "layer5"})
