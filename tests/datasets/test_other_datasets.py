"""UnAV-100, VGGSound-AVEL and folder adapters on small files the tests write; the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avpipe.datasets import folder, registry, unav100, vggsound_avel
from avpipe.datasets.common import DatasetError
from avpipe.stages.extract import fixed_segments

UNAV = {
    "database": {
        "vidA0000001": {
            "subset": "train",
            "duration": 12.48,
            "fps": 25.0,
            "annotations": [
                {"segment": [0.0, 5.3], "label": "dog barking", "label_id": 1},
                {"segment": [2.1, 12.48], "label": "man speaking", "label_id": 0},
                {"segment": [4.0, 4.9], "label": "dog barking", "label_id": 1},
            ],
        },
        "vidB0000002": {
            "subset": "validation",
            "duration": 0.2,
            "annotations": [{"segment": [0.0, 0.2], "label": "car horn", "label_id": 2}],
        },
        "vidC0000003": {
            "subset": "test",
            "duration": 60.0,
            "annotations": [{"segment": [10.5, 61.0], "label": "man speaking", "label_id": 0}],
        },
    }
}


def _unav(tmp_path: Path, data: dict, **kw):
    (tmp_path / "unav100_annotations.json").write_text(json.dumps(data))
    return unav100.load({"format": "unav100", "root": str(tmp_path), **kw})


def test_unav100(tmp_path: Path) -> None:
    m = _unav(tmp_path, UNAV)
    assert m.classes == ["man speaking", "dog barking", "car horn"]  # by label_id
    assert [(s.sample_id, s.split, s.n_segments) for s in m.samples] == [
        ("vidA0000001", "train", 13),
        ("vidB0000002", "val", 1),
        ("vidC0000003", "test", 60),
    ]
    t = m.segment_targets(m.samples[:1])[0]  # (13, 3): 12.48 s -> 13 segments, overlapping events
    assert t[:, 1].tolist() == [
        1,
        1,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]  # [0, 5.3): 0.3 of segment 5 < half
    assert t[:, 0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]  # [2.1, 12.48)
    # 0.2 s < half a 1-s window, but the whole event lies in the clip's only segment
    assert m.segment_targets(m.samples[1:2])[0, :, 2].tolist() == [1.0]
    assert all(e.modality == "audio-visual" for e in m.events)
    assert m.meta["anomalies"]["event_outside_duration"]["count"] == 1
    m2 = _unav(tmp_path, UNAV, segment_hop=0.32, segment_win=0.96)
    # whole 0.96-s windows only: floor((12.48 - 0.96) / 0.32) + 1; the 0.2-s clip has none
    assert m2.samples[0].n_segments == 37 and m2.samples[1].n_segments == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["database"]["vidA0000001"]["annotations"][0].update(segment=[5.0, 1.0]),
            r"annotations\[0\]: segment .* ends before",
        ),
        (
            lambda d: d["database"]["vidB0000002"].update(subset="dev"),
            r"database\['vidB0000002'\]: subset 'dev'",
        ),
        (lambda d: d["database"]["vidB0000002"]["annotations"][0].update(label_id=0), r"conflicts"),
        (
            lambda d: d["database"]["vidB0000002"].update(duration="x"),
            r"duration 'x' is not a number",
        ),
    ],
)
def test_unav100_bad_input(tmp_path: Path, edit, message: str) -> None:
    data = json.loads(json.dumps(UNAV))
    edit(data)
    with pytest.raises(DatasetError, match=rf"unav100_annotations.json: .*{message}"):
        _unav(tmp_path, data)


def test_unav100_duplicate_key(tmp_path: Path) -> None:
    text = '{"database": {"v1": {"subset": "train", "duration": 1, "annotations": []}, "v1": {}}}'
    (tmp_path / "unav100_annotations.json").write_text(text)
    with pytest.raises(DatasetError, match="duplicate key 'v1'"):
        unav100.load({"format": "unav100", "root": str(tmp_path)})


def _avel(tmp_path: Path, csv_text: str, labels: dict | None, **kw):
    (tmp_path / "vggsound-avel100k.csv").write_text(csv_text)
    if labels is not None:
        (tmp_path / "annos.json").write_text(json.dumps(labels))
        kw["labels"] = "annos.json"
    return vggsound_avel.load({"format": "vggsound_avel", "root": str(tmp_path), **kw})


AVEL_CSV = (
    "id,category,video_id,split,extra\n0,playing violin,v1,train,x\n"
    "1,dog barking,v2,val,y\n2,playing violin,v3,test,z\n"
)


def test_vggsound_avel(tmp_path: Path, mp4_factory) -> None:
    labels = {
        "v1": {"label": [0, 1, 1, 1, 1, 1, 0, 1, 1, 1]},
        "v2": [[1] * 10],
        "v3": [[0]] * 9 + [[1]],
    }
    mp4_factory(tmp_path / "videos" / "v2_000017.mp4", 1.0)
    mp4_factory(tmp_path / "videos" / "v2_000046.mp4", 1.0)
    m = _avel(tmp_path, AVEL_CSV, labels)
    assert m.classes == ["playing violin", "dog barking"]
    ev = [(e.sample_id, e.label, e.onset, e.offset) for e in m.events]
    assert ev == [
        ("v1", "playing violin", 1.0, 6.0),
        ("v1", "playing violin", 7.0, 10.0),
        ("v2", "dog barking", 0.0, 10.0),
        ("v3", "playing violin", 9.0, 10.0),
    ]
    v2 = m.samples[1]
    assert v2.present and v2.path.endswith("v2_000046.mp4")  # the later clip of the id
    assert m.meta["anomalies"]["several_clips_per_id"]["count"] == 1
    # the 10 labels fix T (CPSP pads to 10 and scores all 10), also for v2's 1-s clip
    assert [s.n_segments for s in m.samples] == [10, 10, 10]
    assert m.meta["anomalies"]["duration_differs_from_labels"]["count"] == 1
    assert fixed_segments(m) == {"v1": 10, "v2": 10, "v3": 10}
    (tmp_path / "VggsoundAVEL100kCategories.txt").write_text(
        "dog barking\nplaying violin\ncat purring\n"
    )
    m = _avel(tmp_path, AVEL_CSV, None)
    assert m.classes == ["dog barking", "playing violin", "cat purring"]
    assert all(e.is_weak for e in m.events) and m.meta["segment_labels"] == "video-level only"
    assert fixed_segments(m) == {} and m.samples[1].n_segments == 1  # T from the clip


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (
            AVEL_CSV + "3,playing violin,v1,test,q\n",
            r"vggsound-avel100k.csv:5: duplicate video_id 'v1' .*csv:2",
        ),
        (AVEL_CSV + "3,playing violin,v9,holdout,q\n", r"vggsound-avel100k.csv:5: split 'holdout'"),
        ("category,video_id\nx,v1\n", r"vggsound-avel100k.csv:1: .*lacks column"),
    ],
)
def test_vggsound_avel_bad_input(tmp_path: Path, csv_text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        _avel(tmp_path, csv_text, None)


def test_vggsound_avel_unknown_class(tmp_path: Path) -> None:
    (tmp_path / "cats.txt").write_text("dog barking\n")
    with pytest.raises(
        DatasetError, match=r"vggsound-avel100k.csv:2: unknown class 'playing violin'"
    ):
        _avel(tmp_path, AVEL_CSV, None, classes_file="cats.txt")


def test_folder(tmp_path: Path, mp4_factory) -> None:
    mp4_factory(tmp_path / "b clip.mp4", 2.0)
    mp4_factory(tmp_path / "a.mkv", 0.5, audio=False)
    mp4_factory(tmp_path / "sub" / "a.mp4", 1.0)
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    m = folder.load({"format": "folder", "root": str(tmp_path)})
    got = [(s.sample_id, s.split, round(s.duration, 2), s.n_segments) for s in m.samples]
    assert got == [
        ("a", "unlabeled", 0.5, 1),
        ("b clip", "unlabeled", 2.0, 2),
        ("broken", "unlabeled", 0.0, 0),
    ]
    assert m.classes == [] and m.events == []
    m = folder.load({"format": "folder", "root": str(tmp_path), "recursive": True})
    assert [s.sample_id for s in m.samples] == ["a", "b clip", "broken", "sub/a"]
    mp4_factory(tmp_path / "a.mp4", 0.5)
    with pytest.raises(DatasetError, match="duplicate video id 'a'"):
        folder.load({"format": "folder", "root": str(tmp_path)})


def test_registry() -> None:
    assert set(registry.FORMATS) == {"ave", "llp", "unav100", "vggsound_avel", "folder"}
    assert registry.get_format("unav100") is unav100
    with pytest.raises(
        KeyError, match="unknown dataset format 'avel'.*ave, folder, llp, unav100, vggsound_avel"
    ):
        registry.get_format("avel")
