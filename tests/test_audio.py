"""Real audio in: reading any file (or naming the bad one), resampling, HiFi-GAN's own log-mel, an f0
track, perceptual scores, and the pretrained vocoder's official checkpoint layout."""

import numpy as np
import pytest
import torch
from conftest import SPEECH, TESTS, seeded

from workflow_lib.analysis import fidelity
from workflow_lib.core import dsp, gates
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
    a, b = fidelity.perceptual(speech, slight, SR), fidelity.perceptual(speech, heavy, SR)
    assert a["pesq"] > 4.0 > b["pesq"] and a["stoi"] > b["stoi"]
    short = fidelity.perceptual(speech[: SR // 4], speech[: SR // 4], SR)
    assert short["pesq"] is None and "need at least 0.5 s" in short["pesq_error"]
    assert gates.gate(short, {"min_pesq": 4.0}) == ("failed", f"pesq unavailable ({short['pesq_error']})")


def test_gates_name_each_metric_and_bound():
    limits = {"min_snr_db": 20.0, "max_lsd_db": 6.0, "min_pesq": None}
    assert gates.gate({"snr_db": 25.0, "lsd_db": 1.0}, limits) == ("passed", "")
    assert gates.gate({"snr_db": 12.5, "lsd_db": 1.0}, limits) == ("failed", "snr_db 12.5 < 20")
    assert gates.gate({"snr_db": 25.0, "lsd_db": 7.25}, limits) == ("failed", "lsd_db 7.25 > 6")
    assert gates.gate({"snr_db": 1.0}, {}) == ("passed", "")


def test_the_worst_file_decides_and_each_gate_records_its_margin():
    files = [{"pesq": 4.3, "lsd_db": 2.0}, {"pesq": 3.9, "lsd_db": 1.0}, {"pesq": 4.1, "lsd_db": 5.5}]
    verdict = gates.judge(files, {"min_pesq": 4.0, "max_lsd_db": 6.0}, ["a.wav", "b.wav", "c.wav"])
    assert verdict["status"] == "failed" and verdict["reason"] == "pesq 3.9 < 4 (b.wav)"  # the mean (4.1) would pass
    assert verdict["gates"]["min_pesq"] == {"worst": 3.9, "file": "b.wav", "limit": 4.0, "margin": pytest.approx(-0.1)}
    assert verdict["gates"]["max_lsd_db"] == {"worst": 5.5, "file": "c.wav", "limit": 6.0, "margin": 0.5}
    assert gates.relative_margin(verdict) == pytest.approx(-0.025)
    assert gates.gate_keys({"minimum_pesq": 4}, gates.METRICS, "x") == [
        "x.minimum_pesq: not a gate (allowed: min_snr_db, max_snr_db, min_lsd_db, max_lsd_db, min_pesq, max_pesq, "
        "min_stoi, max_stoi, min_max_abs, max_max_abs, min_max_rel, max_max_rel)"
    ]


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
