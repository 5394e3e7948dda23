"""Each run's exact variant, from its training config."""

from __future__ import annotations

import pytest

from avpipe.report.variants import avvp_variant, cpsp_variant


def _cpsp(
    setting: str = "full",
    head: str = "cpsp",
    impl: str = "intended",
    labels: str = "cpsp",
    **w: float,
) -> dict:
    weights = {"avpsp": 100, "spsa": 0.01, "vpsa": 1, "ss": 0, **w}
    train = {"epochs": 45, "batch_size": 64, "grad_clip": 0.1}
    run = {"setting": setting, "head": head, "spsa_impl": impl, "weights": weights}
    run["weak_labels"] = labels
    return {"run": {**run, "train": train}}


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        (_cpsp(head="psp", spsa=0, vpsa=0), "PSP-original"),
        (_cpsp(spsa=0, vpsa=0), "PSP-CPSP-code"),
        (_cpsp(), "CPSP-intended"),
        (_cpsp(impl="released_noop"), "CPSP-released"),
        (_cpsp("weak", avpsp=0, spsa=0), "CPSP"),
        (_cpsp("weak", avpsp=0, spsa=0, labels="background_column"), "CPSP-bgcol"),
        (_cpsp("weak", avpsp=0, spsa=0, vpsa=0, labels="background_column"), "PSP-CPSP-code-bgcol"),
        (_cpsp("weak", "psp", avpsp=0, spsa=0, vpsa=0, labels="background_column"), "PSP-original"),
        (_cpsp(avpsp=0, spsa=0, vpsa=0, ss=1), "SSPSP"),
    ],
)
def test_cpsp_variants(cfg: dict, key: str) -> None:
    assert cpsp_variant(cfg).key == key


def test_cpsp_label_says_the_schedule_and_the_selection_split() -> None:
    cfg = _cpsp(head="psp", spsa=0, vpsa=0)
    cfg["run"]["train"] = {"epochs": 30, "batch_size": 8, "grad_clip": None}
    label = cpsp_variant(cfg).label
    assert label.startswith("PSP, original recipe")
    assert label.endswith("here 30 epochs, batch 8, no clipping, epoch selected on val")


def test_avvp_variants() -> None:
    assert avvp_variant({"method": "han", "han": {}}).key == "HAN"
    assert avvp_variant({"method": "coleaf", "coleaf": {}}).key == "CoLeaF-han"
    cmpae = avvp_variant({"method": "coleaf", "coleaf": {"anchor_backbone": "cmpae"}})
    assert (cmpae.key, cmpae.label) == ("CoLeaF-cmpae", "CoLeaF on the CMPAE Anchor")
    assert avvp_variant({"method": "other"}).key == ""
