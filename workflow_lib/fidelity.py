"""Audio-domain error of a signal against its reference: SNR, log-spectral distance, max abs.

Elementwise parity says whether an artifact matches PyTorch; it does not say what a listener
gets after five components compound their errors, and fp16 vocoders fail in the audio domain
(buzz, clipping) before they fail a loose elementwise check. These metrics do, and the gates
(`e2e.fidelity`) turn them into pass/fail. Also the 16-bit PCM WAV writer (standard library).
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path

EPS = 1e-12


def snr_db(reference: np.ndarray, signal: np.ndarray) -> float:
    """10 log10(|ref|^2 / |signal - ref|^2); +inf when identical."""
    ref, sig = np.asarray(reference, np.float64).ravel(), np.asarray(signal, np.float64).ravel()
    noise = float(np.sum((sig - ref) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(max(float(np.sum(ref**2)), EPS) / noise))


def log_mel_db(audio: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80) -> np.ndarray:
    """Mel power spectrogram in dB [n_mels, frames] (numpy only: the same for every backend)."""
    from .models.svc_chain import mel_filterbank

    x = np.asarray(audio, np.float64).ravel()
    x = np.pad(x, n_fft // 2, mode="reflect") if x.size > n_fft // 2 else np.pad(x, (n_fft // 2, n_fft // 2))
    frames = 1 + max(0, (x.size - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft)[None, :], axis=1)) ** 2
    return 10 * np.log10(mel_filterbank(sr, n_fft, n_mels).astype(np.float64) @ spec.T + 1e-10)


def lsd_db(reference: np.ndarray, signal: np.ndarray, sr: int, floor_db: float = 80.0) -> float:
    """Log-spectral distance on mel spectra: per frame RMS of the dB difference, averaged over frames.

    Both spectra are floored at the reference's peak minus `floor_db`, so silent bands (where
    any noise is infinitely many dB above nothing) do not swamp the distance.
    """
    a, b = log_mel_db(reference, sr), log_mel_db(signal, sr)
    floor = a.max() - floor_db
    a, b = np.maximum(a, floor), np.maximum(b, floor)
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=0))))


def audio_metrics(reference: np.ndarray, signal: np.ndarray, sr: int) -> dict[str, float]:
    return {"snr_db": snr_db(reference, signal), "lsd_db": lsd_db(reference, signal, sr),
            "max_abs": float(np.max(np.abs(np.asarray(signal, np.float64) - np.asarray(reference, np.float64))))}


def tensor_error(reference: np.ndarray, signal: np.ndarray) -> dict[str, float]:
    """For intermediate tensors: SNR and max abs relative to the reference's largest magnitude."""
    scale = float(np.max(np.abs(reference))) or 1.0
    return {"snr_db": snr_db(reference, signal),
            "max_rel": float(np.max(np.abs(np.asarray(signal, np.float64) - reference))) / scale}


def gate(metrics: dict[str, float], gates: dict[str, Any]) -> tuple[str, str]:
    """('passed' | 'failed', why) against e2e.fidelity's min_snr_db / max_lsd_db."""
    problems = []
    if gates.get("min_snr_db") is not None and not metrics["snr_db"] >= gates["min_snr_db"]:
        problems.append(f"SNR {metrics['snr_db']:.1f} dB < {gates['min_snr_db']:g} dB")
    if gates.get("max_lsd_db") is not None and not metrics["lsd_db"] <= gates["max_lsd_db"]:
        problems.append(f"LSD {metrics['lsd_db']:.2f} dB > {gates['max_lsd_db']:g} dB")
    return ("failed", "; ".join(problems)) if problems else ("passed", "")


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """16-bit PCM mono WAV; samples clipped to [-1, 1] (clipping is what a listener would hear)."""
    pcm = (np.clip(np.asarray(audio, np.float64).ravel(), -1.0, 1.0) * 32767).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, audio: np.ndarray, sr: int) -> None:
    with atomic_path(path, suffix=".wav") as tmp:
        tmp.write_bytes(wav_bytes(audio, sr))


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples in [-1, 1] and the rate of a 16-bit PCM mono WAV (what write_wav makes)."""
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32767, w.getframerate()
