"""Import of released features: the real AVE file, each released format in its exact
layout (AVE h5, LLP npy folders, CPSP VGGSound-AVEL zips), the mismatches a user meets
(wrong row count, missing video, wrong dims), and bounded memory."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from avpipe.datasets.manifest import Manifest, Sample
from avpipe.io.released import (
    ReleasedFeatureError,
    import_ave_h5,
    import_folder,
    import_released,
)
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


# --- the formats through import_released, in the exact released layouts ------------------


def _llp_manifest(folder: Path, ids: list[str]) -> Path:
    samples = [Sample(v, v, "train", f"video/{v}.mp4", 10.0, 10, True) for v in ids]
    Manifest("llp", "llp", ["Speech"], samples, []).write(folder)
    return folder


def _zip(path: Path, array: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{path.stem}/{path.stem}.pkl", pickle.dumps(array))


def test_ave_h5_release_layout_rows_shape_and_checksum(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.random((3, 10, 7, 7, 512))
    with h5py.File(tmp_path / "visual_feature.h5", "w") as f:
        f["avadataset"] = data
    man = _manifest(tmp_path / "m", ["b", "a", "c"])
    import_released(
        "ave_h5", tmp_path / "visual_feature.h5", tmp_path / "v.zarr", "vgg19_pool5", manifest=man
    )
    s = FeatureStore(tmp_path / "v.zarr")
    np.testing.assert_allclose(s.load(["a", "b", "c"]), data[[1, 0, 2]], rtol=1e-6)
    want = hashlib.sha256((tmp_path / "visual_feature.h5").read_bytes()).hexdigest()
    assert s.attrs["source_sha256"] == want
    assert s.attrs["source"] == str(tmp_path / "visual_feature.h5")


def test_ave_h5_wrong_row_count_or_dims_names_file_and_key(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "audio_feature.h5", "w") as f:
        f["avadataset"] = np.zeros((4, 10, 128))
        f["other"] = np.zeros((3, 10, 127))
    with pytest.raises(ReleasedFeatureError, match=r"audio_feature.h5:avadataset: 4 rows.* 3 "):
        import_released(
            "ave_h5",
            tmp_path / "audio_feature.h5",
            tmp_path / "a.zarr",
            "vggish",
            manifest=_manifest(tmp_path / "m", ["a", "b", "c"]),
        )
    with pytest.raises(
        ReleasedFeatureError,
        match=r"audio_feature.h5:other: rows of shape \(127,\), expected \(128,\)",
    ):
        import_released(
            "ave_h5", tmp_path / "audio_feature.h5", tmp_path / "a.zarr", "vggish", key="other"
        )
    assert not (tmp_path / "a.zarr").exists()


@pytest.mark.parametrize(
    ("recipe", "shape"),
    [("vggish", (10, 128)), ("resnet152_llp", (80, 2048)), ("r2plus1d18", (10, 512))],
)
def test_llp_npy_release_layout(tmp_path: Path, recipe: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    folder = tmp_path / "feats"
    folder.mkdir()
    clips = {v: rng.random(shape).astype(np.float32) for v in ("yt_b", "yt_a", "yt_x")}
    for v, a in clips.items():
        np.save(folder / f"{v}.npy", a)
    man = _llp_manifest(tmp_path / "m", ["yt_a", "yt_b"])  # yt_x: released, not annotated
    import_released("llp_npy", folder, tmp_path / "s.zarr", recipe, manifest=man)
    s = FeatureStore(tmp_path / "s.zarr")
    assert s.video_ids == ["yt_a", "yt_b"] and s.attrs["skipped"] == 1
    k = shape[0] // 10
    np.testing.assert_allclose(
        s.load(["yt_b"])[0], clips["yt_b"].reshape(10, k, -1).mean(1), rtol=1e-6
    )
    assert len(s.attrs["source_sha256"]) == 64 and s.mask.all()


def test_llp_npy_missing_video_or_wrong_dims_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "vggish"
    folder.mkdir()
    np.save(folder / "yt_a.npy", np.zeros((10, 128)))
    with pytest.raises(ReleasedFeatureError, match=r"1 of the 2 videos .*/vggish/yt_b\.npy"):
        import_released(
            "llp_npy",
            folder,
            tmp_path / "s.zarr",
            "vggish",
            manifest=_llp_manifest(tmp_path / "m", ["yt_a", "yt_b"]),
        )
    np.save(folder / "yt_b.npy", np.zeros((10, 127)))
    with pytest.raises(
        ReleasedFeatureError, match=r"yt_b\.npy: rows of shape \(127,\), expected \(128,\)"
    ):
        import_released(
            "llp_npy",
            folder,
            tmp_path / "s.zarr",
            "vggish",
            manifest=_llp_manifest(tmp_path / "m2", ["yt_a", "yt_b"]),
        )
    (folder / "yt_a.npy").unlink()
    np.save(folder / "yt_b.npy", np.zeros((75, 2048)))  # not 8 frames per segment
    with pytest.raises(
        ReleasedFeatureError, match=r"yt_b\.npy: shape \(75, 2048\), expected \(T\*8"
    ):
        import_released("llp_npy", folder, tmp_path / "r.zarr", "resnet152_llp")


def test_vggsound_avel_zip_release_pads_to_ten_segments(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    folder = tmp_path / "audio"
    folder.mkdir()
    clips = {
        "v_short": rng.random((8, 128)),
        "v_long": rng.random((11, 128)),
        "v_ok": rng.random((10, 128)),
    }
    for v, a in clips.items():
        _zip(folder / f"{v}.zip", a)
    man = _llp_manifest(tmp_path / "m", sorted(clips))
    import_released("vggsound_avel_zip", folder, tmp_path / "a.zarr", "vggish", manifest=man)
    s = FeatureStore(tmp_path / "a.zarr")
    assert s.n_segments.tolist() == [10, 10, 10] and s.mask.all()
    short = s.load(["v_short"])[0]
    np.testing.assert_allclose(short[:8], clips["v_short"], rtol=1e-6)
    np.testing.assert_allclose(short[8:], np.repeat(clips["v_short"][-1:], 2, 0), rtol=1e-6)
    np.testing.assert_allclose(s.load(["v_long"])[0], clips["v_long"][:10], rtol=1e-6)
    assert "padded" in s.attrs["padding"]


def test_vggsound_avel_zip_mismatches_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "visual"
    folder.mkdir()
    _zip(folder / "v1.zip", np.zeros((10, 7, 7, 512), np.float32))
    _zip(folder / "v2.zip", np.zeros((10, 512, 7, 7), np.float32))  # channels first
    with pytest.raises(
        ReleasedFeatureError, match=r"v2\.zip: rows of shape \(512, 7, 7\), expected \(7, 7, 512\)"
    ):
        import_released("vggsound_avel_zip", folder, tmp_path / "v.zarr", "vgg19_pool5")
    with pytest.raises(ReleasedFeatureError, match=r"visual/v3\.zip"):
        import_released(
            "vggsound_avel_zip",
            folder,
            tmp_path / "v.zarr",
            "vgg19_pool5",
            manifest=_llp_manifest(tmp_path / "m", ["v1", "v3"]),
        )
    with zipfile.ZipFile(folder / "v2.zip", "w") as z:  # a pickle that is not an array
        z.writestr("v2.pkl", pickle.dumps(Path("x")))
    with pytest.raises(ReleasedFeatureError, match=r"v2\.zip:v2\.pkl: not a pickled array"):
        import_released("vggsound_avel_zip", folder, tmp_path / "v.zarr", "vgg19_pool5")
    assert not (tmp_path / "v.zarr").exists()


STREAM_SCRIPT = """
import resource, sys
from avpipe.io.released import import_released
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import_released("ave_h5", sys.argv[1], sys.argv[2], "vgg19_pool5", dtype="float16")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024)
"""


def test_ave_h5_import_streams_in_bounded_memory(tmp_path: Path) -> None:
    """A 160-MB release imports with < 40 MB more peak RSS than the imports alone."""
    src = tmp_path / "visual_feature.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("avadataset", (80, 10, 7, 7, 512), dtype="float64")
        row = np.random.default_rng(5).random((10, 7, 7, 512))
        for i in range(80):
            d[i] = row
    assert src.stat().st_size > 160e6
    r = subprocess.run(
        [sys.executable, "-c", STREAM_SCRIPT, str(src), str(tmp_path / "v.zarr")],
        capture_output=True,
        text=True,
        check=True,
    )
    grown_mb = int(r.stdout.split()[-1])
    assert grown_mb < 40, f"peak RSS grew by {grown_mb} MB importing a 160-MB file"
    assert FeatureStore(tmp_path / "v.zarr").array().shape == (80, 10, 7, 7, 512)
