"""Stage: decide what to ship for a model without a chain. Per component and device, the fastest
validated backend that is really faster than PyTorch eager, written as a manifest beside the
files to ship.

The candidates: backends whose artifact passed validation (marker, or inline parity for
torch.compile) and were measured at the decision point, whose speedup over PyTorch fp32 on the
same device has a 95 % CI lying entirely above 1 (analysis/selection.py); none: PyTorch eager
ships. The two fastest are then timed against each other in this job (analysis/pairing.py:
alternating rounds, each warm in a process of its own) and the faster ships; a tie goes to the one
with fewer quantized nodes. Every alternative is listed with its numbers and why it lost.

Only then are the evaluation files read, once, for what was chosen (analysis/heldout.py): a series
whose variant has a fidelity gate is judged on its component's evaluation files, and if it fails
there PyTorch fp32 ships instead, as the rule fixed before any evaluation says; the manifest records
both. (A model with a chain decides on the whole chain instead: stages/chain_search.py.)
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..analysis import heldout, pairing, selection
from ..core.files import now, read_json, write_json
from ..core.spec import spec_from_json
from ..jobs import cli

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io", "gate")  # what opens each candidate, and the gates the held-out verdict applies


def decide(entry: dict[str, Any], spec: str, threads: int, point: str, policy: pairing.PairPolicy) -> dict[str, Any]:
    """Per component and device: the fastest candidate, its lead over the runner-up established by paired timing."""
    candidates = entry["candidates"]
    if not candidates:
        return selection.pick(
            entry, entry["reference"], "no validated backend is faster than PyTorch eager with a CI above 1"
        )
    if len(candidates) == 1:
        return selection.pick(entry, candidates[0], "the only validated backend with a speedup CI above 1")
    a, b = (
        pairing.Contender(
            c["series"],
            {
                "builder": "workflow_lib.runtimes.registry:series_step",
                "args": {
                    "spec": spec,
                    "series": f"{c['series']}@{c['device'].split(':')[0]}",
                    "artifact": c["source"],
                    "marker": read_json(c["marker"]) if c.get("marker") else None,
                    "threads": threads,
                    "point": point,
                },
            },
            None,  # its marker's margin is measured on the evaluation files, which never choose
            c["quantized_nodes"],
        )
        for c in candidates[:2]
    )
    record = pairing.decide_between(a, b, policy)
    winner = record["winner"]
    chosen, other = (candidates[0], candidates[1]) if winner == a.name else (candidates[1], candidates[0])
    how = record["why"] + (f"; tie broken by {record['tie_broken_by']}" if record.get("tie_broken_by") else "")
    picked = selection.pick(
        entry,
        chosen,
        f"fastest validated backend with a speedup CI above 1; against {other['series']} in paired timing: {how}",
    )
    picked["paired"] = record
    return picked


def held_out(entry: dict[str, Any], picked: dict[str, Any], spec: str, calibration, reference, threads: int) -> dict:
    """The chosen series judged once on the evaluation files; failing there, PyTorch fp32 (fixed before any
    evaluation) ships instead, and says why."""
    verdict = heldout.component(spec_from_json(spec), picked, calibration, reference, threads)
    if verdict is None or verdict["status"] == "passed":
        return {**picked, "held_out": verdict}
    why = (
        f"{picked['series']}, chosen on the search files, failed its gate on the evaluation files "
        f"({verdict['reason']}): PyTorch fp32 ships instead, the rule fixed before any evaluation"
    )
    log.warning("%s", why)
    fallback = selection.pick(entry, entry["reference"], why)
    fallback["fallback_from"] = {"series": picked["series"], "held_out": verdict}
    return fallback


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--paired", type=json.loads, default={}, help="paired timing settings (deploy.paired)")
    p.add_argument("--samples", type=json.loads, default={}, help="component -> {calibration, reference} paths")
    p.add_argument("--out", required=True, help="the decision (JSON): what the bundle stage ships")

    def run(a: argparse.Namespace) -> None:
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        policy = pairing.PairPolicy.from_settings(a.paired)
        components = {
            comp: {
                kind: held_out(
                    entry,
                    decide(entry, a.specs[comp], a.threads, a.point, policy),
                    a.specs[comp],
                    a.samples.get(comp, {}).get("calibration"),
                    a.samples.get(comp, {}).get("reference"),
                    a.threads,
                )
                for kind, entry in per_device.items()
            }
            for comp, per_device in ranked["components"].items()
        }
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": selection.RULE + "; the two fastest timed against each other; then judged once on the "
            "evaluation files (failing there: PyTorch fp32 ships)",
            "components": components,
            "failures": selection.failures(ranked),
        }
        write_json(a.out, manifest)
        for comp, per_device in components.items():
            for kind, chosen in per_device.items():
                log.info("%s on %s: ship %s (%s)", comp, kind, chosen["series"], chosen["reason"])

    cli.run("deploy", run, p, argv)


if __name__ == "__main__":
    main()
