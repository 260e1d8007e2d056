"""Stage: a model's end-to-end chain, input in -> output out, for one backend assignment.

An assignment gives each component a backend.variant series, or a list tried in order (the first
that is validated and can run here is used). The `best` assignment takes the deployment
manifest's series (the chain search's winner) and runs them from the bundled files, so the
chain that is timed is the one a user would ship. It is scored on the evaluation files (the
files nothing was tuned on: core/splits.py) against PyTorch fp32's reference run, every gate on
every file, the worst file deciding; then timed at each `chain.seconds` length with the same
adaptive policy as the components.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.results import chain_columns, runtime_versions, write_results
from ..chains import harness
from ..core import cli
from ..core.dsp import write_wav
from ..core.errors import Unavailable
from ..core.files import now, read_json, sha256_file, sha256_json
from ..core.host import cpu_name, gpu_name
from ..core.spec import spec_from_json
from ..core.timing import Policy, stats
from ..runtimes import registry as backends

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


def from_manifest(manifest_path: str | Path) -> tuple[dict[str, list[str]], harness.Artifacts]:
    """The `best` assignment: per component the manifest's series per device (GPU first), bundled files."""
    manifest = read_json(manifest_path)
    bundle = Path(manifest_path).parent
    preferences: dict[str, list[str]] = {}
    artifacts: harness.Artifacts = {}
    for comp, per_device in manifest["components"].items():
        for device in sorted(per_device, key=lambda d: d == "cpu"):
            chosen = per_device[device]
            series = f"{chosen['series']}@{device}"
            preferences.setdefault(comp, []).append(series)
            marker = str(bundle / chosen["marker"]) if chosen.get("marker") else None
            artifacts.setdefault(comp, {})[series] = {"artifact": str(bundle / chosen["file"]), "marker": marker}
    return preferences, artifacts


def describe(chosen: dict[str, str]) -> dict[str, str]:
    """What a row calls its chain: one backend/variant if the chain used one, else 'mixed'."""
    parsed = [backends.parse_series(c) for c in chosen.values()]
    kinds, used, devices = {b for b, _, _ in parsed}, {v for _, v, _ in parsed}, sorted({d for _, _, d in parsed})
    gpu = gpu_name()
    return {
        "backend": kinds.pop() if len(kinds) == 1 else "mixed",
        "variant": used.pop() if len(used) == 1 else "mixed",
        "device": "+".join(d if d == "cpu" else f"cuda:{gpu}" for d in devices),
        "chain": ";".join(f"{k}={v}" for k, v in chosen.items()),
    }


def run_chain(
    specs, chain_cfg: dict[str, Any], reference: str, name: str, preferences, artifacts, timing: dict, threads: int
) -> tuple[list[dict], dict, dict, tuple[np.ndarray, int] | None]:
    """Rows per length, raw samples, the fidelity record, and what a listener hears of the first evaluation file."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    chain = harness.load(chain_cfg)
    roles = harness.parse_roles(chain, chain_cfg["roles"])
    ref = harness.Reference.load(reference)
    runners, chosen = harness.resolve(specs, roles, preferences, artifacts, threads)
    gates = chain_cfg.get("gates") or {}
    files = ref.files("evaluation")
    records, outputs = harness.score_files(chain, runners, ref, files)
    judged = harness.verdict(chain, records, gates)
    worst = harness.worst_scores(chain, records)
    record = {
        "gates": gates,
        "verdict": judged,
        "files": records,
        "stages": harness.worst_stages(records),
        "stage_order": list(chain.stages),
        "metrics": {g: list(m) for g, m in chain.metrics.items()},
        "captions": dict(chain.captions),
        "splits": ref.splits.to_json(),
    }
    policy = Policy.from_settings(timing)
    about = describe(chosen)
    rows, samples, versions_json = [], {}, runtime_versions()
    model = next(iter(specs.values())).model
    for point, item in ref.timing.items():
        ms, how = harness.time_chain(chain, runners, item, ref.extra, policy)
        s = stats(ms)
        seconds = chain.seconds(item)
        rows.append(
            {
                "model": model,
                "component": "chain",
                "point": point,
                "assignment": name,
                "series": name,
                **about,
                "input_seconds": seconds,
                "warmup": how["warmup_runs"],
                **s,
                "rel_ci": how["rel_ci"],
                "stop": how["stop"],
                "rtf": s["p50_ms"] / 1e3 / seconds,
                **worst,
                "files": len(files),
                "fidelity": judged["status"],
                "fidelity_reason": judged["reason"],
                "threads": threads,
                "cpu": cpu_name(),
                "gpu": gpu_name(),
                "versions": versions_json,
                "created": now(),
            }
        )
        samples[(about["device"], point)] = ms
        log.info(
            "chain %s %s: p50 %.1f ms (rel CI %s, %s), real-time factor %.3f; %s on %d evaluation file(s) %s",
            name,
            point,
            s["p50_ms"],
            f"{how['rel_ci']:.3f}" if how["rel_ci"] is not None else "n/a",
            how["stop"],
            rows[-1]["rtf"],
            judged["status"],
            len(files),
            judged["reason"],
        )
    return rows, samples, record, chain.listen(outputs[files[0]]) if files else None


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--assignment", required=True)
    p.add_argument("--series", type=json.loads, help="component -> list of backend.variant series, in preference order")
    p.add_argument("--artifacts", type=json.loads, help="component -> series -> {artifact, marker}")
    p.add_argument("--manifest", help="deployment manifest: run its series from the bundle (the `best` assignment)")
    p.add_argument("--timing", required=True, type=json.loads, help="the bench timing settings")
    p.add_argument("--out", required=True)
    p.add_argument("--wav", required=True, help="what a listener hears of the first evaluation file")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        preferences, artifacts = from_manifest(a.manifest) if a.manifest else (a.series, a.artifacts)
        chain = harness.load(a.chain)
        named = sorted({e["artifact"] for per in artifacts.values() for e in per.values() if e.get("artifact")})
        meta = {
            "stage": "chain_bench",
            "assignment": a.assignment,
            # every artifact the assignment may run, as one hash: a later run compares with this one only if equal
            "artifact_sha256": sha256_json({p: sha256_file(p) for p in named if os.path.isfile(p)}),
            "preferences": preferences,
            "created": now(),
            "reference": a.reference,
            "wav": a.wav,
        }
        heard = None
        try:
            rows, samples, record, heard = run_chain(
                specs, a.chain, a.reference, a.assignment, preferences, artifacts, a.timing, a.threads
            )
            meta.update(status="measured", rows=len(rows), fidelity=record)
        except Unavailable as e:
            rows, samples = [], {}
            meta.update(status="unavailable", reason=str(e))
            log.warning("chain %s: not measured: %s", a.assignment, e)
        audio, sr = heard or (np.zeros(0, np.float32), 8000)  # an empty WAV: nothing was heard
        write_wav(a.wav, audio, sr)
        write_results(rows, samples, a.out, meta, chain_columns(chain.metrics))

    cli.run("chain_bench", run, p, argv)


if __name__ == "__main__":
    main()
