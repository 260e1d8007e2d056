"""The voice-conversion chain of the demo model, backend-agnostic: audio in, audio out.

audio -> log-mel (PyTorch, the same for every backend) -> content encoder; f0 -> pitch
encoder; [content, pitch, speaker] -> flow decoder (inverse) -> mel projection -> vocoder.
Each stage is a numpy-in/numpy-out runner, so any mix of backends can run it. The input
is a synthetic sung tone whose f0 contour is known, so no pitch tracker is needed and
every assignment sees identical input.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

ROLES = ("content", "pitch", "flow", "projection", "vocoder")
# The tensor names the chain feeds each role; a model whose inputs are named otherwise maps
# them in e2e.roles (`flow: {component: decoder, inputs: {z: noise, cond: g}}`).
ROLE_INPUTS = {"content": ("mel",), "pitch": ("f0", "voiced"), "flow": ("z", "mask", "cond"),
               "projection": ("latent",), "vocoder": ("mel",)}
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def parse_roles(roles: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """role -> (component, {chain's input name: the component's input name}) from e2e.roles."""
    out = {}
    for role, entry in roles.items():
        component, names = (entry, {}) if isinstance(entry, str) else (entry["component"], entry.get("inputs", {}))
        out[role] = (component, {n: names.get(n, n) for n in ROLE_INPUTS[role]})
    return out


def renamed(runner: Runner, names: dict[str, str]) -> Runner:
    """The runner fed under the chain's names, passing the component's own names on."""
    if all(k == v for k, v in names.items()):
        return runner
    return lambda feeds: runner({names.get(k, k): v for k, v in feeds.items()})


def synth_tone(seconds: float, sr: int, hop: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A harmonic tone at 220 Hz with 5.5 Hz vibrato (+-50 cents): audio [1, N], frame f0 [1, T], voiced [1, T]."""
    n = int(round(seconds * sr)) // hop * hop
    t = np.arange(n) / sr
    f0 = 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    audio = audio + np.random.default_rng(seed).normal(0, 1e-3, n)
    frames = n // hop
    f0_frames = f0[::hop][:frames]
    return (audio[None].astype(np.float32), f0_frames[None].astype(np.float32),
            np.ones((1, frames), dtype=np.float32))


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """HTK-style triangular mel filters [n_mels, n_fft // 2 + 1]."""
    fmax = fmax or sr / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0, np.minimum(lower, upper)).astype(np.float32)


def log_mel(audio, sr: int, hop: int, n_mels: int, filters, n_fft: int = 1024):
    import torch

    x = torch.from_numpy(audio)
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True).abs()
    mel = torch.log(torch.clamp(filters @ spec, min=1e-5))
    return mel[..., : audio.shape[-1] // hop].numpy()


# The chain's tensors after each stage, in order: where error enters and how it grows.
STAGES = ("content", "pitch", "latent", "mel", "audio")


def chain(runners: dict[str, Runner], audio, f0, voiced, sr: int, hop: int, filters, speaker, noise
          ) -> dict[str, np.ndarray]:
    """Every stage's output (STAGES), the converted audio last."""
    mel = log_mel(audio, sr, hop, filters.shape[0], filters)
    content = runners["content"]({"mel": mel})[0]
    pitch = runners["pitch"]({"f0": f0, "voiced": voiced})[0]
    frames = mel.shape[-1]
    cond = np.concatenate([content, pitch, np.repeat(speaker[:, :, None], frames, axis=2)], axis=1)
    mask = np.ones((1, 1, frames), np.float32)
    latent = runners["flow"]({"z": noise[..., :frames], "mask": mask, "cond": cond})[0]
    mel_out = runners["projection"]({"latent": latent})[0]
    return {"content": content, "pitch": pitch, "latent": latent, "mel": mel_out,
            "audio": runners["vocoder"]({"mel": mel_out})[0]}
