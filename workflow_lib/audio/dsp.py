"""Audio signal processing for audio chains and their metrics: reading audio files, resampling, mel
filters, log-mel spectra and an f0 track. numpy (and soxr,
soundfile) only, so every backend is fed and judged by exactly the same numbers.

The log-mel is HiFi-GAN's own (Slaney mel filters as librosa makes them, reflect padding of
(n_fft - hop) / 2, magnitude spectrum, natural log clamped at 1e-5): a pretrained vocoder is
only meaningful when fed the features it was trained on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import StageError


@dataclass(frozen=True)
class MelSettings:
    """HiFi-GAN V1's analysis: 22050 Hz, hop 256, 1024-point FFT and window, 80 mels up to 8 kHz."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    win: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0

    @classmethod
    def from_config(cls, cfg: dict) -> MelSettings:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=8)
def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters [n_mels, n_fft // 2 + 1], as librosa.filters.mel makes them.

    Made once per setting (read-only): the timed chain computes its log-mel on every run."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_freqs)
    weights = np.maximum(0, np.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]))
    filters = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    filters.flags.writeable = False
    return filters


def _frames(x: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """Magnitude STFT [frames, n_fft // 2 + 1] of a signal already padded, Hann window (periodic)."""
    count = 1 + max(0, (x.size - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = np.hanning(win + 1)[:-1]
    return np.abs(np.fft.rfft(x[idx] * window[None, :], axis=1))


def log_mel(audio: np.ndarray, s: MelSettings = MelSettings()) -> np.ndarray:
    """HiFi-GAN's log-mel [n_mels, len(audio) // hop] of a mono signal."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    pad = (s.n_fft - s.hop) // 2
    if x.size <= pad:
        raise ValueError(f"{x.size} samples are too short for a {s.n_fft}-point analysis")
    spec = _frames(np.pad(x, pad, mode="reflect"), s.n_fft, s.hop, s.win)
    spec = np.sqrt(spec**2 + 1e-9)
    mel = mel_filters(s.sample_rate, s.n_fft, s.n_mels, s.fmin, s.fmax).astype(np.float64) @ spec.T
    return np.log(np.maximum(mel, 1e-5))[:, : x.size // s.hop].astype(np.float32)


def mel_db(audio: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80) -> np.ndarray:
    """Mel power spectrogram in dB [n_mels, frames]: what the log-spectral distance and the report's
    spectrograms compare (the whole band, 0 to sr / 2)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    x = np.pad(x, n_fft // 2, mode="reflect") if x.size > n_fft // 2 else np.pad(x, (n_fft // 2, n_fft // 2))
    spec = _frames(x, n_fft, hop, n_fft) ** 2
    return 10 * np.log10(mel_filters(sr, n_fft, n_mels).astype(np.float64) @ spec.T + 1e-10)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op at the same rate."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def read_audio(path: str | Path, sr: int) -> np.ndarray:
    """A mono float32 signal at `sr` from any file libsndfile reads (WAV, FLAC, OGG, ...), any rate and
    channel count (channels averaged); every failure names the file."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise StageError(f"audio input {path}: no such file")
    if path.stat().st_size == 0:
        raise StageError(f"audio input {path}: the file is empty")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise StageError(f"audio input {path}: not an audio file libsndfile can read ({e})") from None
    if data.shape[0] == 0:
        raise StageError(f"audio input {path}: holds no samples")
    out = resample(data.mean(axis=1), int(rate), sr)
    if not np.isfinite(out).all() or out.size < sr // 10:
        raise StageError(
            f"audio input {path}: {out.size} samples at {sr} Hz after resampling from {rate} Hz "
            f"(need at least 0.1 s of finite samples)"
        )
    return out


def f0_track(
    audio: np.ndarray, sr: int, hop: int, fmin: float = 70.0, fmax: float = 800.0, threshold: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """Frame f0 in Hz and a voiced mask, one value per hop (YIN's cumulative mean normalised difference).

    Unvoiced frames get f0 = fmin and voiced = 0. Enough to drive a pitch encoder with real
    speech; not a reference pitch tracker.
    """
    x = np.asarray(audio, dtype=np.float64).ravel()
    frames = x.size // hop
    lag_min, lag_max = int(sr / fmax), int(sr / fmin)
    width = 2 * lag_max
    padded = np.pad(x, (width // 2, width + hop))
    f0 = np.full(frames, fmin, dtype=np.float32)
    voiced = np.zeros(frames, dtype=np.float32)
    for t in range(frames):
        seg = padded[t * hop : t * hop + 2 * width]
        if np.sqrt(np.mean(seg[:width] ** 2)) < 1e-3:
            continue  # silence
        a, lags = seg[:width], np.arange(1, lag_max + 1)
        energy = np.cumsum(np.concatenate([[0.0], seg**2]))
        shifted = energy[lags + width] - energy[lags]  # sum of squares of each lagged window
        diff = np.sum(a**2) + shifted - 2 * np.correlate(seg, a, "valid")[lags]
        cmnd = diff * lags / np.maximum(np.cumsum(diff), 1e-12)
        below = np.nonzero(cmnd[lag_min - 1 :] < threshold)[0]
        if below.size:
            i = below[0] + lag_min - 1
            while i + 1 < cmnd.size and cmnd[i + 1] < cmnd[i]:
                i += 1
            f0[t], voiced[t] = sr / lags[i], 1.0
    return f0, voiced
