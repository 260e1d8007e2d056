"""Stage: the end-to-end voice-conversion chain, audio in -> audio out, per backend assignment.

An assignment gives each component a backend.precision, or a list tried in order (the
first that is validated and can run here is used). The `best` assignment takes the
deployment manifest's choices and runs them from the bundled files, so the chain that is
timed is the one a user would ship.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from . import cli
from .backends import registry as backends
from .backends.runner import Runner
from .config import ComponentSpec, spec_from_json
from .errors import Unavailable
from .host import cpu_name, gpu_name
from .io import now, read_json
from .fidelity import audio_metrics, gate, tensor_error, write_wav
from .models.svc_chain import ROLES, STAGES, chain, mel_filterbank, parse_roles, renamed, synth_tone
from .results import E2E_COLUMNS, runtime_versions, write_results
from .timing import Policy, measure, stats

log = logging.getLogger(__name__)
# artifacts[component][choice] = {"artifact": path, "marker": path or None}
Artifacts = dict[str, dict[str, dict[str, str | None]]]
Roles = dict[str, tuple[str, dict[str, str]]]  # role -> (component, chain name -> input name)


def open_choice(spec: ComponentSpec, choice: str, entry: dict[str, str | None], threads: int) -> tuple[Runner, str]:
    """A runner for 'backend.precision[@device]', or Unavailable with the reason."""
    backend, precision, device = backends.parse_choice(choice)
    b = backends.get(backend)
    b.check_validated(read_json(entry["marker"]) if entry.get("marker") else None)
    here = b.devices(precision, entry["artifact"])
    if device is None:
        device = "cuda" if "cuda" in here else here[0]
    elif device not in here:
        raise Unavailable(f"{backend}.{precision} runs on {', '.join(here)} here, not {device}")
    return b.open(spec, precision, entry["artifact"], threads, device), f"{backend}.{precision}@{device}"


def resolve(specs: dict[str, ComponentSpec], roles: Roles, choices: dict[str, list[str]],
            artifacts: Artifacts, threads: int) -> tuple[dict[str, Runner], dict[str, str]]:
    """Per role, the first choice that can run here; Unavailable lists every reason if one cannot."""
    runners, chosen, missing = {}, {}, []
    for role in ROLES:
        comp, names = roles[role]
        reasons = []
        for choice in choices[comp]:
            try:
                runner, chosen[comp] = open_choice(specs[comp], choice, artifacts[comp][choice], threads)
                runners[role] = renamed(runner, names)
                break
            except Unavailable as e:
                reasons.append(f"{choice}: {e}")
        else:
            missing.append(f"{comp} ({'; '.join(reasons)})")
    if missing:
        raise Unavailable("no runnable backend for " + ", ".join(missing))
    return runners, chosen


def from_manifest(manifest_path: str | Path) -> tuple[dict[str, list[str]], Artifacts]:
    """The `best` assignment: per component the manifest's choice per device (GPU first), bundled files."""
    manifest = read_json(manifest_path)
    bundle = Path(manifest_path).parent
    choices: dict[str, list[str]] = {}
    artifacts: Artifacts = {}
    for comp, per_device in manifest["components"].items():
        for device in sorted(per_device, key=lambda d: d == "cpu"):
            pick = per_device[device]
            choice = f"{pick['choice']}@{device}"
            choices.setdefault(comp, []).append(choice)
            marker = str(bundle / pick["marker"]) if pick.get("marker") else None
            artifacts.setdefault(comp, {})[choice] = {"artifact": str(bundle / pick["file"]), "marker": marker}
    return choices, artifacts


def reference_runners(specs: dict[str, ComponentSpec], roles: Roles, threads: int) -> dict[str, Runner]:
    """PyTorch eager fp32 on the CPU for every stage: what each assignment's audio is compared with."""
    ref = backends.get(backends.REFERENCE)
    return {role: renamed(ref.open(specs[roles[role][0]], "fp32", None, threads, "cpu"), roles[role][1])
            for role in ROLES}


