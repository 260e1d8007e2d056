"""How the demo's voice-conversion chain is judged (its `chain.scoring` module; the forward pass is chain.py).

Two score groups, per file: `chain`, the converted audio against PyTorch fp32's conversion of the same
file (same noise and speaker); `copy_synthesis`, the file resynthesised by the assignment's vocoder from
its own log-mel against PyTorch fp32's resynthesis, and against the file itself (`speech_*`). The
seeded upstream makes the converted audio noise-like, so only its log-spectral distance is worth gating;
the pretrained vocoder's copy synthesis is what a listener can judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...analysis.fidelity import tensor_error
from ...audio.dsp import log_mel
from ...audio.metrics import perceptual, signal_scores
from ...audio.scoring import AudioScorer
from ...chains.protocol import Item, Outputs


class SvcScorer(AudioScorer):
    metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "chain": ("snr_db", "lsd_db", "pesq", "stoi", "max_abs"),
        "copy_synthesis": ("snr_db", "lsd_db", "pesq", "stoi", "speech_pesq", "speech_stoi"),
    }
    captions: ClassVar[Mapping[str, str]] = {
        "chain": "the converted audio against PyTorch fp32's conversion of the same file (same noise and speaker)",
        "copy_synthesis": "the file resynthesised by the assignment's vocoder from its own log-mel, against PyTorch "
        "fp32's resynthesis (speech_*: against the file itself)",
        "listen": "copy synthesis: each file resynthesised by the assignment's vocoder",
        "stages": "SNR of each stage against PyTorch fp32 (the audio on its log-mel, where phase does not count)",
    }

    def score(self, reference: Outputs, outputs: Outputs, item: Item) -> dict[str, dict[str, Any]]:
        sr, speech = self.chain.sample_rate, item["audio"]
        copy = signal_scores(reference["copy"], outputs["copy"], sr)
        n = min(outputs["copy"].size, speech.size)
        copy.update({f"speech_{k}": v for k, v in perceptual(speech[:n], outputs["copy"][:n], sr).items()})
        return {
            "chain": signal_scores(reference["audio"].ravel(), outputs["audio"].ravel(), sr),
            "copy_synthesis": copy,
        }

    def stage_errors(self, reference: Outputs, outputs: Outputs) -> dict[str, dict[str, float]]:
        """The audio on its log-mel, the vocoder's input domain: a quantized vocoder shifts phase (costing
        waveform SNR) without changing what it says, and the stages must be comparable, since the search
        moves the role that adds the most."""
        mel = self.chain.mel
        errors = {s: tensor_error(reference[s], outputs[s]) for s in self.chain.stages if s != "audio"}
        errors["audio"] = tensor_error(log_mel(reference["audio"].ravel(), mel), log_mel(outputs["audio"].ravel(), mel))
        return errors

    def culprit(self, failed: set[str], stages: Mapping[str, Mapping[str, float]], movable: set[str]) -> str | None:
        """The vocoder when its resynthesis of real speech fails; else the role adding the most noise."""
        if "copy_synthesis" in failed and "vocoder" in movable:
            return "vocoder"
        return super().culprit(failed, stages, movable)


SCORER = SvcScorer
