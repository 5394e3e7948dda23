"""Every figure kind is drawn where its inputs exist, and only there; images are not blank;
and each figure draws what was scored (the values of avpipe.report.figure_data)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from avpipe.datasets.manifest import Manifest
from avpipe.metrics.ave import segment_labels
from avpipe.report import figure_data as fd
from avpipe.report import figures
from avpipe.report.collect import Group, Run, load_run
from avpipe.report.figures import KINDS

EXPECTED = {
    "unsupervised__toy__clcl": set(KINDS),
    "cpsp__toy__psp_weak": {"training", "timelines", "per_class"},
    "avvp__toy__coleaf": {"training", "timelines"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figures_per_experiment(report_dir: Path, name: str) -> None:
    drawn = {k for k in KINDS if (report_dir / "figures" / k / f"{name}.png").is_file()}
    assert drawn == EXPECTED[name]
    for k in drawn:
        img = mpimg.imread(report_dir / "figures" / k / f"{name}.png")
        assert img.shape[0] > 100 and img.shape[1] > 150
        assert img[..., :3].std() > 0.02, f"{k}/{name}.png looks blank"


def test_figure_list_matches_files(report_dir: Path) -> None:
    listed = (report_dir / "figures.txt").read_text().split()
    assert sorted(listed) == sorted(
        str(p.relative_to(report_dir)) for p in report_dir.glob("figures/*/*.png")
    )


# -- what the figures draw ------------------------------------------------------------


def _avvp_run(root: Path, config: dict | None, thresholds: str | None = None) -> Run:
    d = root / "results/evaluate/avvp/toy/coleaf/seed0"
    d.mkdir(parents=True)
    data = {"task": "avvp", "metrics": {"n_videos": 2}}
    if config is not None:
        data["config"] = config
    (d / "metrics.json").write_text(json.dumps(data))
    if thresholds is not None:
        (d / "thresholds.tsv").write_text(thresholds)
    return load_run(d / "metrics.json")


# two videos, C = 2 classes, T = 3 segments; the second video has 2 real segments
SEG = np.array([[[0.3, 0.6], [0.2, 0.9], [0.5, 0.1]], [[0.9, 0.9], [0.9, 0.9], [0.9, 0.9]]])
PRED = {
    "sample_id": np.array(["v0", "v1"]),
    "n_segments": np.array([3, 2]),
    "seg_prob_audio": SEG,
    "seg_prob_visual": SEG,
    "video_prob_audio": np.array([[0.6, 0.51], [0.9, 0.1]]),
    "video_prob_visual": np.array([[0.6, 0.51], [0.9, 0.1]]),
    "video_prob": np.array([[0.4, 0.7], [0.9, 0.9]]),
}
T, F = True, False


def test_avvp_lanes_use_the_evaluated_setting(tmp_path: Path) -> None:
    cfg = {"settings": {"fixed": {"video_threshold": 0.52, "segment_threshold": 0.25}}}
    run = _avvp_run(tmp_path, cfg)
    b = fd.avvp_binarisation(run, "fixed", ["a", "b"])
    lanes = fd.predicted_lanes(run, PRED, ["a", "b"], b)
    assert list(lanes) == ["audio", "visual"]
    # class a: video 0.6 >= 0.52, segments >= 0.25; class b: video 0.51 < 0.52 (0.5 would pass)
    np.testing.assert_array_equal(lanes["audio"][0], [[T, F], [F, F], [T, F]])
    np.testing.assert_array_equal(lanes["audio"][1], [[T, F], [T, F], [F, F]])  # padding off
    assert b.describe() == "setting 'fixed': segment ≥ 0.25, modality video prob. ≥ 0.52"


def test_avvp_lanes_global_filter_and_config_defaults(tmp_path: Path) -> None:
    run = _avvp_run(tmp_path, None)  # no stored config: the evaluator's defaults
    b = fd.avvp_binarisation(run, "han", ["a", "b"])
    assert (b.setting.video_threshold, b.setting.segment_threshold) == (0.5, 0.5)
    lanes = fd.predicted_lanes(run, PRED, ["a", "b"], b)
    # global video prob [0.4, 0.7]: class a filtered out, class b at segment >= 0.5
    np.testing.assert_array_equal(lanes["visual"][0], [[F, T], [F, T], [F, F]])
    assert "global video prob. ≥ 0.5" in b.describe()


def test_avvp_lanes_selected_per_class_thresholds(tmp_path: Path) -> None:
    run = _avvp_run(tmp_path, {}, "class\tvideo_threshold_visual\na\t0.7\nb\t0.3\n")
    b = fd.avvp_binarisation(run, "selected", ["a", "b"])
    lanes = fd.predicted_lanes(run, PRED, ["a", "b"], b)
    np.testing.assert_array_equal(lanes["visual"][0], [[F, T], [F, T], [F, F]])
    np.testing.assert_array_equal(lanes["audio"][0], [[T, F], [F, F], [T, F]])  # base: fixed
    assert "per-class (visual 0.3–0.7; else 0.52)" in b.describe()
    with pytest.raises(KeyError, match="evaluated settings: fixed, han, selected"):
        fd.avvp_binarisation(run, "strict", ["a", "b"])


def test_ave_and_unsupervised_timelines_have_one_audio_visual_lane(results_tree: Path) -> None:
    m = Manifest.read(results_tree / "results/manifest/toy")
    classes = list(m.classes)
    for path in (
        results_tree / "results/evaluate/cpsp/toy/psp_weak/seed0/metrics.json",
        results_tree / "results/evaluate/unsupervised/toy/clcl/seed0/round2/metrics.json",
    ):
        run = load_run(path)
        with np.load(run.predictions) as z:
            pred = {k: z[k] for k in z.files}
        lanes = fd.predicted_lanes(run, pred, classes, None)
        assert list(lanes) == ["audio-visual"]
        by_id = {s.sample_id: s for s in m.samples}
        samples = [by_id[str(i)] for i in pred["sample_id"]]
        T = lanes["audio-visual"].shape[1]
        truth = fd.truth_lanes(m, samples, T, ["audio-visual"])
        labels = segment_labels(m, samples, n_segments=T)
        np.testing.assert_array_equal(truth["audio-visual"].any(2), labels < len(classes))
        if "segment_pred" in pred:
            sp = pred["segment_pred"]
            np.testing.assert_array_equal(lanes["audio-visual"].any(2), sp < len(classes))
            n, t = np.nonzero(sp < len(classes))
            assert lanes["audio-visual"][n, t, sp[n, t]].all()


def _group(rnd: int, values: dict[str, list[float]]) -> Group:
    runs = [
        Run(
            Path("m.json"),
            "unsupervised",
            "toy",
            "clcl",
            s,
            rnd,
            "unsupervised",
            {k: v[s] for k, v in values.items()},
        )
        for s in range(2)
    ]
    return Group("unsupervised", "toy", "clcl", rnd, runs)


def test_em_series_merge_identical_metrics_and_clip_error_bars() -> None:
    groups = [
        _group(1, {"purity": [80, 90], "localizer_purity": [80, 90], "accuracy": [50, 60]}),
        _group(2, {"purity": [100, 94], "localizer_purity": [100, 94], "accuracy": [0, 6]}),
    ]
    series = fd.em_series(groups)
    assert [s.label for s in series] == ["purity = localizer purity", "accuracy"]
    pur, acc = series
    assert pur.x == [1, 2]
    np.testing.assert_allclose(pur.mean, [85, 97])
    std1, std2 = np.sqrt(50), np.sqrt(18)  # seeds 80, 90 and 100, 94 (or 0, 6)
    np.testing.assert_allclose(pur.err, [[std1, std2], [std1, 3.0]])  # above: clipped at 100
    np.testing.assert_allclose(acc.err, [[std1, 3.0], [std1, std2]])  # below: clipped at 0
    groups[1].runs[0].metrics["localizer_purity"] = 98.0
    assert [s.label for s in fd.em_series(groups)] == ["purity", "localizer purity", "accuracy"]


def _tsv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _histories(root: Path) -> list[tuple[str, Path]]:
    selflabel = _tsv(
        root / "selflabel/history.tsv",
        ["epoch", "loss", "label_contrast", "clipped_fraction", "nonempty_pseudo_classes", "lr"],
        [[e, 2 - 0.3 * e, 1 - 0.1 * e, 0.5 / (e + 1), 3 + e, 0.01] for e in range(5)],
    )
    cpsp = _tsv(
        root / "cpsp/history.tsv",
        ["epoch", "lr", "seconds", "loss", "val_score"],
        [[e, 0.1, 1.0, 1 / (e + 1), v] for e, v in enumerate([10, 30, 30, 20, 5])],
    )
    avvp = _tsv(
        root / "avvp/history.tsv",
        ["epoch", "loss", "val_select", "val.segment.A"],
        [[e, 1 / e, s, a] for e, s, a in [(1, 20, 50), (2, 40, 10), (3, 35, 60)]],
    )
    return [("selflabel", selflabel), ("cpsp", cpsp), ("avvp", avvp)]


def test_training_panels_one_axis_per_quantity_and_kept_epoch(tmp_path: Path) -> None:
    panels = fd.training_panels(_histories(tmp_path))
    got = [(p.title, p.quantity, sorted(p.lines), p.kept[0]) for p in panels]
    assert got == [
        ("selflabel", "loss", ["label_contrast", "loss"], 4.0),  # no selection: last epoch
        ("selflabel", "count", ["nonempty_pseudo_classes"], 4.0),
        ("selflabel", "fraction", ["clipped_fraction"], 4.0),
        ("cpsp", "loss", ["loss"], 1.0),  # first maximum of val_score
        ("cpsp", "validation score (%)", ["val_score"], 1.0),
        ("avvp", "loss", ["loss"], 2.0),  # val_select, not val.segment.A
        ("avvp", "validation score (%)", ["val.segment.A", "val_select"], 2.0),
    ]
    assert panels[3].kept[1] == "selected epoch (best val_score)"
    assert panels[0].kept[1] == "last epoch (no selection)"
    (tmp_path / "cpsp/summary.json").write_text(json.dumps({"best_epoch": 3}))
    assert fd.training_panels(_histories(tmp_path))[3].kept == (
        3.0,
        "selected epoch (summary.json)",
    )


def test_pseudo_labels_are_matched_one_to_one() -> None:
    z = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3])
    y = np.array([2, 2, 0, 0, 1, 1, 1, 1, 1])
    # majority mapping would send 3 to class 1 as well; the matching leaves it unmatched
    np.testing.assert_array_equal(fd.align_pseudo_labels(z, y, 4, 3), [2, 0, -1, 1])
    # a pseudo-class matched to a class none of its samples has stays unmatched
    np.testing.assert_array_equal(
        fd.align_pseudo_labels(np.array([0, 0, 1]), np.array([0, 0, 0]), 2, 3), [0, -1]
    )


def _not_blank(path: Path | None) -> None:
    assert path is not None and path.is_file()
    img = mpimg.imread(path)
    assert img[..., :3].std() > 0.02


def test_figures_of_hand_made_inputs_render(tmp_path: Path) -> None:
    _not_blank(figures.training(_histories(tmp_path), "training", tmp_path / "t.png", 60))
    groups = [
        _group(1, {"purity": [80, 90], "localizer_purity": [80, 90], "accuracy": [50, 60]}),
        _group(2, {"purity": [99, 95], "localizer_purity": [99, 95], "accuracy": [2, 6]}),
    ]
    _not_blank(figures.em_rounds(groups, tmp_path / "em.png", 60))
