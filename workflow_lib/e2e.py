"""Stage: the end-to-end voice-conversion chain, audio in -> audio out, per backend assignment.

audio -> log-mel (PyTorch, same for every assignment) -> content encoder; f0 -> pitch
encoder; [content, pitch, speaker] -> flow decoder (inverse) -> mel projection -> vocoder.
The input is a synthetic sung tone whose f0 contour is known, so no pitch tracker is
needed and every assignment sees identical input. Assignments mix backends per component
(a list is a preference order: the first that can run here is used).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any, Callable

import numpy as np

from . import cli, parity, trt
from .bench import STAT_COLUMNS, Unavailable, measure, runtime_versions, stats, write_results
from .components import exportable
from .host import cpu_name
from .config import ComponentSpec, spec_from_json
from .io import now, read_json, sidecar_path

log = logging.getLogger(__name__)
ROLES = ("content", "pitch", "flow", "projection", "vocoder")
COLUMNS = ["model", "component", "backend", "precision", "device", "label", "point", "assignment", "chain", "audio_seconds",
           "frames", *STAT_COLUMNS, "rtf", "cpu", "gpu", "versions", "created"]
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


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


def make_runner(spec: ComponentSpec, choice: str, artifacts: dict[str, str]) -> tuple[Runner, str]:
    """A numpy-in/numpy-out runner for 'backend.precision', or Unavailable with the reason."""
    backend, _, precision = choice.partition(".")
    precision = precision or "fp32"
    if backend == "pytorch":
        import torch

        cuda = torch.cuda.is_available()
        if precision == "fp16" and not cuda:
            raise Unavailable("PyTorch fp16 runs on CUDA only; no CUDA device here")
        device, dtype = ("cuda" if cuda else "cpu"), (torch.float16 if precision == "fp16" else torch.float32)
        module = exportable(spec).to(device=device, dtype=dtype)

        def run(feeds):
            with torch.inference_mode():
                out = module(*(torch.from_numpy(feeds[i.name]).to(device=device, dtype=dtype) for i in spec.inputs))
            return [o.float().cpu().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]
        return run, f"pytorch.{precision}@{device}"
    if backend == "onnxruntime":
        sess = parity.ort_session(artifacts[f"onnx_{precision}"])
        return (lambda feeds: [np.asarray(o, np.float32) for o in sess.run(None, feeds)]), f"onnxruntime.{precision}@cpu"
    if backend == "tensorrt":
        marker = read_json(artifacts[f"marker_tensorrt_{precision}"])
        if marker["status"] != "passed":
            raise Unavailable(f"tensorrt.{precision} {marker['status']}: {marker.get('reason', '')}")
        engine = artifacts[f"engine_{precision}"]
        fl = trt.load(read_json(sidecar_path(engine))["flavour"])
        with open(engine, "rb") as f:
            return trt.EngineRunner(fl, f.read()), f"tensorrt.{precision}@cuda"
    raise ValueError(f"unknown backend in '{choice}'")


def resolve(specs: dict[str, ComponentSpec], roles: dict[str, str], assignment: dict[str, Any],
            artifacts: dict[str, dict[str, str]]) -> tuple[dict[str, Runner], dict[str, str]]:
    """Per role, the first choice that can run here; Unavailable lists every reason if one cannot."""
    runners, chosen, missing = {}, {}, []
    for role in ROLES:
        comp = roles[role]
        prefs = assignment.get(comp, assignment.get("default", "pytorch.fp32"))
        reasons = []
        for choice in [prefs] if isinstance(prefs, str) else prefs:
            try:
                runners[role], chosen[comp] = make_runner(specs[comp], choice, artifacts[comp])
                break
            except Unavailable as e:
                reasons.append(f"{choice}: {e}")
        else:
            missing.append(f"{comp} ({'; '.join(reasons)})")
    if missing:
        raise Unavailable("no runnable backend for " + ", ".join(missing))
    return runners, chosen


def chain(runners: dict[str, Runner], audio, f0, voiced, sr: int, hop: int, filters, speaker, noise) -> np.ndarray:
    mel = log_mel(audio, sr, hop, filters.shape[0], filters)
    content = runners["content"]({"mel": mel})[0]
    pitch = runners["pitch"]({"f0": f0, "voiced": voiced})[0]
    frames = mel.shape[-1]
    cond = np.concatenate([content, pitch, np.repeat(speaker[:, :, None], frames, axis=2)], axis=1)
    mask = np.ones((1, 1, frames), np.float32)
    latent = runners["flow"]({"z": noise[..., :frames], "mask": mask, "cond": cond})[0]
    mel_out = runners["projection"]({"latent": latent})[0]
    return runners["vocoder"]({"mel": mel_out})[0]


def run_e2e(specs: dict[str, ComponentSpec], e2e_cfg: dict[str, Any], name: str, artifacts: dict[str, dict[str, str]],
            settings: dict[str, Any]) -> tuple[list[dict], dict[str, list[float]]]:
    import torch

    threads = int(settings.get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    sr, hop = int(e2e_cfg.get("sample_rate", 22050)), int(e2e_cfg.get("hop", 256))
    roles = e2e_cfg["roles"]
    runners, chosen = resolve(specs, roles, e2e_cfg["assignments"][name], artifacts)
    content_spec = specs[roles["content"]]
    n_mels = next(i for i in content_spec.inputs if i.name == "mel").shape[1]
    filters = torch.from_numpy(mel_filterbank(sr, 1024, int(n_mels)))
    rng = np.random.default_rng(0)
    flow_in = {i.name: i for i in specs[roles["flow"]].inputs}
    speaker = rng.normal(size=(1, int(e2e_cfg.get("speaker_dim", 256)))).astype(np.float32)
    backends = {c.split(".")[0] for c in chosen.values()}
    precisions = {c.split(".")[1].split("@")[0] for c in chosen.values()}
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    devices = sorted({c.split("@")[1] for c in chosen.values()})
    series = {"backend": backends.pop() if len(backends) == 1 else "mixed",
              "precision": precisions.pop() if len(precisions) == 1 else "mixed",
              "device": "+".join(d if d == "cpu" else f"cuda:{gpu}" for d in devices),
              "chain": ";".join(f"{k}={v}" for k, v in chosen.items())}
    versions_json = runtime_versions()
    rows, samples = [], {}
    for seconds in e2e_cfg.get("seconds", [1, 5, 10]):
        audio, f0, voiced = synth_tone(seconds, sr, hop)
        frames = audio.shape[-1] // hop
        noise = (rng.normal(size=(1, flow_in["z"].shape[1], frames)) * float(e2e_cfg.get("noise_scale", 0.667))).astype(np.float32)
        out = chain(runners, audio, f0, voiced, sr, hop, filters, speaker, noise)
        if out.shape[-1] != audio.shape[-1]:
            raise RuntimeError(f"chain returned {out.shape[-1]} samples for {audio.shape[-1]} in")
        ms = measure(lambda: chain(runners, audio, f0, voiced, sr, hop, filters, speaker, noise), lambda: None,
                     int(e2e_cfg.get("warmup", 1)), int(e2e_cfg.get("iterations", 3)), 0.0, int(e2e_cfg.get("iterations", 3)))
        s = stats(ms)
        point = f"{seconds:g}s"
        rows.append({"model": content_spec.model, "component": "e2e", "point": point, "assignment": name, "label": name,
                     **series, "audio_seconds": float(seconds), "frames": frames, "warmup": int(e2e_cfg.get("warmup", 1)),
                     **s, "rtf": s["p50_ms"] / 1e3 / seconds, "cpu": cpu_name(), "gpu": gpu,
                     "versions": versions_json, "created": now()})
        samples[(series["device"], point)] = ms
        log.info("e2e %s %s: p50 %.1f ms, real-time factor %.3f", name, point, s["p50_ms"], rows[-1]["rtf"])
    return rows, samples


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's e2e config as JSON")
    p.add_argument("--assignment", required=True)
    p.add_argument("--artifacts", required=True, type=json.loads)
    p.add_argument("--settings", required=True, type=json.loads)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", required=True)

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        meta = {"stage": "e2e", "assignment": a.assignment, "config": a.e2e["assignments"][a.assignment],
                "created": now()}
        try:
            rows, samples = run_e2e(specs, a.e2e, a.assignment, a.artifacts, a.settings)
            meta.update(status="measured", rows=len(rows))
        except Unavailable as e:
            rows, samples = [], {}
            meta.update(status="unavailable", reason=str(e))
            log.warning("e2e %s: not measured: %s", a.assignment, e)
        write_results(rows, samples, a.out, a.samples, meta, COLUMNS)

    cli.run("e2e", run, p, argv)


if __name__ == "__main__":
    main()
