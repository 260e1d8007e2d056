"""A base for chains whose input and output are audio: items are `{"audio": samples}` at the chain's rate.

Files in any format libsndfile reads, at any rate and channel count, are resampled (soxr) and
downmixed; the timing input is the files one after another, looped to the asked length.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..core.dsp import read_audio
from .protocol import Chain, Item, Outputs


class AudioChain(Chain):
    """Audio in, audio out; `output` names the stage (or side output) a listener hears."""

    hop: ClassVar[int] = 1  # timing inputs are a whole number of hops
    output: ClassVar[str] = "audio"

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    def read(self, path: str) -> Item:
        return {"audio": read_audio(path, self.sample_rate)}

    def synthetic(self) -> Item:
        return {"audio": synth_tone(4.0, self.sample_rate)}

    def timing_input(self, items: list[Item], seconds: float) -> Item:
        joined = np.concatenate([i["audio"] for i in items])
        n = int(round(seconds * self.sample_rate)) // self.hop * self.hop
        return {"audio": np.resize(joined, n).astype(np.float32)}

    def seconds(self, item: Item) -> float:
        return item["audio"].size / self.sample_rate

    def listen(self, outputs: Outputs) -> tuple[np.ndarray, int] | None:
        return outputs[self.output].reshape(-1), self.sample_rate

    def listen_input(self, item: Item) -> tuple[np.ndarray, int] | None:
        return item["audio"], self.sample_rate


def synth_tone(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A harmonic tone at 220 Hz with 5.5 Hz vibrato (+-50 cents): the input only when no file is configured."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return (audio + np.random.default_rng(seed).normal(0, 1e-3, t.size)).astype(np.float32)
