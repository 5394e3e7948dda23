"""Per-experiment tables and the paper-layout summary hold the right numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import AVVP_VALUES

from avpipe.report import document as doc


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _seed_values(root: Path, rel: str, key: str) -> list[float]:
    return [json.loads(p.read_text())["metrics"][key] for p in sorted(root.glob(rel))]


def test_experiment_table_mean_std_per_round(results_tree: Path, report_dir: Path) -> None:
    rows = _tsv(report_dir / "tables/unsupervised__toy__clcl.tsv")
    assert [r["round"] for r in rows] == ["1", "2"]
    for r in rows:
        vals = _seed_values(
            results_tree,
            f"results/evaluate/unsupervised/toy/clcl/seed*/round{r['round']}/metrics.json",
            "accuracy",
        )
        assert len(vals) == 2
        assert float(r["accuracy_mean"]) == pytest.approx(np.mean(vals), abs=1e-4)
        assert float(r["accuracy_std"]) == pytest.approx(np.std(vals, ddof=1), abs=1e-4)
        assert r["n_seeds"] == "2" and r["seeds"] == "0,1"
    md = (report_dir / "tables/unsupervised__toy__clcl.md").read_text()
    assert "## Provenance" in md and "seed1/round2/metrics.json" in md


def test_avvp_variants_become_rows(report_dir: Path) -> None:
    rows = _tsv(report_dir / "tables/avvp__toy__coleaf.tsv")
    # n_videos has no variant: a row of its own
    assert sorted(r["variant"] for r in rows) == ["", "fixed.event", "fixed.segment"]
    by = {r["variant"]: r for r in rows}
    assert float(by["fixed.segment"]["AV_mean"]) == pytest.approx(42.0)
    assert float(by["fixed.event"]["Event@AVo_std"]) == pytest.approx(2**1.5, abs=1e-4)
    assert by[""]["AV_mean"] == "" and float(by[""]["n_videos_mean"]) == 12


def test_summary_layout_ours_and_published(results_tree: Path, report_dir: Path) -> None:
    rows = _tsv(report_dir / "summary.tsv")
    assert {r["source"] for r in rows} == {"ours", "published"}
    ours = [r for r in rows if r["source"] == "ours"]
    # the AVE table holds the last EM round and the supervised run
    ave = {(r["method"], r["variant"]): r for r in ours if r["section"] == "ave_accuracy"}
    psp = "psp_weak (PSP inside the CPSP code base (event gate + category head, CPSP schedule);"
    psp += " here 45 epochs, batch 64, clip 0.1, epoch selected on val)"
    assert set(ave) == {("clcl (CLCL (Bao et al.))", "round 2"), (psp, "")}
    vals = _seed_values(
        results_tree, "results/evaluate/cpsp/toy/psp_weak/seed*/metrics.json", "accuracy"
    )
    assert float(ave[(psp, "")]["mean"]) == pytest.approx(np.mean(vals), abs=1e-4)
    assert ave[(psp, "")]["setting"] == "WS"
    em = [r for r in ours if r["section"] == "em_rounds"]
    assert len(em) == 4  # purity and accuracy x 2 rounds
    avvp = [r for r in ours if r["section"] == "avvp"]
    assert len(avvp) == 18 and all(
        float(r["mean"]) == np.mean(list(AVVP_VALUES.values())) for r in avvp
    )
    pub = [r for r in rows if r["source"] == "published"]
    assert all(r["reference"] for r in pub)
    coleaf_av = {
        r["variant"]: float(r["mean"])
        for r in pub
        if r["method"] == "CoLeaF on the CMPAE Anchor" and r["metric"] == "segment.AV"
    }
    assert coleaf_av == {"standard": 58.6, "selected": 59.8}
    table4 = {
        r["metric"]: float(r["mean"]) for r in pub if r["method"] == "CoLeaF on the HAN Anchor"
    }
    assert table4 == {
        "segment.Ao": 36.3,
        "segment.Vo": 54.1,
        "segment.AV": 49.4,
        "event.Ao": 34.2,
        "event.Vo": 53.5,
        "event.AV": 43.7,
    }
    md = (report_dir / "summary.md").read_text()
    md_rows = {(r["section"], r["setting"], r["method"], r["variant"], r["feature"]) for r in pub}
    assert md.count("**published**") == len(md_rows) + 1  # + the note above the tables
    assert "77.8" in md and "42.0 ± 2.8" in md


def _md_rows(md: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table under ``title``."""
    block = md[md.index(title) :].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def test_summary_pairs_ours_only_with_published_rows_of_the_same_variant(
    report_dir: Path,
) -> None:
    md = (report_dir / "summary.md").read_text()
    ave = _md_rows(md, "AVE event localization")
    methods = [r[1] for r in ave]
    # CLCL: followed by Bao et al.'s US rows; psp_weak (PSP in the CPSP code base): by none
    i = next(i for i, m in enumerate(methods) if m.startswith("clcl (CLCL"))
    # ... of the same visual network only (the run used vgg19_pool5)
    assert ave[i + 1][2] == "VGG-19" and "same variant as clcl" in ave[i + 1][-1]
    resnet = next(r for r in ave if r[1] == "CLCL (Bao et al.)" and r[2] == "ResNet-152")
    assert "no avpipe run of this variant" in resnet[-1]
    j = next(i for i, m in enumerate(methods) if m.startswith("psp_weak (PSP inside"))
    assert ave[j + 1][-1] != "ours" and "same variant" not in ave[j + 1][-1]
    # published PSP (original recipe, selected on test) has no avpipe run here
    psp = [r for r in ave if r[1].startswith("PSP, original recipe")]
    assert len(psp) == 2 and all("epoch selected on test" in r[-1] for r in psp)
    assert all("no avpipe run of this variant" in r[-1] for r in psp)
    avvp = _md_rows(md, "Audio-visual video parsing")
    k = next(i for i, r in enumerate(avvp) if r[0].startswith("coleaf (CoLeaF on the HAN"))
    assert avvp[k][2] == "fixed" and avvp[k][-1] == "ours"
    assert avvp[k + 1][0] == "CoLeaF on the HAN Anchor" and avvp[k + 1][2] == "not stated"
    assert "Table 4 right" in avvp[k + 1][-1] and "same variant as coleaf" in avvp[k + 1][-1]
    # CoLeaF's Table 1 rows (CMPAE Anchor) are not paired with the HAN-Anchor run
    cmpae = [r for r in avvp if r[0] == "CoLeaF on the CMPAE Anchor"]
    assert len(cmpae) == 2 and all("no avpipe run of this variant" in r[-1] for r in cmpae)


