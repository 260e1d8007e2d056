"""How far a tensor is from its reference: SNR (dB), the noise-to-signal ratio (which adds along a chain),
and the max error relative to the reference's peak. What a listener gets of an audio output is judged by
the audio package's metrics (workflow_lib/audio/metrics.py), named in the metric registry (metrics.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-12


def snr_db(reference: np.ndarray, signal: np.ndarray) -> float:
    """10 log10(|ref|^2 / |signal - ref|^2); +inf when identical."""
    ref, sig = np.asarray(reference, np.float64).ravel(), np.asarray(signal, np.float64).ravel()
    noise = float(np.sum((sig - ref) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(max(float(np.sum(ref**2)), EPS) / noise))


def nsr(snr: float) -> float:
    """Noise-to-signal power ratio from an SNR in dB: 0 when identical; unlike dB, these add along a chain."""
    return 10 ** (-snr / 10)


def tensor_error(reference: np.ndarray, signal: np.ndarray) -> dict[str, float]:
    """For intermediate tensors: SNR and max abs relative to the reference's largest magnitude."""
    scale = float(np.max(np.abs(reference))) or 1.0
    return {
        "snr_db": snr_db(reference, signal),
        "max_rel": float(np.max(np.abs(np.asarray(signal, np.float64) - reference))) / scale,
    }


def scores(
    references: list[np.ndarray], outputs: list[np.ndarray], rate: int = 0, perceptual: bool = True
) -> dict[str, Any]:
    """The tensor kind's metrics (analysis/metrics.py) over all outputs together: SNR, and the largest
    errors, absolute and relative to the reference's peak."""
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for r in references])
    got = np.concatenate([np.asarray(g, np.float64).ravel() for g in outputs])
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return {"snr_db": snr_db(ref, got), "max_abs": diff, "max_rel": diff / scale if scale else diff}
