"""Stage: decide what to ship for a model with a chain: the fastest assignment whose whole chain
passes the fidelity gates, written as a manifest beside the files to ship.

Per component, the candidates that may ship (validated, speedup CI above 1; selection.rank)
are tried fastest first, with PyTorch eager last. The search starts from every component's
fastest candidate and runs the chain: the SVC chain at `e2e.search.seconds` of audio (timed
with the components' adaptive policy, every stage compared with PyTorch fp32's reference
run) and real speech through the vocoder (PESQ/STOI). If the chain fails a gate, the
component that adds the most error is backed off to its next candidate: the vocoder when the
resynthesised speech fails, otherwise the role whose output is noisier than its inputs by the
largest noise-to-signal ratio. Every assignment tried is recorded with its chain latency, its
scores and why it lost. When nothing passes within `e2e.search.budget_seconds` (or every
component is back at PyTorch), PyTorch fp32 ships and the manifest says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ...analysis import selection
from ...analysis.fidelity import gate
from ...core import cli
from ...core.errors import Unavailable
from ...core.files import now
from ...core.spec import spec_from_json
from ...core.timing import Policy, stats
from .chain import Settings, added_noise, parse_roles
from .scoring import Reference, resolve, score_chain, score_copy, time_chain, verdict

log = logging.getLogger(__name__)


def search_point(e2e: dict[str, Any], ref: Reference) -> str:
    """The audio length the chain is judged at: e2e.search.seconds, else the middle configured length."""
    seconds = (e2e.get("search") or {}).get("seconds")
    points = list(ref.points)
    point = f"{seconds:g}s" if seconds is not None else points[len(points) // 2]
    if point not in ref.points:
        raise ValueError(f"e2e.search.seconds {seconds} is not one of e2e.seconds ({', '.join(points)})")
    return point


def culprit(entry: dict[str, Any], roles: dict, gates: dict[str, Any], movable: set[str]) -> str | None:
    """The component to back off after a failed try: the vocoder if resynthesised speech fails its gate,
    else the one adding the most noise along the chain; None when no failing component can move."""
    if "stages" not in entry:  # it could not run at all: move anything that can
        return next(iter(sorted(movable)), None)
    noise = {roles[r][0]: v for r, v in added_noise(entry["stages"]).items()}
    entry["added_noise"] = noise
    vocoder = roles["vocoder"][0]
    if gate(entry["copy_synthesis"], gates.get("copy_synthesis") or {})[0] == "failed" and vocoder in movable:
        return vocoder
    order = sorted((c for c in noise if c in movable), key=lambda c: -noise[c])
    return order[0] if order else None


def back_off(
    ladders: dict[str, list[dict[str, Any]]],
    evaluate: Callable[[dict[str, dict]], dict[str, Any]],
    pick_culprit: Callable[[dict[str, Any], set[str]], str | None],
    budget: float,
) -> tuple[dict[str, int] | None, list[dict[str, Any]], str]:
    """From every component's first rung, evaluate; on failure move the culprit one rung down; repeat.

    Returns the rung of each component in the passing assignment (None if none passed), every
    try (with why it lost), and why the search stopped.
    """
    position = {c: 0 for c in ladders}
    tried: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    while True:
        entry = evaluate({c: ladders[c][position[c]] for c in ladders})
        tried.append(entry)
        if entry["fidelity"] == "passed":
            return position, tried, "the chain passes every gate"
        back = pick_culprit(entry, {c for c in ladders if position[c] < len(ladders[c]) - 1})
        if back is None:
            return None, tried, "every component that adds error is back at PyTorch fp32 and the chain still fails"
        entry.update(
            backed_off=back,
            why_lost=f"{entry['reason']}; backed off {back} from {ladders[back][position[back]]['choice']}",
        )
        position[back] += 1
        if time.perf_counter() - t0 > budget:
            return None, tried, f"time budget of {budget:g} s spent (e2e.search.budget_seconds)"


def chain_search(
    specs, e2e: dict[str, Any], ranked: dict[str, Any], reference: str, timing: dict[str, Any], device: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(per component the chosen entry and why, the search record) on one device kind."""
    settings = Settings.from_config(e2e)
    roles = parse_roles(e2e["roles"])
    ref = Reference.load(reference)
    point = search_point(e2e, ref)
    gates = e2e.get("fidelity") or {}
    budget = float((e2e.get("search") or {}).get("budget_seconds", 300))
    policy = Policy.from_settings(timing)
    threads = int(timing.get("threads", 0))
    ladders = {c: [*ranked[c][device]["candidates"], ranked[c][device]["reference"]] for c in specs}
    runners_cache: dict[str, Any] = {}
    copy_cache: dict[str, dict[str, Any]] = {}

    def evaluate(assignment: dict[str, dict[str, Any]]) -> dict[str, Any]:
        choices = {c: [f"{e['choice']}@{device}"] for c, e in assignment.items()}
        artifacts = {
            c: {f"{e['choice']}@{device}": {"artifact": e["source"], "marker": e["marker"]}}
            for c, e in assignment.items()
        }
        entry: dict[str, Any] = {"assignment": {c: e["choice"] for c, e in assignment.items()}}
        try:
            runners, _ = resolve(specs, roles, choices, artifacts, threads, runners_cache)
            vocoder = assignment[roles["vocoder"][0]]["choice"]
            if vocoder not in copy_cache:
                copy_cache[vocoder] = score_copy(runners["vocoder"], ref, settings)[0]
            chain = score_chain(runners, ref, point, settings)
            status, why = verdict(chain, copy_cache[vocoder], gates)
            ms, how = time_chain(runners, ref, point, settings, policy)
            s = stats(ms)
            entry.update(
                p50_ms=s["p50_ms"],
                rel_ci=how["rel_ci"],
                rtf=s["p50_ms"] / 1e3 / float(point.rstrip("s")),
                chain=chain["metrics"],
                stages=chain["stages"],
                copy_synthesis=copy_cache[vocoder]["mean"],
                fidelity=status,
                reason=why,
            )
        except Unavailable as e:
            entry.update(fidelity="failed", reason=f"could not run: {e}")
        log.info("chain search %s: %s -> %s %s", device, entry["assignment"], entry["fidelity"], entry["reason"])
        return entry

    t0 = time.perf_counter()
    position, tried, stopped = back_off(ladders, evaluate, lambda e, movable: culprit(e, roles, gates, movable), budget)
    record = {
        "device": device,
        "point": point,
        "gates": gates,
        "budget_seconds": budget,
        "seconds": round(time.perf_counter() - t0, 2),
        "stopped": stopped,
        "tried": tried,
        "winner": len(tried) - 1 if position else None,
    }
    if position:
        reason = f"chain search: the fastest assignment tried whose chain passes ({stopped})"
        chosen = {c: ladders[c][position[c]] for c in specs}
    else:
        reason = f"chain search found no passing assignment ({stopped}): PyTorch fp32 ships"
        chosen = {c: ranked[c][device]["reference"] for c in specs}
    return {c: selection.pick(ranked[c][device], chosen[c], reason) for c in specs}, record


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--timing", required=True, type=json.loads, help="the bench timing settings")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", required=True, help="the bundle directory (manifest.json inside)")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        devices = sorted(set.intersection(*(set(ranked["components"].get(c, {})) for c in specs)))
        components: dict[str, dict[str, Any]] = {c: {} for c in specs}
        searches = []
        for device in devices:
            picks, record = chain_search(specs, a.e2e, ranked["components"], a.reference, a.timing, device)
            for c, chosen in picks.items():
                components[c][device] = chosen
            searches.append(record)
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": "per component, candidates as in " + selection.RULE + "; decided on the whole chain: "
            "the fastest assignment tried whose chain passes e2e.fidelity",
            "components": components,
            "search": searches,
        }
        selection.bundle(manifest, {c: json.loads(s) for c, s in a.specs.items()}, a.out)
        for record in searches:
            log.info(
                "chain search on %s: %d assignments tried in %.1f s; %s",
                record["device"],
                len(record["tried"]),
                record["seconds"],
                record["stopped"],
            )

    cli.run("search", run, p, argv)


if __name__ == "__main__":
    main()
