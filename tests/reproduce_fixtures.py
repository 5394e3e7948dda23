"""Tiny released-feature sets in the exact released layouts, for the reproduction configs.

``write_ave_release``: ``data/AVE/`` as in YapengTian/AVE-ECCV18 (``Annotations.txt``
``class&video&quality&start&end`` lines, ``{train,val,test}_order.h5`` dataset ``order``
of 0-based rows, ``{visual,audio}_feature.h5`` dataset ``avadataset`` (rows, 10, 7, 7, 512)
/ (rows, 10, 128) float64, one row per annotation line; one video has two rows, as 46
real ones do).  ``write_llp_release``: ``data/LLP/`` as in YapengTian/AVVP-ECCV20 (the
TAB-separated AVVP csvs and ``feats/{vggish,res152,r2plus1d_18}/<11-char id>.npy`` of
(10, 128), (80, 2048), (10, 512)).  Features carry the class, so a method can learn.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from avpipe.datasets.ave import AVE_CLASSES
from avpipe.datasets.llp import LLP_CLASSES

LLP_SHAPES = {"vggish": (10, 128), "res152": (80, 2048), "r2plus1d_18": (10, 512)}


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:0{11 - len(prefix)}d}" for i in range(n)]


def write_ave_release(root: Path, per_split: tuple[int, int, int] = (8, 4, 4)) -> Path:
    """``root/data/AVE`` with ``sum(per_split) + 1`` annotation rows over 4 classes."""
    folder = root / "data/AVE"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = sum(per_split)
    ids = _ids("ave", n)
    classes = [AVE_CLASSES[i % 4] for i in range(n)]
    starts, lengths = rng.integers(0, 4, n), rng.integers(3, 7, n)
    spans = [(int(s), int(s + d)) for s, d in zip(starts, lengths, strict=True)]
    # the last video has a second row with the same event (its features are identical)
    rows = [*zip(classes, ids, spans, strict=True), (classes[0], ids[0], spans[0])]
    (folder / "Annotations.txt").write_text(
        "".join(f"{c}&{v}&good&{s}&{e}\n" for c, v, (s, e) in rows)
    )
    order = np.arange(n)
    bounds = np.cumsum((0, *per_split))
    for i, split in enumerate(("train", "val", "test")):
        part = order[bounds[i] : bounds[i + 1]]
        if split == "train":
            part = np.append(part, n)  # the repeated row
        with h5py.File(folder / f"{split}_order.h5", "w") as f:
            f["order"] = part.astype(np.int64)
    visual = rng.normal(0, 0.1, (n + 1, 10, 7, 7, 512))
    audio = rng.normal(0, 0.1, (n + 1, 10, 128))
    for r, (c, _, (s, e)) in enumerate(rows):
        k = AVE_CLASSES.index(c)
        visual[r, s:e, :, :, k * 8 : k * 8 + 8] += 1.0
        audio[r, s:e, k * 8 : k * 8 + 8] += 1.0
    visual[n], audio[n] = visual[0], audio[0]
    for name, data in (("visual_feature.h5", visual), ("audio_feature.h5", audio)):
        with h5py.File(folder / name, "w") as f:
            f["avadataset"] = np.abs(data)  # post-ReLU, float64 like the release
    return folder


def write_llp_release(root: Path, per_split: tuple[int, int, int] = (8, 4, 4)) -> Path:
    """``root/data/LLP``: the AVVP csvs and the three ``feats/`` folders, 3 classes."""
    folder = root / "data/LLP"
    feats = {name: folder / "feats" / name for name in ("vggish", "res152", "r2plus1d_18")}
    for f in feats.values():
        f.mkdir(parents=True)
    rng = np.random.default_rng(1)
    ids = _ids("llp", sum(per_split))
    names = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
    weak: dict[str, list[str]] = {s: [] for s in names}
    dense: list[str] = []
    bounds = np.cumsum((0, *per_split))
    for i, v in enumerate(ids):
        split = ("train", "val", "test")[int(np.searchsorted(bounds, i, side="right")) - 1]
        c = LLP_CLASSES[i % 3]
        weak[split].append(f"{v}_0_10\t{c}\n")
        if split != "train":
            dense.append(f"{v}_0_10\t0\t10\t{c}\n")
        k = i % 3
        for name, shape in LLP_SHAPES.items():
            a = np.abs(rng.normal(0, 0.1, shape)).astype(np.float32)
            a[:, k * 8 : k * 8 + 8] += 1.0
            np.save(feats[name] / f"{v}.npy", a)
    for split, file in names.items():
        (folder / file).write_text("filename\tevent_labels\n" + "".join(weak[split]))
    for file in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        (folder / file).write_text("filename\tonset\toffset\tevent_labels\n" + "".join(dense))
    return folder
