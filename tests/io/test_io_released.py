"""Import of released features: the real AVE file, an AVE-layout file mapped through a
manifest (multi-row videos), and an LLP per-video .npy folder."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.released import import_ave_h5, import_folder
from avpipe.io.store import FeatureStore, GridMismatchError


def test_real_ave_noisy_audio_file(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "AVE" / "audio_feature_noisy.h5"
    import_ave_h5(src, tmp_path / "vggish.zarr", "vggish")
    s = FeatureStore(tmp_path / "vggish.zarr")
    with h5py.File(src, "r") as f:
        ref = f["avadataset"][:]
    assert ref.shape == (178, 10, 128)
    assert len(s) == 178 and s.video_ids[0] == "row00000"
    feats = s.load()
    assert s.array().dtype == np.float32 and np.abs(feats - ref).max() < 1e-6 * np.abs(ref).max()
    assert (feats >= 0).all()  # post-ReLU, no PCA
    assert s.mask.all() and s.has_audio.all()
    assert s.attrs["weights"] == "released" and s.attrs["h5_dtype"] == "float64"
    assert len(s.attrs["source_sha256"]) == 64


def _manifest(folder: Path, rows: list[str]) -> Path:
    samples = []
    for i, v in enumerate(rows):
        sid = v if v not in rows[:i] else f"{v}#2"
        samples.append(Sample(sid, v, "train", f"videos/{v}.mp4", 10.0, 10, True, i))
    Manifest("toy", "ave", ["c"], samples, []).write(folder)
    return folder


def test_ave_layout_through_a_manifest_keeps_the_first_row(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((4, 10, 7, 7, 8))
    data[3] = data[1]  # video "b" has two annotation rows with the same features
    with h5py.File(tmp_path / "visual_feature.h5", "w") as f:
        f["avadataset"] = data
    man = _manifest(tmp_path / "manifest", ["c", "b", "a", "b"])
    import_ave_h5(
        tmp_path / "visual_feature.h5",
        tmp_path / "v.zarr",
        "vgg19_pool5",
        manifest=man,
        dtype="float16",
    )
    s = FeatureStore(tmp_path / "v.zarr")
    assert s.video_ids == ["a", "b", "c"] and s.array().dtype == np.float16
    np.testing.assert_allclose(s.load(["a", "b", "c"]), data[[2, 1, 0]], atol=1e-3)
    assert s.attrs["rows_dropped"] == 1 and s.attrs["dropped_rows_identical"] is True
    assert s.has_audio is None and s.group["has_video"][:].all()
    with pytest.raises(ValueError, match="annotation rows"):
        import_ave_h5(
            tmp_path / "visual_feature.h5",
            tmp_path / "w.zarr",
            "vgg19_pool5",
            manifest=_manifest(tmp_path / "m3", ["a", "b", "c"]),
        )


def test_llp_npy_folder_resnet_frames_are_averaged_per_segment(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "res152"
    folder.mkdir()
    clips = {"yt_b": rng.random((80, 16)), "yt_a": rng.random((40, 16))}  # a 5-s video too
    for v, a in clips.items():
        np.save(folder / f"{v}.npy", a)
    import_folder(folder, tmp_path / "r.zarr", "resnet152_llp", "llp_npy")
    s = FeatureStore(tmp_path / "r.zarr")
    assert s.video_ids == ["yt_a", "yt_b"] and s.n_segments.tolist() == [5, 10]
    np.testing.assert_allclose(
        s.load(["yt_b"])[0], clips["yt_b"].reshape(10, 8, 16).mean(1), rtol=1e-6
    )
    frames = s.load(["yt_a"], "frames")[0]  # (T, 8, D): segment, frame, channel
    np.testing.assert_allclose(frames[:5], clips["yt_a"].reshape(5, 8, 16), rtol=1e-6)
    assert not frames[5:].any()
    assert not s.load(["yt_a"])[0, 5:].any() and s.mask[0].tolist() == [True] * 5 + [False] * 5


@pytest.mark.parametrize(
    ("recipe", "placement"),
    [("vggish", "contiguous"), ("r2plus1d18", "segment"), ("resnet152_llp", "segment")],
)
def test_llp_npy_imports_carry_the_one_second_grid(
    tmp_path: Path, recipe: str, placement: str
) -> None:
    folder = tmp_path / recipe
    folder.mkdir()
    np.save(folder / "yt_a.npy", np.ones((80 if recipe == "resnet152_llp" else 10, 4)))
    import_folder(folder, tmp_path / "s.zarr", recipe, "llp_npy")
    s = FeatureStore(tmp_path / "s.zarr")
    assert s.attrs["grid"] == {"hop_s": 1.0, "window_s": 1.0, "placement": placement}
    assert ("0.96-s patch" in s.attrs["grid_note"]) == (placement == "contiguous")
    s.check_grid(1.0, 1.0)
    with pytest.raises(GridMismatchError, match="s.zarr"):
        s.check_grid(0.32, 0.96)


@pytest.mark.parametrize("recipe", ["vggish", "vgg19_pool5"])
def test_ave_h5_imports_carry_the_one_second_grid(tmp_path: Path, recipe: str) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["avadataset"] = np.zeros((2, 10, 3))
    import_ave_h5(tmp_path / "f.h5", tmp_path / "s.zarr", recipe)
    attrs = FeatureStore(tmp_path / "s.zarr").attrs
    assert attrs["grid"] == {"hop_s": 1.0, "window_s": 1.0, "placement": "segment"}
    assert "1-s segment t" in attrs["grid_note"]
