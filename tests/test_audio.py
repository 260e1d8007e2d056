"""Real audio in: reading any file (or naming the bad one), resampling, HiFi-GAN's own log-mel, an f0
track, perceptual scores, and the pretrained vocoder's official checkpoint layout."""

import numpy as np
import pytest
import torch
from conftest import SPEECH, TESTS, seeded

from workflow_lib.analysis import gates
from workflow_lib.audio import dsp
from workflow_lib.audio import metrics as audio_metrics
from workflow_lib.core.errors import StageError

SR = 22050


def test_mel_filters_are_librosas():
    """tests/data/librosa_mel.npz was written by librosa 0.11.0's filters.mel (Slaney scale and norm)."""
    ref = np.load(TESTS / "data" / "librosa_mel.npz")
    np.testing.assert_allclose(dsp.mel_filters(22050, 1024, 80, 0.0, 8000.0), ref["hifigan"], atol=1e-8)
    np.testing.assert_allclose(dsp.mel_filters(16000, 512, 40, 50.0, None), ref["other"], atol=1e-8)


def test_log_mel_has_one_frame_per_hop_and_hifigans_floor():
    audio = dsp.read_audio(SPEECH[0], SR)
    mel = dsp.log_mel(audio)
    assert mel.shape == (80, audio.size // 256) and mel.dtype == np.float32
    assert mel.min() >= np.log(1e-5) - 1e-6 and -4 < mel.max() < 4


def test_any_rate_and_channel_count_is_resampled_and_downmixed(tmp_path):
    import soundfile

    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.3
    soundfile.write(tmp_path / "s.flac", stereo, 48000)
    audio = dsp.read_audio(tmp_path / "s.flac", SR)
    assert audio.size == pytest.approx(SR, abs=2) and audio.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * SR / audio.size == pytest.approx(440, abs=2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_text("not audio at all, just text"), "not an audio file libsndfile can read"),
    ],
)
def test_a_bad_audio_file_is_named(tmp_path, make, message):
    path = tmp_path / "speech.wav"
    make(path)
    with pytest.raises(StageError, match=rf"audio input {path}: {message}"):
        dsp.read_audio(path, SR)


def test_f0_track_follows_a_known_contour():
    t = np.arange(SR) / SR
    f0 = 220.0 * 2 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    audio = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR)
    track, voiced = dsp.f0_track(audio, SR, 256)
    truth = f0[::256][: track.size]
    assert voiced[2:-2].all() and np.median(np.abs(track[2:-2] - truth[2:-2]) / truth[2:-2]) < 0.02
    silent, unvoiced = dsp.f0_track(np.zeros(SR), SR, 256)
    assert not unvoiced.any()


def test_perceptual_scores_rank_noise_and_refuse_too_short_clips():
    speech = dsp.read_audio(SPEECH[0], SR)
    rng = np.random.default_rng(0)
    slight = speech + rng.normal(0, 0.001 * speech.std(), speech.size)
    heavy = speech + rng.normal(0, 0.3 * speech.std(), speech.size)
    a, b = audio_metrics.perceptual(speech, slight, SR), audio_metrics.perceptual(speech, heavy, SR)
    assert a["pesq"] > 4.0 > b["pesq"] and a["stoi"] > b["stoi"]
    short = audio_metrics.perceptual(speech[: SR // 4], speech[: SR // 4], SR)
    assert short["pesq"] is None and "need at least 0.5 s" in short["pesq_error"]
    verdict = gates.judge([short], {"min_pesq": 4.0})
    assert (verdict["status"], verdict["reason"]) == ("failed", f"pesq unavailable ({short['pesq_error']})")


def _official_layout_checkpoint(path, channels=32):
    """A small HiFi-GAN V1 state dict in the original layout: flat resblocks.N, legacy weight-norm keys,
    wrapped under `generator` as the official training script saves it."""
    from workflow_lib.models.svc.modules import HiFiGAN

    seeded(0)
    state = {}
    for key, value in HiFiGAN(channels=channels).state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        state[key] = value.clone()
    torch.save({"generator": state}, path)
    return state


def test_the_official_checkpoint_layout_loads_with_no_missing_keys(tmp_path):
    from workflow_lib.core.spec import component_spec
    from workflow_lib.runtimes.loader import load

    state = _official_layout_checkpoint(tmp_path / "g.pth.tar")
    assert {k.split(".")[0] for k in state} == {"conv_pre", "ups", "resblocks", "conv_post"}
    assert "resblocks.11.convs2.2.weight_v" in state and "conv_pre.weight_g" in state
    spec = component_spec(
        "m",
        "vocoder",
        {
            "class": "workflow_lib.models.svc.modules.HiFiGAN",
            "kwargs": {"channels": 32},
            "checkpoint": str(tmp_path / "g.pth.tar"),
            "state_dict_key": "generator",
            "inputs": [{"name": "mel", "shape": [1, 80, "time"]}],
            "dims": {"time": {"min": 4, "opt": 8, "max": 16}},
        },
    )
    module, report = load(spec)
    assert report.missing == [] and report.unexpected == [] and report.loaded == len(state)
    assert module(torch.zeros(1, 80, 8)).shape == (1, 1, 8 * 256)


def test_a_package_checkpoint_is_found_without_importing_the_package(tmp_path, monkeypatch):
    """Packages that ship weights often import audio libraries at import time; finding the file must not."""
    from workflow_lib.core.errors import ConfigError
    from workflow_lib.core.spec import checkpoint_path, package_file

    pkg = tmp_path / "site" / "boom"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('importing boom runs its __init__')\n")
    (pkg / "data" / "g.pth.tar").write_bytes(b"weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert package_file("pkg:boom/data/g.pth.tar") == pkg / "data" / "g.pth.tar"
    assert checkpoint_path("m", "voc", "pkg:boom/data/g.pth.tar") == "results/packages/m/voc.pth.tar"
    with pytest.raises(ConfigError, match="package 'boom' has no file 'data/missing.pt'"):
        package_file("pkg:boom/data/missing.pt")
    with pytest.raises(ConfigError, match="package 'nosuchpackage_xyz' is not installed"):
        package_file("pkg:nosuchpackage_xyz/a.pt")
