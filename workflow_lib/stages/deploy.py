"""Stage: decide what to ship for a model without a chain. Per component and device, the fastest
validated backend that is really faster than PyTorch eager, written as a manifest beside the
files to ship.

The candidates: backends whose artifact passed validation (marker, or inline parity for
torch.compile) and were measured at the decision point, whose speedup over PyTorch fp32 on the
same device has a 95 % CI lying entirely above 1 (analysis/selection.py); none: PyTorch eager
ships. The two fastest are then timed against each other in this job (analysis/pairing.py:
alternating rounds, each warm in a process of its own) and the faster ships; a tie goes to the
one further from failing its gate, then to fewer quantized nodes. Every alternative is listed
with its numbers and why it lost. (A model with a chain decides on the whole chain instead:
stages/chain_search.py.)
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..analysis import pairing, selection
from ..core import cli
from ..core.files import now, read_json, write_json
from ..core.gates import relative_margin

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what opens each candidate for paired timing


def margin(entry: dict[str, Any]) -> float:
    """How far a series is from failing its gate, from its validation marker (0 when it records none)."""
    if not entry.get("marker"):
        return 0.0
    verdict = (read_json(entry["marker"]).get("parity") or {}).get("verdict")
    return relative_margin(verdict) if verdict else 0.0


def decide(entry: dict[str, Any], spec: str, threads: int, point: str, policy: pairing.PairPolicy) -> dict[str, Any]:
    """Per component and device: the fastest candidate, its lead over the runner-up established by paired timing."""
    candidates = entry["candidates"]
    if not candidates:
        return selection.pick(
            entry, entry["reference"], "no validated backend is faster than PyTorch eager with a CI above 1"
        )
    if len(candidates) == 1:
        return selection.pick(entry, candidates[0], "the only validated backend with a speedup CI above 1")
    a, b = candidates[:2]
    recipes = [
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
        }
        for c in (a, b)
    ]
    record = pairing.compare(recipes[0], recipes[1], policy, (a["series"], b["series"]))
    winner = pairing.break_tie(record, (margin(a), margin(b)), (a["quantized_nodes"], b["quantized_nodes"]))
    chosen, other = (a, b) if winner == a["series"] else (b, a)
    how = record["why"] + (f"; tie broken by {record['tie_broken_by']}" if record.get("tie_broken_by") else "")
    picked = selection.pick(
        entry,
        chosen,
        f"fastest validated backend with a speedup CI above 1; against {other['series']} in paired timing: {how}",
    )
    picked["paired"] = {k: v for k, v in record.items() if k not in ("a_ms", "b_ms")}
    return picked


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--paired", type=json.loads, default={}, help="paired timing settings (deploy.paired)")
    p.add_argument("--out", required=True, help="the decision (JSON): what the bundle stage ships")

    def run(a: argparse.Namespace) -> None:
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        policy = pairing.PairPolicy.from_settings(a.paired)
        components = {
            comp: {kind: decide(entry, a.specs[comp], a.threads, a.point, policy) for kind, entry in per_device.items()}
            for comp, per_device in ranked["components"].items()
        }
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": selection.RULE + "; the two fastest timed against each other",
            "components": components,
        }
        write_json(a.out, manifest)
        for comp, per_device in components.items():
            for kind, chosen in per_device.items():
                log.info("%s on %s: ship %s (%s)", comp, kind, chosen["series"], chosen["reason"])

    cli.run("deploy", run, p, argv)


if __name__ == "__main__":
    main()