def test_html_tables_hold_the_markdown_rows(report_dir: Path) -> None:
    """The HTML pages that `snakemake --report` shows have the Markdown's cells, escaped."""
    for md_path in [report_dir / "summary.md", *sorted(report_dir.glob("tables/*.md"))]:
        md = md_path.read_text()
        page = md_path.with_suffix(".html").read_text()
        cells = {
            c.strip()
            for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("|---")
            for c in line.strip("|").split(" | ")
        }
        for cell in cells - {""}:
            assert doc.inline_html(cell) in page, (md_path.name, cell)
        separators = sum(line.startswith("|---") for line in md.splitlines())
        assert page.count("<table>") == separators, md_path.name
        assert page.count("<caption>") == page.count("<table>")
    page = (report_dir / "summary.html").read_text()
    assert '<td class="num">42.0 ± 2.8</td>' in page
    assert '<tr class="published">' in page and "<strong>published</strong>" in page


def test_html_escapes_text() -> None:
    blocks = [
        doc.Table(("a<b", "n"), (("<script>x</script> & **bold** `c`", "1.5"),), title='"t"'),
        doc.Table(("x",), (), title="empty"),
    ]
    page = doc.to_html(blocks, "t<")
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt; &amp;" in page
    assert "<strong>bold</strong> <code>c</code>" in page and "<th>a&lt;b</th>" in page
    assert '<td class="num">1.5</td>' in page and "<title>t&lt;</title>" in page
    assert '<td colspan="1"><em>no runs</em></td>' in page
    assert doc.to_markdown(blocks).endswith("_no runs_\n")
