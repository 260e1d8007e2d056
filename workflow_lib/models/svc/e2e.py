"""Stage: the end-to-end voice-conversion chain, audio in -> audio out, per backend assignment.

An assignment gives each component a backend.variant, or a list tried in order (the first
that is validated and can run here is used). The `best` assignment takes the deployment
manifest's choices (the chain search's winner) and runs them from the bundled files, so the
chain that is timed is the one a user would ship. Each audio length is timed with the same
adaptive policy as the components, and scored against PyTorch fp32's reference run: the SVC
chain's audio and stages, and real speech resynthesised by the assignment's vocoder.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from ...analysis.results import E2E_COLUMNS, runtime_versions, write_results
from ...core import cli
from ...core.dsp import write_wav
from ...core.errors import Unavailable
from ...core.files import now, read_json
from ...core.host import cpu_name, gpu_name
from ...core.spec import spec_from_json
from ...core.timing import Policy, stats
from ...runtimes import registry as backends
from .chain import STAGES, Settings, parse_roles
from .scoring import Artifacts, Reference, resolve, score_chain, score_copy, time_chain, verdict

log = logging.getLogger(__name__)


def from_manifest(manifest_path: str | Path) -> tuple[dict[str, list[str]], Artifacts]:
    """The `best` assignment: per component the manifest's choice per device (GPU first), bundled files."""
    manifest = read_json(manifest_path)
    bundle = Path(manifest_path).parent
    choices: dict[str, list[str]] = {}
    artifacts: Artifacts = {}
    for comp, per_device in manifest["components"].items():
        for device in sorted(per_device, key=lambda d: d == "cpu"):
            chosen = per_device[device]
            choice = f"{chosen['choice']}@{device}"
            choices.setdefault(comp, []).append(choice)
            marker = str(bundle / chosen["marker"]) if chosen.get("marker") else None
            artifacts.setdefault(comp, {})[choice] = {"artifact": str(bundle / chosen["file"]), "marker": marker}
    return choices, artifacts


def series(chosen: dict[str, str]) -> dict[str, str]:
    """What a row calls its chain: one backend/variant if the chain used one, else 'mixed'."""
    parsed = [backends.parse_choice(c) for c in chosen.values()]
    kinds, used, devices = {b for b, _, _ in parsed}, {v for _, v, _ in parsed}, sorted({d for _, _, d in parsed})
    gpu = gpu_name()
    return {
        "backend": kinds.pop() if len(kinds) == 1 else "mixed",
        "variant": used.pop() if len(used) == 1 else "mixed",
        "device": "+".join(d if d == "cpu" else f"cuda:{gpu}" for d in devices),
        "chain": ";".join(f"{k}={v}" for k, v in chosen.items()),
    }


def run_e2e(
    specs, e2e_cfg, reference: str, name: str, choices, artifacts, timing: dict
) -> tuple[list[dict], dict, dict, np.ndarray]:
    """Rows per audio length, raw samples, the fidelity record, and the first input file resynthesised."""
    import torch

    threads = int(timing.get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    settings = Settings.from_config(e2e_cfg)
    roles = parse_roles(e2e_cfg["roles"])
    ref = Reference.load(reference)
    runners, chosen = resolve(specs, roles, choices, artifacts, threads)
    gates = e2e_cfg.get("fidelity") or {}
    policy = Policy.from_settings(timing)
    about = series(chosen)
    copy, resynthesis = score_copy(runners["vocoder"], ref, settings)
    record = {"gates": gates, "copy_synthesis": copy, "points": {}, "stage_order": list(STAGES)}
    rows, samples, versions_json = [], {}, runtime_versions()
    model = next(iter(specs.values())).model
    for point, expected in ref.points.items():
        scored = score_chain(runners, ref, point, settings)
        status, why = verdict(scored, copy, gates)
        record["points"][point] = {**scored, "fidelity": status, "reason": why}
        ms, how = time_chain(runners, ref, point, settings, policy)
        s = stats(ms)
        seconds = expected["input"].size / settings.sr
        m = scored["metrics"]
        rows.append(
            {
                "model": model,
                "component": "e2e",
                "point": point,
                "assignment": name,
                "label": name,
                **about,
                "audio_seconds": seconds,
                "frames": expected["mel"].shape[-1],
                "warmup": how["warmup_runs"],
                **s,
                "rel_ci": how["rel_ci"],
                "stop": how["stop"],
                "rtf": s["p50_ms"] / 1e3 / seconds,
                **{k: m.get(k) for k in ("snr_db", "lsd_db", "pesq", "stoi", "max_abs")},
                **{f"copy_{k}": copy["mean"][k] for k in ("pesq", "stoi", "lsd_db")},
                "speech_pesq": copy["mean"]["speech_pesq"],
                "speech_stoi": copy["mean"]["speech_stoi"],
                "fidelity": status,
                "fidelity_reason": why,
                "threads": threads,
                "cpu": cpu_name(),
                "gpu": gpu_name(),
                "versions": versions_json,
                "created": now(),
            }
        )
        samples[(about["device"], point)] = ms
        log.info(
            "e2e %s %s: p50 %.1f ms (rel CI %.3f, %s), real-time factor %.3f, SNR %.1f dB, LSD %.2f dB, "
            "copy-synthesis PESQ %s (%s)",
            name,
            point,
            s["p50_ms"],
            how["rel_ci"],
            how["stop"],
            rows[-1]["rtf"],
            m["snr_db"],
            m["lsd_db"],
            copy["mean"]["pesq"],
            status,
        )
    return rows, samples, record, resynthesis


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--assignment", required=True)
    p.add_argument("--choices", type=json.loads, help="component -> list of backend.variant, in preference order")
    p.add_argument("--artifacts", type=json.loads, help="component -> choice -> {artifact, marker}")
    p.add_argument("--manifest", help="deployment manifest: run its choices from the bundle (the `best` assignment)")
    p.add_argument("--timing", required=True, type=json.loads, help="the bench timing settings")
    p.add_argument("--out", required=True)
    p.add_argument("--wav", required=True, help="the first input file resynthesised by this assignment")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        choices, artifacts = from_manifest(a.manifest) if a.manifest else (a.choices, a.artifacts)
        meta = {
            "stage": "e2e",
            "assignment": a.assignment,
            "choices": choices,
            "created": now(),
            "reference": a.reference,
            "wav": a.wav,
        }
        try:
            rows, samples, record, audio = run_e2e(
                specs, a.e2e, a.reference, a.assignment, choices, artifacts, a.timing
            )
            meta.update(status="measured", rows=len(rows), fidelity=record)
        except Unavailable as e:
            rows, samples = [], {}
            audio = np.zeros(0, np.float32)  # an empty WAV: nothing was heard
            meta.update(status="unavailable", reason=str(e))
            log.warning("e2e %s: not measured: %s", a.assignment, e)
        write_wav(a.wav, audio, Settings.from_config(a.e2e).sr)
        write_results(rows, samples, a.out, meta, E2E_COLUMNS)

    cli.run("e2e", run, p, argv)


if __name__ == "__main__":
    main()
