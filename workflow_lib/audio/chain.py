"""A base for chains whose input and output are audio: items are `{"audio": samples}` at the chain's rate.

Files in any format libsndfile reads, at any rate and channel count, are resampled (soxr) and
downmixed; the timing input is the files one after another, looped to the asked length. What a
listener hears (`output`: a stage or side output) is a 16-bit WAV; the report draws its mel spectrogram.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..chains.protocol import Chain, Item, Outputs
from ..core.errors import StageError
from .dsp import mel_db, read_audio
from .wav import wav_bytes, wav_samples, write_wav

MIN_SECONDS = 0.25  # shorter input gives too few frames for a chain's context


class AudioChain(Chain):
    """Audio in, audio out; `output` names the stage (or side output) a listener hears."""

    hop: ClassVar[int] = 1  # timing inputs are a whole number of hops
    output: ClassVar[str] = "audio"
    media_suffix: ClassVar[str] = ".wav"
    requirements: ClassVar[tuple[str, ...]] = ("soundfile", "soxr")  # reading any audio file, at any rate

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    def read(self, path: str) -> Item:
        return {"audio": read_audio(path, self.sample_rate)}

    def read_input(self, path: str) -> tuple[Item, list[str]]:
        """An audio file: missing, empty or unreadable is an error naming the file (`read_audio`), and so are
        silent or too short; other channel counts and rates are converted, and the conversion is stated."""
        import soundfile

        item = self.read(path)
        info = soundfile.info(path)
        notes = []
        if info.channels > 1:
            notes.append(f"{info.channels} channels averaged to mono")
        if info.samplerate != self.sample_rate:
            notes.append(f"resampled from {info.samplerate} Hz to {self.sample_rate} Hz")
            if info.samplerate < self.sample_rate / 2:
                notes.append(f"(band-limited: nothing above {info.samplerate // 2} Hz in the input)")
        audio = item["audio"]
        if audio.size < MIN_SECONDS * self.sample_rate:
            raise StageError(f"{path}: {audio.size / self.sample_rate:.2f} s; at least {MIN_SECONDS:g} s are needed")
        if float(np.max(np.abs(audio))) < 1e-4:
            raise StageError(f"{path}: the file is silent (peak below -80 dBFS): nothing to convert")
        return item, notes

    def synthetic(self) -> Item:
        return {"audio": synth_tone(4.0, self.sample_rate)}

    def timing_input(self, items: list[Item], seconds: float) -> Item:
        joined = np.concatenate([i["audio"] for i in items])
        n = int(round(seconds * self.sample_rate)) // self.hop * self.hop
        return {"audio": np.resize(joined, n).astype(np.float32)}

    def seconds(self, item: Item) -> float:
        return item["audio"].size / self.sample_rate

    def write(self, path: str, outputs: Outputs) -> None:
        """The converted audio: a 16-bit WAV, or float32 samples for a path ending in .npy."""
        audio = np.asarray(outputs[self.stages[-1]], np.float32).reshape(-1)
        if str(path).endswith(".npy"):
            super().write(path, {self.stages[-1]: audio})
        else:
            write_wav(path, audio, self.sample_rate)

    def listen(self, outputs: Outputs) -> bytes | None:
        return wav_bytes(outputs[self.output].reshape(-1), self.sample_rate)

    def listen_input(self, item: Item) -> bytes | None:
        return wav_bytes(item["audio"], self.sample_rate)

    def picture(self, media: bytes) -> np.ndarray | None:
        samples, rate = wav_samples(media)
        return mel_db(samples, rate) if samples.size else None


def synth_tone(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A harmonic tone at 220 Hz with 5.5 Hz vibrato (+-50 cents): the input only when no file is configured."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return (audio + np.random.default_rng(seed).normal(0, 1e-3, t.size)).astype(np.float32)
