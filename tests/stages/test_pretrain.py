"""Stage A outputs: checkpoint with its config, unit embeddings, falling loss."""

from __future__ import annotations

import numpy as np
import pytest
from clcl_chain import run_chain

from avpipe.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def chain() -> dict:
    return run_chain()


def test_pretrain_outputs(chain: dict) -> None:
    out = chain["root"] / "pre"
    ckpt = load_checkpoint(out / "encoder.pt")
    assert ckpt["config"]["pretrain"]["encoder"]["d_model"] == 16
    assert ckpt["visual_dim"] == 16 and ckpt["audio_dim"] == 128
    with np.load(out / "embeddings.npz") as z:
        assert z["embed_visual"].shape == (40, 16)
        assert np.allclose(np.linalg.norm(z["embed_audio"], axis=1), 1.0, atol=1e-5)
    rows = [ln.split("\t") for ln in (out / "history.tsv").read_text().splitlines()]
    loss = [float(r[rows[0].index("loss")]) for r in rows[1:]]
    assert loss[-1] < loss[0]


def test_resnet_sized_maps_run(tmp_path) -> None:
    """7x7x2048 maps (ResNet-152) with a tiny encoder: one epoch through the real code."""
    from clcl_fixtures import make_dataset

    from avpipe.config import from_dict
    from avpipe.methods.clcl import stages
    from avpipe.methods.clcl.config import PretrainStage

    m, v, a = make_dataset(tmp_path, n_train=8, n_test=2, hw=(7, 7), channels=2048)
    cfg = from_dict(
        PretrainStage,
        {
            "data": {"device": "cpu", "memory_budget_mb": 1},
            "pretrain": {"epochs": 1, "batch_size": 4, "encoder": {"d_model": 8, "heads": 2}},
        },
    )
    stages.run_pretrain(m, v, a, cfg, 0, tmp_path / "pre")  # budget 1 MiB: streamed from the store
    assert load_checkpoint(tmp_path / "pre" / "encoder.pt")["visual_dim"] == 2048
