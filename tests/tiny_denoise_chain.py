"""A second audio chain plug-in, of another shape than the demo's: audio -> log-mel -> denoiser -> vocoder -> audio.

Two roles fed in sequence, no conditioning, no side outputs, one score group: it implements only what
it uses (the frame-chain base runs it, offline and live), and lives outside workflow_lib like a user's own.
Its scoring is in the same module (`chain.scoring` left out): the simplest plug-in.
"""

from typing import Any, ClassVar

from workflow_lib.audio.dsp import MelSettings, log_mel
from workflow_lib.audio.frames import FrameChain
from workflow_lib.audio.metrics import signal_scores
from workflow_lib.audio.scoring import AudioScorer
from workflow_lib.chains.protocol import Role


class DenoiseChain(FrameChain):
    dataflow = (
        Role("denoiser", feeds=("mel",), reads=("input_mel",), writes="mel"),
        Role("vocoder", feeds=("mel",), reads=("mel",), writes="audio"),
    )
    feature_context = (2, 2)  # the log-mel's reflect padding: (n_fft - hop) / 2 samples either side
    settings_schema: ClassVar = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "sample_rate": {"type": "integer", "default": 22050},
            "hop": {"type": "integer", "default": 256},
        },
    }

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self.mel = MelSettings(sample_rate=int(settings.get("sample_rate", 22050)), hop=int(settings.get("hop", 256)))
        self.hop = self.mel.hop

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    def features(self, item):
        return {"input_mel": log_mel(item["audio"], self.mel)[None]}


class DenoiseScorer(AudioScorer):
    metrics: ClassVar = {"output": ("snr_db", "lsd_db")}
    captions: ClassVar = {"output": "the denoised, resynthesised audio against PyTorch fp32's"}

    def score(self, reference, outputs, item):
        values = signal_scores(reference["audio"], outputs["audio"], self.chain.sample_rate, perceptual_scores=False)
        return {"output": {k: values[k] for k in ("snr_db", "lsd_db")}}


CHAIN = DenoiseChain
SCORER = DenoiseScorer
