"""The demo's voice-conversion chain, as a chain plug-in (workflow_lib/chains/protocol.py).

SVC chain: speech -> HiFi-GAN log-mel -> content encoder; f0 track -> pitch encoder;
[content, pitch, speaker] -> flow decoder (inverse) -> mel projection -> vocoder -> audio.
Copy synthesis (scored, not timed): speech -> HiFi-GAN log-mel -> vocoder -> audio, where the
pretrained vocoder's fidelity is meaningful to a listener (the demo's four seeded components
make the converted audio noise-like, so only its log-spectral distance is gated).
Features (log-mel, f0) are numpy and identical for every assignment; the speaker embedding and
the flow's noise are drawn once from the seed, so every assignment converts the same way.
numpy only: the deployment bundle runs this module without torch. How the chain is judged is in
scoring.py (the config's `chain.scoring`), so a change there reruns no graph, engine or benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ...audio.dsp import MelSettings, f0_track, log_mel
from ...audio.frames import FrameChain
from ...chains.protocol import Feeds, Infer, Item, Outputs, Role, Span
from ...core.spec import InputSpec

MEL_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "the log-mel the chain computes (HiFi-GAN's: Slaney filters, reflect padding)",
    "properties": {
        "sample_rate": {"type": "integer", "minimum": 1, "default": 22050},
        "n_fft": {"type": "integer", "minimum": 16, "default": 1024},
        "hop": {"type": "integer", "minimum": 1, "default": 256},
        "win": {"type": "integer", "minimum": 16, "default": 1024},
        "n_mels": {"type": "integer", "minimum": 1, "default": 80},
        "fmin": {"type": "number", "minimum": 0, "default": 0},
        "fmax": {"type": ["number", "null"], "default": 8000},
    },
}


class SvcChain(FrameChain):
    dataflow = (
        Role("content", feeds=("mel",), reads=("input_mel",), writes="content"),
        Role("pitch", feeds=("f0", "voiced"), reads=("f0", "voiced"), writes="pitch"),
        Role("flow", feeds=("z", "mask", "cond"), reads=("content", "pitch"), writes="latent"),
        Role("projection", feeds=("latent",), reads=("latent",), writes="mel"),
        Role("vocoder", feeds=("mel",), reads=("mel",), writes="audio"),
    )
    # the log-mel reads (n_fft - hop) / 2 samples either side of a frame (2 frames); the f0 track's window
    # reaches 1.2 frames before and 3.7 after (YIN over twice the longest period, 70 Hz)
    feature_context = (2, 4)
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mel": MEL_SCHEMA,
            "speaker_dim": {"type": "integer", "minimum": 1, "default": 256, "description": "speaker embedding size"},
            "noise_scale": {"type": "number", "minimum": 0, "default": 0.667, "description": "std of the flow's noise"},
            "seed": {"type": "integer", "default": 0, "description": "seed of the speaker embedding and the noise"},
        },
    }
    output = "copy"  # what a listener can judge: the pretrained vocoder's resynthesis

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self.mel = MelSettings.from_config(settings.get("mel") or {})
        self.speaker_dim = int(settings.get("speaker_dim", 256))
        self.noise_scale = float(settings.get("noise_scale", 0.667))
        self.seed = int(settings.get("seed", 0))
        self.hop = self.mel.hop

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    def conditioning(self, inputs: Mapping[str, Mapping[str, InputSpec]], items: list[Item]) -> dict[str, np.ndarray]:
        """The speaker embedding and the flow's input noise, long enough for every item. The noise is drawn frame
        by frame, so the first n frames are the same whatever the length: a stream, an offline run and the
        deployed runner convert a file with the same noise."""
        frames = max(i["audio"].size // self.hop for i in items)
        rng = np.random.default_rng(self.seed)
        speaker = rng.normal(size=(1, self.speaker_dim)).astype(np.float32)
        channels = int(inputs["flow"]["z"].shape[1])
        noise = (rng.normal(size=(frames, channels)).T[None] * self.noise_scale).astype(np.float32)
        return {"speaker": speaker, "noise": noise}

    def features(self, item: Item) -> dict[str, np.ndarray]:
        audio = item["audio"]
        f0, voiced = f0_track(audio, self.sample_rate, self.hop)
        return {"input_mel": log_mel(audio, self.mel)[None], "f0": f0[None], "voiced": voiced[None]}

    def feed(self, role: str, tensors: Mapping[str, np.ndarray], extra: Mapping[str, Any], span: Span | None) -> Feeds:
        if role != "flow":
            return super().feed(role, tensors, extra, span)
        start, frames = span
        speaker = np.repeat(extra["speaker"][:, :, None], frames, axis=2)
        return {
            "z": extra["noise"][..., start : start + frames],
            "mask": np.ones((1, 1, frames), np.float32),
            "cond": np.concatenate([tensors["content"], tensors["pitch"], speaker], axis=1),
        }

    def side_outputs(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray]) -> Outputs:
        return {"copy": runners["vocoder"]({"mel": log_mel(item["audio"], self.mel)[None]})[0].reshape(-1)}

    def upstream(self, role: str) -> list[str]:
        """The vocoder is calibrated on real speech's log-mel (copy synthesis): nothing upstream of it runs.
        The demo's seeded upstream feeds it noise in speech's log-mel range, not speech."""
        return [] if role == "vocoder" else super().upstream(role)

    def capture(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], role: str) -> Feeds:
        if role == "vocoder":
            return {"mel": log_mel(item["audio"], self.mel)[None]}
        return super().capture(runners, item, extra, role)


CHAIN = SvcChain
