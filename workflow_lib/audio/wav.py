"""16-bit PCM mono WAV, what an audio chain lets a listener hear: encoded to bytes (the media the generic
stages write without knowing it is audio), written atomically, read back."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from ..core.files import atomic_path


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


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    """Samples in [-1, 1] and the rate of 16-bit PCM mono WAV bytes (what wav_bytes makes)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32767, w.getframerate()
