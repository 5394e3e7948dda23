"""AVE adapter on the real annotation files (YapengTian/AVE-ECCV18 data/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from reproduce_fixtures import write_ave_release

from avpipe.datasets import ave, coverage
from avpipe.datasets.common import DatasetError

AVE_CLASSES_FIRST5 = [
    "Church bell",
    "Male speech, man speaking",
    "Bark",
    "Fixed-wing aircraft, airplane",
    "Race car, auto racing",
]


@pytest.fixture(scope="module")
def by_txt(shared_data: Path):
    return ave.load(
        {"format": "ave", "root": str(shared_data / "AVE" / "AVE_Dataset"), "splits": "txt"}
    )


@pytest.fixture(scope="module")
def by_h5(shared_data: Path):
    return ave.load({"format": "ave", "root": str(shared_data / "AVE"), "splits": "h5"})


def test_rows_videos_and_splits(by_txt, by_h5) -> None:
    for m in (by_txt, by_h5):
        assert len(m.samples) == 4143
        assert len(m.video_ids) == 4097
        assert [len(m.split(s)) for s in ("train", "val", "test")] == [3339, 402, 402]
        assert [s.row for s in m.samples] == list(range(4143))
    assert by_txt.meta["split_source"] == "txt" and by_h5.meta["split_source"] == "h5"


def test_txt_and_h5_splits_and_header_variants_agree(by_txt, by_h5) -> None:
    # AVE_Dataset/Annotations.txt has the header, AVE/Annotations.txt has not.
    assert by_txt.meta["header"] is True and by_h5.meta["header"] is False
    strip = [(s.sample_id, s.video_id, s.split, s.row, s.n_segments) for s in by_txt.samples]
    assert strip == [(s.sample_id, s.video_id, s.split, s.row, s.n_segments) for s in by_h5.samples]
    assert by_txt.events == by_h5.events
    assert by_txt.classes == by_h5.classes


def test_h5_order_is_the_split(shared_data: Path, by_h5) -> None:
    with h5py.File(shared_data / "AVE" / "test_order.h5", "r") as f:
        order = f["order"][()]
    test_rows = sorted(s.row for s in by_h5.split("test"))
    assert test_rows == sorted(order.tolist())


def test_class_order_is_first_appearance(by_txt, shared_data: Path) -> None:
    assert len(by_txt.classes) == 28
    assert by_txt.classes[:5] == AVE_CLASSES_FIRST5
    assert by_txt.classes[-1] == "Mandolin"
    cats = (shared_data / "AVE" / "AVE_Dataset" / "categories.txt").read_text().splitlines()
    assert by_txt.classes == [c for c in cats if c] == list(ave.AVE_CLASSES)
    assert by_txt.meta["class_order"] == "ave-reference"


def _ave_files(root: Path, rows: list[str], splits: dict[str, list[str]]) -> None:
    (root / "Annotations.txt").write_text("\n".join(rows) + "\n")
    for split, name in ave.TXT_NAMES.items():
        (root / name).write_text("".join(line + "\n" for line in splits.get(split, [])))


def test_misspelled_ave_class_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    """Without classes_file a typo used to become a 3rd class; AVE's 28 classes are known."""
    rows = ["Church bell&v1&good&0&10", "Bark&v2&good&0&10", "Church bel&v3&good&2&5"]
    _ave_files(tmp_path, rows, {"train": rows})
    with pytest.raises(DatasetError) as e:
        ave.load({"format": "ave", "root": str(tmp_path)})
    assert str(e.value) == (
        f"{tmp_path / 'Annotations.txt'}:3: unknown class 'Church bel' (not in the 28 AVE "
        "classes; set classes_file for a class list of your own); did you mean 'Church bell'?"
    )
    (tmp_path / "cats.txt").write_text("Church bell\nBark\n")
    with pytest.raises(
        DatasetError,
        match=r"Annotations.txt:3: unknown class 'Church bel' "
        r"\(not in classes_file .*cats.txt\); did you mean 'Church bell'\?",
    ):
        ave.load({"format": "ave", "root": str(tmp_path), "classes_file": "cats.txt"})


