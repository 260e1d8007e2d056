"""Stage: a model's end-to-end chain, input in -> output out, for one backend assignment.

An assignment gives each component a backend.variant series, or a list tried in order (the first
that is validated and can run here is used). The `best` assignment takes the deployment
manifest's series (the chain search's winner) and runs them from the bundled files, so the
chain that is timed is the one a user would ship. It is scored on the evaluation files (the
files nothing was chosen on: core/splits.py) against PyTorch fp32's reference run, every gate on
every file, by the gate statistic (`best` reads the chain search's one reading of them, and PyTorch
fp32 throughout is the reference run itself: neither runs the chain on those files again); then
timed at each `chain.seconds` length with the same adaptive policy as the components.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..analysis.gates import Statistic
from ..analysis.results import chain_columns, runtime_versions, write_results
from ..chains import harness
from ..chains.assignment import Preferences, from_decision, open_roles, preferences_from_json, preferences_json
from ..chains.spec import ChainSpec
from ..core.errors import Unavailable
from ..core.files import now, read_json, sha256_file, sha256_json, write_npz
from ..core.spec import spec_from_json
from ..jobs import cli
from ..jobs.host import cpu_name, gpu_name
from ..jobs.timing import Policy, stats
from ..runtimes import registry as backends
from ..runtimes.registry import REFERENCE, REFERENCE_VARIANT

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


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
    specs,
    spec: ChainSpec,
    reference: str,
    name: str,
    prefs: Preferences,
    timing: dict,
    threads: int,
    judged: list[dict[str, Any]] | None = None,
) -> tuple[list[dict], dict, dict, dict[str, Any]]:
    """Rows per length, raw samples, the fidelity record, and the outputs on the first evaluation file. `judged`:
    the per-file records the chain search made of this very assignment on the evaluation files (what ships is
    read from there, not run on them again)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    chain, scorer = spec.chain, spec.scorer
    ref = harness.Reference.load(reference)
    runners, chosen = open_roles(spec, specs, prefs, threads)
    gates = spec.gates
    files = ref.files("evaluation")
    if judged is not None:  # the chain search's one reading of the evaluation files, of these series and files
        records, outputs = judged, harness.score_files(spec, runners, ref, files[:1])[1]
        scored = "the chain search's verdict on the evaluation files, read (the same series, artifacts and files)"
    elif all(backends.parse_series(s) == (REFERENCE, REFERENCE_VARIANT, "cpu") for s in chosen.values()):
        records, outputs = harness.reference_records(spec, ref, files)
        scored = "the reference run itself (PyTorch fp32 throughout on the CPU), not run again to meet itself"
    else:
        records, outputs = harness.score_files(spec, runners, ref, files)
        scored = "run on the evaluation files"
    judged = harness.verdict(scorer, records, gates, Statistic.from_settings(spec.raw.get("gating")))
    worst = harness.worst_scores(scorer, records)
    record = {
        "gates": gates,
        "verdict": judged,
        "files": records,
        "stages": harness.worst_stages(records),
        "stage_order": list(chain.stages),
        "metrics": {g: list(m) for g, m in scorer.metrics.items()},
        "captions": dict(scorer.captions),
        "splits": ref.splits.to_json(),
        "scored": scored,
    }
    policy = Policy.from_settings(timing)
    about = describe(chosen)
    rows, samples, versions_json = [], {}, runtime_versions()
    for point, item in ref.timing.items():
        ms, how = harness.time_chain(chain, runners, item, ref.extra, policy)
        s = stats(ms)
        seconds = chain.seconds(item)
        rows.append(
            {
                "model": spec.model,
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
    return rows, samples, record, outputs[files[0]] if files else {}


def shipped_records(manifest: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The per-file records of what a manifest ships, as the chain search judged it on the evaluation files (the
    winner's, or the safe assignment's it fell back to); None where it ships for more than one device or holds
    none."""
    searches = manifest.get("search") or []
    if len(searches) != 1:
        return None
    verdict = (searches[0].get("fallback") or {}).get("evaluation") or searches[0].get("evaluation") or {}
    return verdict.get("records")


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON)")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--assignment", required=True)
    p.add_argument("--choices", type=json.loads, help="component -> the choices (series, artifact, marker) in order")
    p.add_argument("--manifest", help="deployment manifest: run its series from the bundle (the `best` assignment)")
    p.add_argument("--timing", required=True, type=json.loads, help="the bench timing settings")
    p.add_argument("--out", required=True)
    p.add_argument("--listen", required=True, help="its outputs on the first evaluation file (.npz), for media")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        judged = None
        if a.manifest:
            manifest = read_json(a.manifest)
            prefs = from_decision(manifest, root=Path(a.manifest).parent)
            judged = shipped_records(manifest)
        else:
            prefs = preferences_from_json(a.choices)
        named = sorted({c.artifact for choices in prefs.values() for c in choices if c.artifact})
        meta = {
            "stage": "chain_bench",
            "assignment": a.assignment,
            "plugin": a.chain.plugin,
            # every artifact the assignment may run, as one hash: a later run compares with this one only if equal
            "artifact_sha256": sha256_json({p: sha256_file(p) for p in named if os.path.isfile(p)}),
            "preferences": preferences_json(prefs),
            "created": now(),
            "reference": a.reference,
            "listen": a.listen,
        }
        heard = {}
        try:
            rows, samples, record, heard = run_chain(
                specs, a.chain, a.reference, a.assignment, prefs, a.timing, a.threads, judged
            )
            meta.update(status="measured", rows=len(rows), fidelity=record)
        except Unavailable as e:
            rows, samples = [], {}
            meta.update(status="unavailable", reason=str(e))
            log.warning("chain %s: not measured: %s", a.assignment, e)
        write_npz(a.listen, {f"outputs/{k}": v for k, v in heard.items()})
        write_results(rows, samples, a.out, meta, chain_columns(a.chain.scorer.metrics))

    cli.run("chain_bench", run, p, argv)


if __name__ == "__main__":
    main()
