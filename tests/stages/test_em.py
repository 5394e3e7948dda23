"""EM rounds of CLCL end to end on clustered synthetic features (library functions)."""

from __future__ import annotations

import numpy as np
import pytest
from clcl_chain import ROUNDS, run_chain

from avpipe.methods.clcl.annotator import align_to


@pytest.fixture(scope="module")
def chain() -> dict:
    return run_chain()


def test_accuracy_beats_chance_and_purity_stays_high(chain: dict) -> None:
    """Fixed seed 0, 4 separable classes, 40 training videos, 3 rounds.

    Chance: labelling every segment background scores ~30 %, a random class on every
    segment ~18 %.  Measured with this seed: acc 62.5 / 81.2 / 63.1 %, purity
    100 / 92.5 / 100 %.  Before the fixes (sum over neighbours, unoriented gamma, E-step
    on fine-tuned features, unseeded heads) later rounds fell to 20-40 % and 75 % purity.
    """
    m = chain["metrics"]
    print(
        "times",
        {k: round(v, 2) for k, v in chain["times"].items()},
        "acc/purity",
        {k: (round(r["accuracy"], 1), round(r["purity"], 1)) for k, r in m.items()},
    )
    assert sorted(m) == list(range(1, ROUNDS + 1))
    for k, r in m.items():
        assert r["accuracy"] > 50.0, (k, r)
        assert r["purity"] >= 90.0, (k, r)
        assert r["nonempty_pseudo_classes"] == 4, (k, r)
    assert m[ROUNDS]["purity"] >= m[1]["purity"] - 5.0, m


def test_round_outputs(chain: dict) -> None:
    r2 = chain["root"] / "round2"
    with np.load(r2 / "predictions.npz") as z:
        assert z["sample_id"].shape == (56,) and z["train_sample_id"].shape == (40,)
        assert z["foreground"].shape == (56, 10) and int(z["n_pseudo_classes"]) == 4
        gamma = z["gamma"]
    assert np.allclose(gamma.sum(1), 1.0, atol=1e-5)
    lines = (r2 / "timelines.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["video_id", "pseudo_class", "onset_s", "offset_s", "score"]
    assert len(lines) > 56  # at least one event per video
    hist = (r2 / "history.tsv").read_text()
    assert "e_step" in hist and "m_step" in hist  # round 2 re-estimated its labels


def test_gamma_selects_the_event_segments(chain: dict) -> None:
    """After orientation, gamma weighs the true event segments above the background."""
    from avpipe.metrics.ave import segment_labels

    manifest = chain["manifest"]
    by_id = {s.sample_id: s for s in manifest.samples}
    for k in range(1, ROUNDS + 1):
        with np.load(chain["root"] / f"round{k}" / "predictions.npz") as z:
            samples = [by_id[str(i)] for i in z["sample_id"]]
            gamma = z["gamma"]
        event = segment_labels(manifest, samples, n_segments=10) < len(manifest.classes)
        assert gamma[event].mean() > 1.2 * gamma[~event].mean(), k


def test_pseudo_class_ids_stay_aligned_across_rounds(chain: dict) -> None:
    labels = []
    for k in range(1, ROUNDS + 1):
        with np.load(chain["root"] / f"round{k}" / "pseudo_labels.npz") as z:
            labels.append(z["pseudo_label"])
    for prev, new in zip(labels, labels[1:], strict=False):
        assert (prev == new).mean() >= 0.8


def test_align_to_permutes_columns() -> None:
    z = np.eye(3)[[0, 0, 1, 2, 2]]
    aligned = align_to(z, np.array([2, 2, 0, 1, 1]))
    assert aligned.argmax(1).tolist() == [2, 2, 0, 1, 1]
    assert np.allclose(np.sort(aligned, 1), np.sort(z, 1))