def test_subset_of_ave_classes_keeps_the_28_in_reference_order(tmp_path: Path) -> None:
    rows = ["Mandolin&v1&good&0&10", "Bark&v2&good&0&10"]
    _ave_files(tmp_path, rows, {"train": rows})
    m = ave.load({"format": "ave", "root": str(tmp_path)})
    assert len(m.classes) == 28 and m.classes.index("Bark") == 2 and m.classes[-1] == "Mandolin"
    assert m.meta["class_order"] == "ave-reference"


def test_duplicate_split_line_is_blamed_on_its_own_file(tmp_path: Path) -> None:
    rows = ["Bark&v1&good&0&10", "Bark&v2&good&0&10", "Bark&v3&good&0&10"]
    ann = tmp_path / "Annotations.txt"
    _ave_files(tmp_path, rows, {"train": [rows[0], rows[1], rows[0]], "test": [rows[2]]})
    with pytest.raises(DatasetError) as e:
        ave.load({"format": "ave", "root": str(tmp_path)})
    assert str(e.value) == (
        f"{tmp_path / 'trainSet.txt'}:3: 'Bark&v1&good&0&10' duplicates line 1 of the same "
        f"file; the annotation file has it 1 time(s) ({ann}:1) and each row belongs to one split"
    )
    _ave_files(tmp_path, rows, {"train": rows[:2], "test": [rows[1], rows[2]]})
    with pytest.raises(DatasetError) as e:
        ave.load({"format": "ave", "root": str(tmp_path)})
    assert str(e.value).startswith(
        f"{tmp_path / 'testSet.txt'}:1: 'Bark&v2&good&0&10' is also listed at "
        f"{tmp_path / 'trainSet.txt'}:2; the annotation file has it 1 time(s) ({ann}:2)"
    )


def test_multi_row_video_ids(by_txt) -> None:
    rows = [s for s in by_txt.samples if s.video_id == "0f_iTO5t3hU"]
    assert [s.sample_id for s in rows] == ["0f_iTO5t3hU", "0f_iTO5t3hU#2", "0f_iTO5t3hU#3"]
    labels = {e.sample_id: e.label for e in by_txt.events if e.sample_id.startswith("0f_iTO5t3hU")}
    assert set(labels.values()) == {"Ukulele", "Banjo", "Mandolin"}
    assert len({s.path for s in rows}) == 1  # media per video


def test_zero_length_row_is_kept_and_reported(by_txt) -> None:
    s = by_txt.samples[26]
    assert s.video_id == "VWi2ENBuTbw"
    ev = [e for e in by_txt.events if e.sample_id == s.sample_id]
    assert [(e.label, e.onset, e.offset) for e in ev] == [("Church bell", 0.0, 0.0)]
    assert by_txt.segment_targets([s]).sum() == 0
    zl = by_txt.meta["anomalies"]["zero_length_event"]
    assert zl["count"] == 1 and "Annotations.txt:28" in zl["examples"][0]  # header + 0-based row 26


def test_eighteen_cross_split_videos(by_txt, by_h5) -> None:
    for m in (by_txt, by_h5):
        a = m.meta["anomalies"]["video_in_several_splits"]
        assert a["count"] == 18
    ex = " ".join(by_h5.meta["anomalies"]["video_in_several_splits"]["examples"])
    assert "0qvQIuQoODo" in ex and "00N83yxKYUI" in ex


def test_segment_targets_equal_labels_closs(shared_data: Path, by_h5) -> None:
    with h5py.File(shared_data / "AVE" / "labels_closs.h5", "r") as f:
        closs = f["avadataset"][()]
    targets = by_h5.segment_targets(by_h5.samples)  # (4143, 10, 28), rows in file order
    assert targets.shape == (4143, 10, 28)
    np.testing.assert_array_equal(targets.max(axis=2), closs)
    assert int(targets.sum()) == 34352  # foreground seconds of the AVE annotations


