"""The voice-conversion chain of the demo model, backend-agnostic: audio in, audio out.

SVC chain: speech -> HiFi-GAN log-mel -> content encoder; f0 track -> pitch encoder;
[content, pitch, speaker] -> flow decoder (inverse) -> mel projection -> vocoder -> audio.
Copy-synthesis chain: speech -> HiFi-GAN log-mel -> vocoder -> audio, the chain where the
pretrained vocoder's fidelity is meaningful (it can be compared with the input speech too).
Each stage is a numpy-in / numpy-out runner, so any mix of backends can run it; feature
extraction (log-mel, f0) is numpy and identical for every assignment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...analysis.fidelity import nsr
from ...core.dsp import MelSettings, f0_track, log_mel, read_audio
from ...core.errors import ConfigError
from ...core.files import sha256_file

ROLES = ("content", "pitch", "flow", "projection", "vocoder")
# The tensor names the chain feeds each role; a model whose inputs are named otherwise maps
# them in e2e.roles (`flow: {component: decoder, inputs: {z: noise, cond: g}}`).
ROLE_INPUTS = {
    "content": ("mel",),
    "pitch": ("f0", "voiced"),
    "flow": ("z", "mask", "cond"),
    "projection": ("latent",),
    "vocoder": ("mel",),
}
# The chain's tensors after each stage, in order: where error enters and how it grows.
STAGES = ("content", "pitch", "latent", "mel", "audio")
# Which stage's output each role produces, and the stages its inputs come from (in the SVC chain).
PRODUCES = {"content": "content", "pitch": "pitch", "flow": "latent", "projection": "mel", "vocoder": "audio"}
FED_BY = {"content": (), "pitch": (), "flow": ("content", "pitch"), "projection": ("latent",), "vocoder": ("mel",)}
Infer = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
Roles = dict[str, tuple[str, dict[str, str]]]  # role -> (component, chain's name -> the component's input name)


def parse_roles(roles: dict[str, Any]) -> Roles:
    """role -> (component, {chain's input name: the component's input name}) from e2e.roles."""
    out = {}
    for role, entry in roles.items():
        component, names = (entry, {}) if isinstance(entry, str) else (entry["component"], entry.get("inputs", {}))
        out[role] = (component, {n: names.get(n, n) for n in ROLE_INPUTS[role]})
    return out


def check_roles(model: str, mcfg: dict[str, Any]) -> None:
    """The chain may only name components the model has, fed under names they accept."""
    known = set(mcfg["components"])
    for role, (comp, names) in parse_roles(mcfg["e2e"].get("roles", {})).items():
        if comp not in known:
            raise ConfigError(f"models.{model}.e2e.roles.{role}: no component '{comp}' (components: {sorted(known)})")
        inputs = {i["name"] for i in mcfg["components"][comp]["inputs"]}
        for chain_name, name in names.items():
            if name not in inputs:
                raise ConfigError(
                    f"models.{model}.e2e.roles.{role}: the chain feeds '{chain_name}' as '{name}', but "
                    f"{comp} has inputs {sorted(inputs)}; map it with inputs: {{{chain_name}: <name>}}"
                )


def renamed(runner: Infer, names: dict[str, str]) -> Infer:
    """The runner fed under the chain's names, passing the component's own names on."""
    if all(k == v for k, v in names.items()):
        return runner
    return lambda feeds: runner({names.get(k, k): v for k, v in feeds.items()})


@dataclass(frozen=True)
class Settings:
    """e2e config: analysis, the speaker embedding and flow noise every assignment shares."""

    mel: MelSettings
    speaker_dim: int = 256
    noise_scale: float = 0.667
    seed: int = 0

    @classmethod
    def from_config(cls, e2e: dict[str, Any]) -> Settings:
        return cls(
            MelSettings.from_config(e2e.get("mel", {})),
            int(e2e.get("speaker_dim", 256)),
            float(e2e.get("noise_scale", 0.667)),
            int(e2e.get("seed", 0)),
        )

    @property
    def sr(self) -> int:
        return self.mel.sample_rate


def conditioning(settings: Settings, frames: int, z_channels: int) -> dict[str, np.ndarray]:
    """The speaker embedding and the flow's input noise: fixed by the seed, shared by every assignment."""
    rng = np.random.default_rng(settings.seed)
    speaker = rng.normal(size=(1, settings.speaker_dim)).astype(np.float32)
    noise = (rng.normal(size=(1, z_channels, frames)) * settings.noise_scale).astype(np.float32)
    return {"speaker": speaker, "noise": noise}


