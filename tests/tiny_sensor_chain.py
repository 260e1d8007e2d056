"""A chain that is not audio at all: a multichannel sensor recording -> encoder -> head -> per-step predictions.

Items are `.npy` arrays [channels, steps] sampled at `rate` Hz; the score is tensor SNR against PyTorch fp32's.
It implements only what the generic stages ask of a chain (read, features, timing input, seconds) and lives
outside workflow_lib like a user's own plug-in: nothing in it, or in the workflow, is audio.
"""

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workflow_lib.analysis import fidelity
from workflow_lib.chains.protocol import Chain, Role, Scorer
from workflow_lib.core.errors import StageError


class SensorChain(Chain):
    dataflow = (
        Role("encoder", feeds=("x",), reads=("signal",), writes="latent"),
        Role("head", feeds=("x",), reads=("latent",), writes="pred"),
    )
    settings_schema: ClassVar = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"rate": {"type": "integer", "default": 100}, "channels": {"type": "integer", "default": 8}},
    }

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self.rate = int(settings.get("rate", 100))
        self.channels = int(settings.get("channels", 8))

    def read(self, path: str):
        try:
            signal = np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            raise StageError(f"{path}: not a .npy recording ({e})") from e
        if signal.ndim != 2 or signal.shape[0] != self.channels:
            raise StageError(f"{path}: expected [{self.channels}, steps], got {list(signal.shape)}")
        return {"signal": signal}

    def synthetic(self):
        return {"signal": np.random.default_rng(0).standard_normal((self.channels, 4 * self.rate)).astype(np.float32)}

    def timing_input(self, items, seconds):
        joined = np.concatenate([i["signal"] for i in items], axis=1)
        steps = int(seconds * self.rate)
        return {"signal": np.resize(joined, (self.channels, steps)).astype(np.float32)}

    def seconds(self, item):
        return item["signal"].shape[1] / self.rate

    def features(self, item):
        return {"signal": item["signal"][None]}


class SensorScorer(Scorer):
    metrics: ClassVar = {"prediction": ("snr_db", "max_rel")}
    captions: ClassVar = {"prediction": "the head's per-step predictions against PyTorch fp32's"}

    def score(self, reference, outputs, item):
        return {"prediction": fidelity.tensor_error(reference["pred"], outputs["pred"])}


def write_recordings(folder: Path, count: int, channels: int = 8, rate: int = 100) -> list[str]:
    """`count` seeded recordings of a few seconds each: slow oscillations plus noise, one per file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        rng = np.random.default_rng(100 + k)
        t = np.arange(int((2 + k % 3) * rate)) / rate
        phases = rng.uniform(0, 2 * np.pi, (channels, 1))
        signal = np.sin(2 * np.pi * rng.uniform(0.5, 3.0, (channels, 1)) * t + phases)
        signal += 0.2 * rng.standard_normal(signal.shape)
        path = folder / f"rec_{k:02d}.npy"
        np.save(path, signal.astype(np.float32))
        paths.append(str(path))
    return paths


CHAIN = SensorChain
SCORER = SensorScorer
