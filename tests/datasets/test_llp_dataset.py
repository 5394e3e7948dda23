"""LLP adapter on the real annotation files (YapengTian/AVVP-ECCV20 data/)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from avpipe.datasets import llp
from avpipe.datasets.common import DatasetError


def _load(root: Path, **kw):
    return llp.load({"format": "llp", "root": str(root), **kw})


@pytest.fixture(scope="module")
def m2024(shared_data: Path):
    return _load(shared_data / "LLP")


@pytest.fixture(scope="module")
def m2020(shared_data: Path):
    return _load(shared_data / "LLP", eval_audio="legacy_2020/AVVP_eval_audio.csv")


def _dense(m) -> Counter:
    split = {s.sample_id: s.split for s in m.samples}
    return Counter((split[e.sample_id], e.modality) for e in m.events if not e.is_weak)


def test_videos_splits_classes(m2024) -> None:
    assert len(m2024.samples) == len(m2024.video_ids) == 11849
    assert [len(m2024.split(s)) for s in ("train", "val", "test")] == [10000, 649, 1200]
    assert m2024.classes == list(llp.LLP_CLASSES) and len(m2024.classes) == 25
    assert m2024.classes[:3] == ["Speech", "Car", "Cheering"] and m2024.classes[-1] == "Clapping"
    assert m2024.meta["class_order"] == "llp-reference"


def test_id_is_first_11_characters(m2024) -> None:
    ids = {s.sample_id for s in m2024.samples}
    assert "BjCEufrlXm4" in ids and all(len(i) == 11 for i in ids)
    assert sum("_" in i for i in ids) == 1470  # IDs are the first 11 chars, never split on "_"
    assert "AP0061o0Nvk" in ids  # filename AP0061o0Nvk_101.8_111.8


def test_weak_labels(m2024) -> None:
    weak = [e.label for e in m2024.events if e.sample_id == "BjCEufrlXm4"]
    assert weak == ["Speech", "Dog"]
    assert sum(e.is_weak for e in m2024.events) == 16057 + 1170 + 2179


def test_dense_rows_per_split_2024(m2024) -> None:
    d = _dense(m2024)
    assert d[("val", "audio")] == 1451 and d[("val", "visual")] == 856
    assert d[("test", "audio")] == 2666 and d[("test", "visual")] == 1628
    assert m2024.meta["dense_rows"] == {
        "val": {"audio": 1451, "visual": 856},
        "test": {"audio": 2666, "visual": 1628},
    }
    ev = [
        (e.modality, e.label, e.onset, e.offset)
        for e in m2024.events
        if e.sample_id == "KSRjje7GH44" and not e.is_weak
    ]
    assert ("audio", "Blender", 8.0, 10.0) in ev and ("audio", "Speech", 0.0, 8.0) in ev


def test_anomalies_reported_not_fatal(m2024, m2020) -> None:
    a = m2024.meta["anomalies"]
    assert a["dense_class_not_in_weak_label"]["count"] == 127
    # 6 zero-length/inverted rows, one of them (CSWQ_HzQ_10_20 9 9) on an unmatched filename
    assert a["dense_empty_or_inverted"]["count"] == 5
    assert len(m2024.meta["dense_unmatched_filenames"]["audio"]) == 8
    assert len(m2024.meta["dense_unmatched_filenames"]["visual"]) == 7
    assert a["dense_filename_not_in_val_test"]["count"] == 14 + 11  # rows
    # 2020 file: the 3 broken lines of the original release match nothing
    assert m2020.meta["anomalies"]["dense_filename_not_in_val_test"]["count"] == 28
    assert "Baby_cry_infant_cry" in m2020.meta["dense_unmatched_filenames"]["audio"]
    assert _dense(m2020)[("test", "audio")] == 2663


def test_eval_versions_recognised(m2024, m2020, shared_data: Path, tmp_path: Path) -> None:
    assert m2024.meta["eval_version"] == "2024" and m2020.meta["eval_version"] == "2020"
    assert m2024.meta["eval_files"]["audio"]["sha256"].startswith("d5435664")
    assert m2024.meta["eval_files"]["visual"]["version"] == "2020+2024"
    root = _copy(shared_data / "LLP", tmp_path)
    with (root / "AVVP_eval_audio.csv").open("a") as fh:
        fh.write("4YdbENYcIyE_23_33\t5\t6\tSpeech\n")
    m = _load(root)
    assert (
        m.meta["eval_version"] == "unknown" and len(m.meta["eval_files"]["audio"]["sha256"]) == 64
    )


def _copy(src: Path, dst: Path) -> Path:
    for p in src.glob("*.csv"):
        shutil.copy(p, dst / p.name)
    return dst


def test_strict_mode_raises(shared_data: Path) -> None:
    with pytest.raises(DatasetError, match=r"AVVP_eval_audio.csv:\d+: .*dense_"):
        _load(shared_data / "LLP", on_anomaly="raise")


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        (
            "AVVP_eval_audio.csv",
            "4YdbENYcIyE_23_33\t0\t4.5\tSpeech",
            r"AVVP_eval_audio.csv:4133: offset '4.5' is not an integer",
        ),
        (
            "AVVP_eval_audio.csv",
            "4YdbENYcIyE_23_33\t0\t4",
            r"AVVP_eval_audio.csv:4133: expected 4 TAB-separated fields",
        ),
        (
            "AVVP_eval_visual.csv",
            "4YdbENYcIyE_23_33\t0\t4\tTrumpet",
            r"AVVP_eval_visual.csv:2497: unknown class 'Trumpet'",
        ),
        (
            "AVVP_val_pd.csv",
            "4YdbENYcIyE_23_33\tSpeech",
            r"AVVP_test_pd.csv:2: duplicate filename .*AVVP_val_pd.csv:651",
        ),
        (
            "AVVP_test_pd.csv",
            "4YdbENYcIyE_99_109\tSpeech",
            r"AVVP_test_pd.csv:1202: duplicate video id '4YdbENYcIyE'",
        ),
    ],
)
def test_bad_input_names_file_and_line(
    shared_data: Path, tmp_path: Path, file: str, line: str, message: str
) -> None:
    root = _copy(shared_data / "LLP", tmp_path)
    with (root / file).open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DatasetError, match=message):
        _load(root)


def test_synthetic_class_names_use_first_appearance(tmp_path: Path) -> None:
    """The synthetic generator writes its own class names in the LLP layout."""
    (tmp_path / "AVVP_train.csv").write_text(
        "filename\tevent_labels\nsyn00000001_0_10\tbeep,buzz\n"
    )
    (tmp_path / "AVVP_val_pd.csv").write_text("filename\tevent_labels\nsyn00000002_0_10\tbuzz\n")
    (tmp_path / "AVVP_test_pd.csv").write_text(
        "filename\tevent_labels\nsyn00000003_0_10\thum,beep\n"
    )
    (tmp_path / "AVVP_eval_audio.csv").write_text(
        "filename\tonset\toffset\tevent_labels\nsyn00000002_0_10\t2\t5\tbuzz\nsyn00000003_0_10\t0\t3\thum\n"
    )
    (tmp_path / "AVVP_eval_visual.csv").write_text(
        "filename\tonset\toffset\tevent_labels\nsyn00000003_0_10\t1\t4\tbeep\n"
    )
    m = _load(tmp_path)
    assert m.classes == ["beep", "buzz", "hum"] and m.meta["class_order"] == "first-appearance"
    assert [(s.sample_id, s.split) for s in m.samples] == [
        ("syn00000001", "train"),
        ("syn00000002", "val"),
        ("syn00000003", "test"),
    ]
    dense = [
        (e.sample_id, e.label, e.modality, e.onset, e.offset) for e in m.events if not e.is_weak
    ]
    assert dense == [
        ("syn00000002", "buzz", "audio", 2.0, 5.0),
        ("syn00000003", "hum", "audio", 0.0, 3.0),
        ("syn00000003", "beep", "visual", 1.0, 4.0),
    ]
    assert m.meta["anomalies"] == {} and m.meta["eval_version"] == "unknown"


def test_misspelled_weak_label_is_an_error_not_a_26th_class(
    shared_data: Path, tmp_path: Path
) -> None:
    root = _copy(shared_data / "LLP", tmp_path)
    lines = (root / "AVVP_train.csv").read_text().splitlines()
    assert lines[1].split("\t")[1] == "Speech,Dog"
    lines[1] = lines[1].replace("Speech,Dog", "Speech,Dgo")
    (root / "AVVP_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        _load(root)
    assert str(e.value) == (
        f"{root / 'AVVP_train.csv'}:2: unknown class 'Dgo' (not in the 25 LLP classes; "
        "set classes_file for a class list of your own); did you mean 'Dog'?"
    )


def test_missing_eval_file_names_path_and_option(shared_data: Path, tmp_path: Path) -> None:
    root = _copy(shared_data / "LLP", tmp_path)
    (root / "AVVP_eval_visual.csv").unlink()
    with pytest.raises(DatasetError) as e:
        _load(root)
    assert str(e.value) == (
        f"LLP visual eval file not found: {root / 'AVVP_eval_visual.csv'} "
        "(set by datasets.llp.eval_visual, relative to root)"
    )
