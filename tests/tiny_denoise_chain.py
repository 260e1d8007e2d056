"""A second chain plug-in, of another shape than the demo's: audio -> log-mel -> denoiser -> vocoder -> audio.

Two roles fed in sequence, no conditioning, no side outputs, one score group: it implements only what
it uses (the protocol's defaults cover the rest), and lives outside workflow_lib like a user's own.
"""

from typing import Any, ClassVar

from workflow_lib.analysis.fidelity import lsd_db, snr_db
from workflow_lib.chains.audio import AudioChain
from workflow_lib.core.dsp import MelSettings, log_mel


class DenoiseChain(AudioChain):
    roles = ("denoiser", "vocoder")
    role_inputs: ClassVar = {"denoiser": ("mel",), "vocoder": ("mel",)}
    stages = ("mel", "audio")
    produces: ClassVar = {"denoiser": "mel", "vocoder": "audio"}
    fed_by: ClassVar = {"denoiser": (), "vocoder": ("mel",)}
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

    def forward(self, runners, item, extra, until=None):
        feeds = {"denoiser": {"mel": log_mel(item["audio"], self.mel)[None]}}
        if until == "denoiser":
            return {}, feeds
        mel = runners["denoiser"](feeds["denoiser"])[0]
        feeds["vocoder"] = {"mel": mel}
        if until == "vocoder":
            return {"mel": mel}, feeds
        return {"mel": mel, "audio": runners["vocoder"](feeds["vocoder"])[0].reshape(-1)}, feeds

    def score(self, reference, outputs, item):
        sr = self.sample_rate
        return {
            "output": {
                "snr_db": snr_db(reference["audio"], outputs["audio"]),
                "lsd_db": lsd_db(reference["audio"], outputs["audio"], sr),
            }
        }


CHAIN = DenoiseChain
