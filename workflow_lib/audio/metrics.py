"""What a listener gets of an audio output, against its reference: log-spectral distance on mel spectra
(dB), and the perceptual scores PESQ (ITU-T P.862.2 wideband, at 16 kHz) and STOI.

Waveform SNR alone misleads for quantized vocoders: an INT8 HiFi-GAN measured here scored 3.9 dB SNR
against fp32 while its PESQ was 3.8 (small phase shifts cost SNR, not intelligibility), so audio gates
use the perceptual scores. The metric registry (analysis/metrics.py) names these functions; nothing
generic imports this module.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..analysis.fidelity import snr_db
from .dsp import mel_db, resample

PESQ_RATE = 16000
MIN_SECONDS = 0.5  # shorter clips give no STOI and an unstable PESQ


def lsd_db(reference: np.ndarray, signal: np.ndarray, sr: int, floor_db: float = 80.0) -> float:
    """Log-spectral distance on mel spectra: per frame RMS of the dB difference, averaged over frames.

    Both spectra are floored at the reference's peak minus `floor_db`, so silent bands (where
    any noise is infinitely many dB above nothing) do not swamp the distance.
    """
    a, b = mel_db(reference, sr), mel_db(signal, sr)
    floor = a.max() - floor_db
    a, b = np.maximum(a, floor), np.maximum(b, floor)
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=0))))


def perceptual(reference: np.ndarray, signal: np.ndarray, sr: int) -> dict[str, Any]:
    """PESQ (wideband) and STOI of `signal` against `reference`, both resampled to 16 kHz.

    A score that cannot be computed (too short, silent) is None with the reason beside it,
    never a made-up number.
    """
    from pesq import pesq
    from pystoi import stoi

    ref = resample(np.asarray(reference, np.float32).ravel(), sr, PESQ_RATE)
    sig = resample(np.asarray(signal, np.float32).ravel(), sr, PESQ_RATE)
    n = min(ref.size, sig.size)
    if n < MIN_SECONDS * PESQ_RATE:
        why = f"{n / PESQ_RATE:.2f} s of audio; PESQ and STOI need at least {MIN_SECONDS:g} s"
        return {"pesq": None, "pesq_error": why, "stoi": None, "stoi_error": why}
    out: dict[str, Any] = {}
    try:
        out["pesq"] = float(pesq(PESQ_RATE, ref[:n], sig[:n], "wb"))
    except Exception as e:  # the C library raises its own types (NoUtterancesError, ...)
        out.update(pesq=None, pesq_error=f"{type(e).__name__}: {e}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(ref[:n], sig[:n], PESQ_RATE, extended=False))
    if caught:  # pystoi warns and returns 1e-5 when too little speech is left after removing silence
        out.update(stoi=None, stoi_error=str(caught[0].message))
    else:
        out["stoi"] = value
    return out


def signal_scores(reference: np.ndarray, signal: np.ndarray, sr: int, perceptual_scores: bool = True) -> dict[str, Any]:
    """One signal against its reference: SNR, LSD, the largest error, and PESQ and STOI unless told not to
    (they cost most: a search ranks by LSD alone)."""
    out = {
        "snr_db": snr_db(reference, signal),
        "lsd_db": lsd_db(reference, signal, sr),
        "max_abs": float(np.max(np.abs(np.asarray(signal, np.float64) - np.asarray(reference, np.float64)))),
    }
    if perceptual_scores:
        out.update(perceptual(reference, signal, sr))
    return out


def scores(
    references: list[np.ndarray], outputs: list[np.ndarray], rate: int, perceptual_scores: bool = True
) -> dict[str, Any]:
    """The audio kind's metrics (analysis/metrics.py): the first output is the audio; SNR over all outputs."""
    out = signal_scores(references[0].ravel(), outputs[0].ravel(), rate, perceptual_scores)
    if len(references) > 1:
        out["snr_db"] = snr_db(
            np.concatenate([r.ravel() for r in references]), np.concatenate([o.ravel() for o in outputs])
        )
    return out