def run_e2e(specs: dict[str, ComponentSpec], e2e_cfg: dict[str, Any], name: str, choices: dict[str, list[str]],
            artifacts: Artifacts, settings: dict[str, Any]
            ) -> tuple[list[dict], dict[tuple[str, str], list[float]], dict[str, Any]]:
    """Rows per audio length, raw samples, and the fidelity record (per length: audio metrics,
    per-stage errors; the first length's output and reference audio for listening)."""
    import torch

    threads = int(settings.get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    sr, hop = int(e2e_cfg.get("sample_rate", 22050)), int(e2e_cfg.get("hop", 256))
    roles = parse_roles(e2e_cfg["roles"])
    runners, chosen = resolve(specs, roles, choices, artifacts, threads)
    reference = runners if set(chosen.values()) == {"pytorch.fp32@cpu"} else reference_runners(specs, roles, threads)
    gates = e2e_cfg.get("fidelity") or {}
    content_spec = specs[roles["content"][0]]
    n_mels = next(i for i in content_spec.inputs if i.name == roles["content"][1]["mel"]).shape[1]
    filters = torch.from_numpy(mel_filterbank(sr, 1024, int(n_mels)))
    rng = np.random.default_rng(0)
    z_channels = next(i for i in specs[roles["flow"][0]].inputs if i.name == roles["flow"][1]["z"]).shape[1]
    speaker = rng.normal(size=(1, int(e2e_cfg.get("speaker_dim", 256)))).astype(np.float32)
    parsed = [backends.parse_choice(c) for c in chosen.values()]
    kinds = {name for name, _, _ in parsed}
    precisions = {p for _, p, _ in parsed}
    gpu = gpu_name()
    devices = sorted({d for _, _, d in parsed})
    series = {"backend": kinds.pop() if len(kinds) == 1 else "mixed",
              "precision": precisions.pop() if len(precisions) == 1 else "mixed",
              "device": "+".join(d if d == "cpu" else f"cuda:{gpu}" for d in devices),
              "chain": ";".join(f"{k}={v}" for k, v in chosen.items())}
    versions_json = runtime_versions()
    warmup, iterations = int(e2e_cfg.get("warmup", 1)), int(e2e_cfg.get("iterations", 3))
    rows, samples, record = [], {}, {"gates": gates, "points": {}}
    for seconds in e2e_cfg.get("seconds", [1, 5, 10]):
        audio, f0, voiced = synth_tone(seconds, sr, hop)
        frames = audio.shape[-1] // hop
        noise = (rng.normal(size=(1, z_channels, frames)) * float(e2e_cfg.get("noise_scale", 0.667))).astype(np.float32)
        out = chain(runners, audio, f0, voiced, sr, hop, filters, speaker, noise)
        if out["audio"].shape[-1] != audio.shape[-1]:
            raise RuntimeError(f"chain returned {out['audio'].shape[-1]} samples for {audio.shape[-1]} in")
        ref = out if reference is runners else chain(reference, audio, f0, voiced, sr, hop, filters, speaker, noise)
        metrics = audio_metrics(ref["audio"], out["audio"], sr)
        verdict, why = gate(metrics, gates)
        point = f"{seconds:g}s"
        record["points"][point] = {**metrics, "fidelity": verdict, "reason": why,
                                   "stages": {st: tensor_error(ref[st], out[st]) for st in STAGES}}
        if "audio" not in record:
            record.update(audio=out["audio"], reference_audio=ref["audio"], audio_point=point)
        untimed = max(warmup - 1, 0)  # the run above, whose audio was just scored, was the first warm-up
        ms, _ = measure(lambda: chain(runners, audio, f0, voiced, sr, hop, filters, speaker, noise), lambda: None,
                        Policy(warmup=untimed, min_iterations=iterations, max_iterations=iterations, max_warmup=untimed))
        s = stats(ms)
        rows.append({"model": content_spec.model, "component": "e2e", "point": point, "assignment": name, "label": name,
                     **series, "audio_seconds": float(seconds), "frames": frames, "warmup": untimed + 1,
                     **s, "rtf": s["p50_ms"] / 1e3 / seconds, **metrics, "fidelity": verdict, "fidelity_reason": why,
                     "cpu": cpu_name(), "gpu": gpu,
                     "versions": versions_json, "created": now()})
        samples[(series["device"], point)] = ms
        log.info("e2e %s %s: p50 %.1f ms, real-time factor %.3f, SNR %.1f dB, LSD %.2f dB (%s)", name, point,
                 s["p50_ms"], rows[-1]["rtf"], metrics["snr_db"], metrics["lsd_db"], verdict)
    return rows, samples, record


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--assignment", required=True)
    p.add_argument("--choices", type=json.loads, help="component -> list of backend.precision, in preference order")
    p.add_argument("--artifacts", type=json.loads, help="component -> choice -> {artifact, marker}")
    p.add_argument("--manifest", help="deployment manifest: run its choices from the bundle (the `best` assignment)")
    p.add_argument("--settings", required=True, type=json.loads, help="threads")
    p.add_argument("--out", required=True)
    p.add_argument("--wav", required=True, help="the chain's output audio for the first audio length")
    p.add_argument("--reference-wav", required=True, help="PyTorch fp32's audio for the same input and noise")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        sr = int(a.e2e.get("sample_rate", 22050))
        choices, artifacts = from_manifest(a.manifest) if a.manifest else (a.choices, a.artifacts)
        meta = {"stage": "e2e", "assignment": a.assignment, "choices": choices, "created": now()}
        try:
            rows, samples, record = run_e2e(specs, a.e2e, a.assignment, choices, artifacts, a.settings)
            out_audio, ref_audio = record.pop("audio"), record.pop("reference_audio")
            meta.update(status="measured", rows=len(rows), fidelity=record)
        except Unavailable as e:
            rows, samples = [], {}
            out_audio = ref_audio = np.zeros(0, np.float32)  # an empty WAV: nothing was heard
            meta.update(status="unavailable", reason=str(e))
            log.warning("e2e %s: not measured: %s", a.assignment, e)
        write_wav(a.wav, out_audio, sr)
        write_wav(a.reference_wav, ref_audio, sr)
        write_results(rows, samples, a.out, meta, E2E_COLUMNS)

    cli.run("e2e", run, p, argv)


if __name__ == "__main__":
    main()
