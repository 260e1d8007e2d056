"""Audio-domain fidelity: metrics on signals with known error, gates, WAVs, and playable audio in the report."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from workflow_lib import fidelity, report
from workflow_lib.results import E2E_COLUMNS, write_results
from workflow_lib.speedups import summarize
from workflow_lib.timing import stats

SR = 22050


def _sine_plus_noise(snr_db, seed=0):
    t = np.arange(SR) / SR
    clean = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)
    noise = np.random.default_rng(seed).normal(0, 1, SR)
    noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return clean, clean + noise


@pytest.mark.parametrize("target", [10.0, 20.0, 35.0])
def test_snr_of_a_sine_plus_noise_at_a_set_level(target):
    clean, noisy = _sine_plus_noise(target)
    assert fidelity.snr_db(clean, noisy) == pytest.approx(target, abs=0.1)
    assert fidelity.snr_db(clean, clean) == float("inf")


def test_lsd_grows_with_the_error_and_is_zero_for_identical_audio():
    clean, _ = _sine_plus_noise(20)
    lsds = [fidelity.lsd_db(clean, _sine_plus_noise(s)[1], SR) for s in (40, 20, 10)]
    assert fidelity.lsd_db(clean, clean, SR) == 0.0 and lsds == sorted(lsds) and lsds[0] > 0


def test_gate_fails_below_the_configured_snr_or_above_the_lsd():
    gates = {"min_snr_db": 20.0, "max_lsd_db": 6.0}
    assert fidelity.gate({"snr_db": 25.0, "lsd_db": 1.0}, gates) == ("passed", "")
    assert fidelity.gate({"snr_db": 12.5, "lsd_db": 1.0}, gates) == ("failed", "SNR 12.5 dB < 20 dB")
    assert fidelity.gate({"snr_db": 25.0, "lsd_db": 7.25}, gates) == ("failed", "LSD 7.25 dB > 6 dB")
    assert fidelity.gate({"snr_db": 1.0, "lsd_db": 99.0}, {}) == ("passed", "")


def test_wav_round_trip(tmp_path):
    clean, _ = _sine_plus_noise(20)
    fidelity.write_wav(tmp_path / "a.wav", clean, SR)
    back, rate = fidelity.read_wav(tmp_path / "a.wav")
    assert rate == SR and back.shape == clean.shape and np.max(np.abs(back - clean)) < 1e-4


def _e2e_run(d, name, audio, ref, verdict):
    ms = list(np.full(5, 100.0))
    metrics = fidelity.audio_metrics(ref, audio, SR)
    row = {"model": "m", "component": "e2e", "backend": "onnxruntime", "precision": "fp16", "device": "cpu",
           "label": name, "point": "1s", "assignment": name, "chain": "vocoder=onnxruntime.fp16@cpu",
           "audio_seconds": 1.0, **stats(ms), "rtf": 0.1, **metrics, "fidelity": verdict,
           "fidelity_reason": fidelity.gate(metrics, {"min_snr_db": 20})[1]}
    record = {"gates": {"min_snr_db": 20}, "audio_point": "1s",
              "points": {"1s": {**metrics, "stages": {s: {"snr_db": 40.0, "max_rel": 0.01}
                                                      for s in ("content", "pitch", "latent", "mel", "audio")}}}}
    csv = d / f"{name}.csv"
    write_results([row], {("cpu", "1s"): ms}, csv, {"stage": "e2e", "assignment": name, "status": "measured",
                                                   "fidelity": record}, E2E_COLUMNS)
    fidelity.write_wav(d / f"{name}.wav", audio, SR)
    fidelity.write_wav(d / f"{name}.reference.wav", ref, SR)
    return str(csv)


def test_report_marks_failed_fidelity_and_embeds_playable_audio(tmp_path):
    clean, noisy = _sine_plus_noise(8.0)
    csvs = [_e2e_run(tmp_path, "fp16_chain", noisy, clean, "failed"),
            _e2e_run(tmp_path, "best", clean * 0.999, clean, "passed")]
    table, unavailable = summarize(csvs, 200)
    out = tmp_path / "report" / "index.html"
    ctx = report.render(table, unavailable, csvs, [], [], out, tmp_path / "report", "abc")
    html = out.read_text()
    assert ctx["failed_fidelity"] == ["fp16_chain"] and "SNR 8.0 dB &lt; 20 dB" in html
    assert [p["name"] for p in ctx["players"]] == ["reference", "best", "fp16_chain"]
    for name in ("spectrograms", "error_propagation"):
        assert (tmp_path / "report" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
                           "--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
                          capture_output=True, text=True, timeout=120)
    durations = dict(re.findall(r'<audio[^>]*data-name="([^"]+)"[^>]*data-duration="([0-9.]+)"', proc.stdout)
                     or re.findall(r'<audio[^>]*data-duration="([0-9.]+)"[^>]*data-name="([^"]+)"', proc.stdout)[::-1])
    assert set(durations) == {"reference", "best", "fp16_chain"}, proc.stdout[-2000:]
    assert all(float(v) == pytest.approx(1.0, abs=0.01) for v in durations.values())
    json.dumps(ctx["players"][0]["name"])


def test_audio_components_get_snr_in_their_marker(tmp_path):
    from conftest import export_tiny_conv
    from workflow_lib import precision, validate
    spec = export_tiny_conv(tmp_path, output_kind="audio", sample_rate=16000)
    precision.to_fp16(spec, tmp_path / "net.onnx", tmp_path / "voc16.onnx")
    marker = validate.validate(spec, "onnxruntime", "fp16", tmp_path / "voc16.onnx")
    out = marker["parity"]["points"]["max"]["outputs"]["y"]
    assert 20 < out["snr_db"] < float("inf") and out["lsd_db"] >= 0 and "max_abs" in out
