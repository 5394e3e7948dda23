"""Every figure kind is drawn where its inputs exist, and only there; images are not blank."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pytest

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
