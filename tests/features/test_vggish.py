"""The VGGish front end against librosa, the network layout, post-processing, backends."""

from __future__ import annotations

import importlib.util

import librosa
import numpy as np
import pytest
import torch

from avpipe.config import ConfigError
from avpipe.features import melspec, registry
from avpipe.features.torchbase import WeightsUnavailableError
from avpipe.features.vggish import VGGishNet

# One thread: on a shared, loaded 2-core box OpenMP barriers make 2 threads ~10x slower.
torch.set_num_threads(1)

SR = 16000
N = melspec.samples_per_patch()

# Tolerances measured on a 1-kHz tone (recorded here on purpose):
#   STFT magnitude vs librosa: max relative error 7.6e-8;
#   mel matrix vs librosa.filters.mel(htk=True, norm=None): max abs 4.4e-3 (librosa's
#   triangles are linear in Hz, VGGish's linear in mel);
#   full log-mel vs the librosa pipeline: max abs 8.0e-3, mean 8.5e-4.
STFT_RTOL, MEL_ATOL, LOGMEL_ATOL = 1e-5, 1e-2, 2e-2


def tone(hz: float = 1000.0, n: int = N) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


def librosa_magnitude(y: np.ndarray) -> np.ndarray:
    """VGGish frames [160 i, 160 i + 400) with librosa's STFT: librosa centres the 400-sample
    window in the 512-point frame, so shift the signal right by (512 - 400) / 2 = 56."""
    pad = np.zeros(56, np.float32)
    s = librosa.stft(
        np.concatenate([pad, y, pad]),
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",  # scipy get_window('hann') is periodic (fftbins=True)
        center=False,
    )
    return np.abs(s).T[:96]


def test_patch_geometry() -> None:
    assert N == 15600
    patches = melspec.LogMel()(torch.zeros(3, N + 100))
    assert patches.shape == (3, 1, 96, 64)
    torch.testing.assert_close(patches, torch.full_like(patches, float(np.log(0.01))))
    with pytest.raises(ValueError, match=">= 15600"):
        melspec.LogMel()(torch.zeros(1, N - 1))


def test_stft_matches_librosa() -> None:
    y = tone()
    ours = melspec.LogMel().spectrogram(torch.from_numpy(y)[None])[0].numpy()
    ref = librosa_magnitude(y)
    assert ours.shape == ref.shape == (96, 257)
    assert np.abs(ours - ref).max() <= STFT_RTOL * ref.max()


def test_mel_matrix_close_to_librosa_htk() -> None:
    ours = melspec.mel_matrix().numpy()
    ref = librosa.filters.mel(
        sr=SR, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None
    ).T
    assert ours.shape == ref.shape == (257, 64)
    assert np.abs(ours - ref).max() < MEL_ATOL
    assert (ours[0] == 0).all()  # DC dropped
    assert (ours.sum(0) > 0).all() and ours.max() <= 1.0  # every band sees some bin


@pytest.mark.parametrize("hz", [440.0, 1000.0, 3000.0])
def test_log_mel_of_a_tone_matches_librosa(hz: float) -> None:
    y = tone(hz)
    ours = melspec.LogMel()(torch.from_numpy(y)[None])[0, 0].numpy()
    mel = librosa.filters.mel(sr=SR, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None)
    ref = np.log(librosa_magnitude(y) @ mel.T + 0.01)
    assert np.abs(ours - ref).max() < LOGMEL_ATOL
    # the loudest band is the one whose HTK-mel centre is nearest the tone
    centres = librosa.mel_frequencies(66, fmin=125, fmax=7500, htk=True)[1:-1]
    assert ours.mean(0).argmax() == np.abs(centres - hz).argmin()


def test_network_keys_follow_torchvggish_layout() -> None:
    net = VGGishNet()
    keys = set(net.state_dict())
    convs = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 11, 13) for p in ("weight", "bias")}
    fcs = {f"embeddings.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    assert keys == convs | fcs
    assert net.embeddings[0].in_features == 512 * 6 * 4


@pytest.fixture(scope="module")
def vggish():
    return registry.build("vggish", {"weights": "random", "seed": 1}).to("cpu")


def test_embeddings_are_post_relu_and_per_segment(vggish) -> None:
    audio = torch.from_numpy(np.stack([tone(440.0), tone(2000.0), 0.3 * tone(440.0)]))
    out = vggish(audio)["features"]
    assert out.shape == (3, 128) and out.dtype == torch.float32
    assert (out >= 0).all() and (out > 0).any()
    torch.testing.assert_close(out[1:2], vggish(audio[1:2])["features"], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(out[0], out[1])


def test_weights_file_and_postprocess(tmp_path, vggish) -> None:
    wpath, ppath = tmp_path / "vggish.pth", tmp_path / "pca.pth"
    torch.save(vggish.net["vggish"].state_dict(), wpath)
    torch.save({"pca_eigen_vectors": torch.eye(128), "pca_means": torch.full((128,), 0.5)}, ppath)
    post = registry.build(
        "vggish", {"weights": str(wpath), "postprocess": True, "pca_params": str(ppath)}
    ).to("cpu")
    assert post.spec.details["pca_params"] == f"file:{ppath}"
    audio = torch.from_numpy(tone(440.0))[None]
    raw = vggish(audio)["features"]
    want = torch.round((torch.clamp(raw - 0.5, -2, 2) + 2) * 255 / 4)
    torch.testing.assert_close(post(audio)["features"], want)


def test_no_weights_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("AVPIPE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="vggish-10086976.pth.*`random`"):
        registry.build("vggish", {})


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_hub") is not None, reason="tfhub installed"
)
def test_tfhub_backend_needs_the_extra() -> None:
    with pytest.raises(ConfigError, match=r"avpipe\[tfhub\]"):
        registry.build("vggish", {"backend": "tfhub", "handle": "/nonexistent"})