def test_synthetic_layout_with_videos(tmp_path: Path, mp4_factory) -> None:
    """The layout the synthetic rule writes: header file, txt splits, videos/<id>.mp4."""
    lines = [
        "Category&VideoID&Quality&StartTime&EndTime",
        "Beep&vid_a&good&2&5",
        "Buzz&vid_b&good&0&10",
        "Beep&vid_b&good&3&4",
        "Buzz&vid_c&good&1&2",
    ]
    (tmp_path / "Annotations.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "trainSet.txt").write_text("\n".join(lines[1:3]) + "\n")
    (tmp_path / "valSet.txt").write_text(lines[3] + "\n")
    (tmp_path / "testSet.txt").write_text(lines[4] + "\n")
    mp4_factory(tmp_path / "videos" / "vid_a.mp4", 3.0)
    mp4_factory(tmp_path / "videos" / "vid_b.mkv", 2.0)
    m = ave.load({"format": "ave", "root": str(tmp_path)})
    assert m.classes == ["Beep", "Buzz"]
    assert [(s.sample_id, s.split, s.present, s.n_segments) for s in m.samples] == [
        ("vid_a", "train", True, 3),
        ("vid_b", "train", True, 2),
        ("vid_b#2", "val", True, 2),
        ("vid_c", "test", False, 10),
    ]
    assert m.samples[1].path.endswith("vid_b.mkv")
    assert m.meta["anomalies"]["video_in_several_splits"]["count"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Bark&abc&good&0", "expected 5 '&'-separated fields"),
        ("Bark&abc&good&0&x", "EndTime 'x' is not an integer"),
        ("Bark&abc&good&5&2", "is impossible"),
        ("Bark&abc&good&1.5&3", "StartTime '1.5' is not an integer"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "Annotations.txt").write_text(f"Bark&ok1&good&0&10\n{line}\n")
    with pytest.raises(DatasetError, match=rf"Annotations.txt:2: .*{message}"):
        ave.load({"format": "ave", "root": str(tmp_path), "splits": "txt"})


def test_split_line_not_in_annotations_and_unknown_class(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "AVE" / "AVE_Dataset"
    for n in ("Annotations.txt", "trainSet.txt", "valSet.txt", "testSet.txt"):
        shutil.copy(src / n, tmp_path / n)
    with (tmp_path / "valSet.txt").open("a") as fh:
        fh.write("Bark&notAvideo&good&0&10\n")
    with pytest.raises(DatasetError, match=r"valSet.txt:403: .*matches no"):
        ave.load({"format": "ave", "root": str(tmp_path)})
    (tmp_path / "cats.txt").write_text("Church bell\nBark\n")
    with pytest.raises(
        DatasetError,
        match=r"Annotations.txt:190: unknown class 'Male speech, man speaking' "
        r"\(not in classes_file .*cats.txt\)",
    ):
        ave.load({"format": "ave", "root": str(tmp_path), "classes_file": "cats.txt"})


def test_strict_mode_raises_on_anomaly(shared_data: Path) -> None:
    with pytest.raises(DatasetError, match=r"AVE/Annotations.txt:27: .*zero_length_event"):
        ave.load({"format": "ave", "root": str(shared_data / "AVE"), "on_anomaly": "raise"})


def test_released_features_make_samples_present_without_videos(tmp_path: Path) -> None:
    folder = write_ave_release(tmp_path)
    cfg = {"format": "ave", "root": str(folder), "splits": "h5", "probe": False}
    assert not any(s.present for s in ave.load(cfg).samples)
    released = {"vggish": {"released": str(folder / "audio_feature.h5"), "format": "ave_h5"}}
    m = ave.load({**cfg, "features": released})
    assert len(m.samples) == 17 and all(s.present for s in m.samples)
    assert [s.row for s in m.samples] == list(range(17))
    rows, problems = coverage.build(m, decode=False)
    assert rows[-1][:4] == ["all", 17, 16, 0]  # the videos themselves are still missing
    assert {p[3] for p in problems} == {"missing"}
