"""A second chain plug-in, of another shape than the demo's: audio -> log-mel -> denoiser -> vocoder -> audio.

Two roles fed in sequence, no conditioning, no side outputs, one score group: it implements only what
it uses (the frame-chain base runs it, offline and live), and lives outside workflow_lib like a user's own.
"""

from typing import Any, ClassVar

from workflow_lib.analysis.fidelity import lsd_db, snr_db
from workflow_lib.chains.frames import FrameChain
from workflow_lib.core.dsp import MelSettings, log_mel


class DenoiseChain(FrameChain):
    roles = ("denoiser", "vocoder")
    role_inputs: ClassVar = {"denoiser": ("mel",), "vocoder": ("mel",)}
    stages = ("mel", "audio")
    produces: ClassVar = {"denoiser": "mel", "vocoder": "audio"}
    fed_by: ClassVar = {"denoiser": (), "vocoder": ("mel",)}
    stream_inputs: ClassVar = {"denoiser": ("input_mel",), "vocoder": ("mel",)}
    feature_context = (2, 2)  # the log-mel's reflect padding: (n_fft - hop) / 2 samples either side
    settings_schema: ClassVar = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "sample_rate": {"type": "integer", "default": 22050},
            "hop": {"type": "integer", "default": 256},
        },
    }
    metrics: ClassVar = {"output": ("snr_db", "lsd_db")}
    captions: ClassVar = {"output": "the denoised, resynthesised audio against PyTorch fp32's"}

    def __init__(self, settings: dict[str, Any]):
        super().__init__(settings)
        self.mel = MelSettings(sample_rate=int(settings.get("sample_rate", 22050)), hop=int(settings.get("hop", 256)))
        self.hop = self.mel.hop

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    def features(self, audio):
        return {"input_mel": log_mel(audio, self.mel)[None]}

    def score(self, reference, outputs, item):
        sr = self.sample_rate
        return {
            "output": {
                "snr_db": snr_db(reference["audio"], outputs["audio"]),
                "lsd_db": lsd_db(reference["audio"], outputs["audio"], sr),
            }
        }


CHAIN = DenoiseChain