def svc(
    runners: dict[str, Infer],
    audio: np.ndarray,
    extra: dict[str, np.ndarray],
    settings: Settings,
    until: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Every stage's output (STAGES, the converted audio last) for one utterance, and what each role
    was fed (under the chain's names). With `until`, stop once that role's inputs are known: only
    the roles before it need runners (a calibration set needs no more)."""
    mel = log_mel(audio, settings.mel)[None]
    f0, voiced = f0_track(audio, settings.sr, settings.mel.hop)
    frames = mel.shape[-1]
    feeds: dict[str, dict[str, np.ndarray]] = {
        "content": {"mel": mel},
        "pitch": {"f0": f0[None], "voiced": voiced[None]},
    }
    out: dict[str, np.ndarray] = {}
    needed = upstream(until) if until else ROLES
    for role in ROLES:
        if role == "flow":
            speaker = np.repeat(extra["speaker"][:, :, None], frames, axis=2)
            feeds["flow"] = {
                "z": extra["noise"][..., :frames],
                "mask": np.ones((1, 1, frames), np.float32),
                "cond": np.concatenate([out["content"], out["pitch"], speaker], axis=1),
            }
        elif role in ("projection", "vocoder"):
            feeds[role] = {"latent" if role == "projection" else "mel": out[FED_BY[role][0]]}
        if role == until:
            break
        if role in needed:
            out[PRODUCES[role]] = runners[role](feeds[role])[0]
    return out, feeds


def upstream(role: str) -> list[str]:
    """The roles whose outputs feed `role` in the SVC chain, directly or not (what its calibration runs)."""
    found: list[str] = []
    for stage in FED_BY[role]:
        producer = next(r for r, s in PRODUCES.items() if s == stage)
        found += [r for r in [*upstream(producer), producer] if r not in found]
    return found


def calibration_upstream(role: str) -> list[str]:
    """The roles that must run to calibrate `role`: its SVC-chain upstream, but nothing for the vocoder,
    which is calibrated on real speech's log-mel (copy synthesis)."""
    return [] if role == "vocoder" else upstream(role)


def z_channels(specs: dict[str, Any], roles: Roles) -> int:
    """Channels of the flow's noise input `z`, which the chain draws itself."""
    comp, names = roles["flow"]
    return int(next(i for i in specs[comp].inputs if i.name == names["z"]).shape[1])


def speech_inputs(files: list[str], settings: Settings) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """The configured speech at the chain's rate, and what each file was; the tone when none is configured."""
    import logging

    if not files:
        logging.getLogger(__name__).warning(
            "e2e.inputs is empty: using a synthetic 220 Hz tone (fidelity numbers on it say little)"
        )
        return [synth_tone(4.0, settings.sr)], [{"file": None, "synthetic": "220 Hz tone with vibrato, 4 s"}]
    import soundfile

    speech, about = [], []
    for f in files:
        speech.append(read_audio(f, settings.sr))
        info = soundfile.info(f)
        about.append(
            {
                "file": str(f),
                "sha256": sha256_file(f),
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "seconds": round(info.duration, 3),
            }
        )
    return speech, about


def copy_synthesis(vocoder: Infer, audio: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The vocoder's resynthesis of real speech from its own log-mel, and that log-mel."""
    mel = log_mel(audio, settings.mel)[None]
    return vocoder({"mel": mel})[0].reshape(-1), mel


def looped(speech: list[np.ndarray], seconds: float, settings: Settings) -> np.ndarray:
    """`seconds` of the input speech (the files one after another, repeated as needed), a whole number of hops."""
    joined = np.concatenate(speech)
    n = int(round(seconds * settings.sr)) // settings.mel.hop * settings.mel.hop
    return np.resize(joined, n).astype(np.float32)


def added_noise(stages: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per role, the error it adds: its output's noise-to-signal ratio minus the worst of its inputs'.

    Noise-to-signal ratios add (roughly) along a chain, so the role whose output is much noisier
    than what it was fed is the one to back off first.
    """
    n = {s: nsr(m["snr_db"]) for s, m in stages.items()}
    return {role: max(0.0, n[PRODUCES[role]] - max((n[s] for s in FED_BY[role]), default=0.0)) for role in ROLES}


def synth_tone(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A harmonic tone at 220 Hz with 5.5 Hz vibrato (+-50 cents): the input only when no file is configured."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return (audio + np.random.default_rng(seed).normal(0, 1e-3, t.size)).astype(np.float32)
