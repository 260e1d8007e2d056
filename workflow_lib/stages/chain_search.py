"""Stage: decide what to ship for a model with a chain: the fastest assignment whose whole chain passes
its gates on files nothing was tuned on, written as a manifest beside the files to ship.

Per component, the series that may ship (validated, speedup CI above 1: analysis/selection.py)
form a ladder, fastest first, PyTorch eager last. An assignment puts each component on a rung;
trying one runs the chain on the search files (every gate per file, the worst file deciding)
and times it at `chain.search.seconds` of input.

1. Back off: from every component's fastest rung, while the chain fails, move the role the
   plug-in names (chains/protocol.py `culprit`: for the demo, the vocoder when its
   resynthesis of real speech fails, else the role adding the most noise) one rung down.
2. Keep going past the first pass, within `chain.search.budget_seconds`: from every passing
   assignment, try each component one rung faster (and, where that fails, with the role it
   names moved down instead); then, from the fastest, each component one rung down where the
   component benchmarks of the two rungs are within 25 % (separate jobs disagree by that much:
   those pairs must be timed together). Every try is kept; the front is latency against the
   worst search file's margin.
3. Confirm on the evaluation files: passing assignments, fastest first, are judged on the
   held-out files until two pass (the gates that decide what ships are judged there only).
4. Decide between those two by timing them against each other (analysis/pairing.py): the faster
   wins; a tie goes to the one further from failing its gates, then fewer quantized nodes.

Nothing passing: PyTorch fp32 ships and the manifest says why. The manifest records every try
(why it lost), the front, the confirmation and the paired comparison, and says what was
established and no more.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ..analysis import pairing, selection
from ..chains import harness
from ..core import cli
from ..core.errors import Unavailable
from ..core.files import now, write_json
from ..core.gates import relative_margin
from ..core.spec import spec_from_json
from ..core.timing import Policy, stats

log = logging.getLogger(__name__)
# A rung below whose component benchmark is within this factor of the rung above may really be as fast:
# timings from separate jobs differ by that much on a shared machine, so such pairs are timed together.
CLOSE = 1.25
SPEC_KEYS = ("load", "io")  # what this stage reads of each component
Positions = tuple[int, ...]


def search_point(chain_cfg: dict[str, Any], ref: harness.Reference) -> str:
    """The input length the chain is timed at: chain.search.seconds, else the middle configured length."""
    seconds = (chain_cfg.get("search") or {}).get("seconds")
    points = list(ref.timing)
    point = f"{seconds:g}s" if seconds is not None else points[len(points) // 2]
    if point not in ref.timing:
        raise ValueError(f"chain.search.seconds {seconds} is not one of chain.seconds ({', '.join(points)})")
    return point


class Search:
    """Tries assignments (positions on the ladders) and keeps every try."""

    def __init__(
        self,
        components: list[str],
        ladders: dict[str, list[dict[str, Any]]],
        evaluate: Callable[[dict[str, dict[str, Any]]], dict[str, Any]],
        culprit: Callable[[dict[str, Any], set[str]], str | None],
        budget: float,
    ):
        self.components, self.ladders, self.evaluate, self.culprit = components, ladders, evaluate, culprit
        self.budget, self.t0 = budget, time.perf_counter()
        self.tried: dict[Positions, dict[str, Any]] = {}
        self.stopped: str | None = None

    def spent(self) -> bool:
        return time.perf_counter() - self.t0 > self.budget

    def movable(self, pos: Positions) -> set[str]:
        return {c for c, p in zip(self.components, pos, strict=True) if p < len(self.ladders[c]) - 1}

    def moved(self, pos: Positions, component: str, step: int) -> Positions:
        i = self.components.index(component)
        return tuple(p + step if j == i else p for j, p in enumerate(pos))

    def try_(self, pos: Positions, why: str) -> dict[str, Any]:
        if pos not in self.tried:
            assignment = {c: self.ladders[c][p] for c, p in zip(self.components, pos, strict=True)}
            entry = self.evaluate(assignment)
            entry.update(index=len(self.tried), positions=list(pos), why=why)
            self.tried[pos] = entry
        return self.tried[pos]

    def back_off(self, pos: Positions) -> Positions | None:
        """From `pos`, move the culprit down until the chain passes; the passing positions, or None."""
        entry = self.try_(pos, "every component on its fastest rung")
        while not entry["passed"]:
            back = self.culprit(entry, self.movable(pos))
            if back is None:
                self.stopped = "every component that adds error is back at PyTorch fp32 and the chain still fails"
                return None
            entry.setdefault("why_lost", f"{entry['reason']}; backed off {back}")
            if self.spent():
                self.stopped = f"time budget of {self.budget:g} s spent (chain.search.budget_seconds)"
                return None
            pos = self.moved(pos, back, +1)
            entry = self.try_(pos, f"try #{entry['index']} failed: {back} one rung down")
        return pos

    def improve(self, start: Positions) -> None:
        """Past the first pass: from each passing assignment, each component one rung faster (or, if that
        fails, with the role it then names moved down instead), until nothing new is left or time is up."""
        todo = [start]
        while todo:
            pos = todo.pop(0)
            for c in self.components:
                if self.spent():
                    self.stopped = f"time budget of {self.budget:g} s spent (chain.search.budget_seconds)"
                    return
                i = self.components.index(c)
                if pos[i] == 0:
                    continue
                up = self.moved(pos, c, -1)
                known = up in self.tried
                entry = self.try_(up, f"{c} one rung faster than passing try #{self.tried[pos]['index']}")
                if entry["passed"]:
                    todo += [] if known else [up]
                    continue
                other = self.culprit(entry, self.movable(up) - {c})
                if other is None or self.spent():
                    continue
                swap = self.moved(up, other, +1)
                known = swap in self.tried
                entry = self.try_(swap, f"{c} one rung faster, {other} one rung down (from try #{entry['index']})")
                if entry["passed"] and not known:
                    todo.append(swap)
        self.stopped = self.stopped or "no faster neighbour of a passing assignment is left untried"

    def runners_up(self, best: Positions) -> None:
        """The assignments a separate-jobs ranking could have put first: the best passing one with a component
        one rung down where that rung's benchmark p50 is within CLOSE of its own (the flips between runs the
        paired comparison settles)."""
        for c, p in zip(self.components, best, strict=True):
            ladder = self.ladders[c]
            if p + 1 >= len(ladder) or self.spent():
                continue
            if ladder[p + 1]["p50_ms"] <= ladder[p]["p50_ms"] * CLOSE:
                self.try_(
                    self.moved(best, c, +1),
                    f"{c} one rung down from #{self.tried[best]['index']}: "
                    f"its benchmarks are within {CLOSE - 1:.0%} of each other",
                )


def chain_search(
    specs, chain_cfg: dict[str, Any], ranked: dict[str, Any], reference: str, timing: dict, threads: int, device: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(per component the chosen entry and why, the search record) on one device kind."""
    chain = harness.load(chain_cfg)
    roles = harness.parse_roles(chain, chain_cfg["roles"])
    component_of = {r: c for r, (c, _) in roles.items()}
    role_of = {c: r for r, c in component_of.items()}
    ref = harness.Reference.load(reference)
    point = search_point(chain_cfg, ref)
    gates = chain_cfg.get("gates") or {}
    search_cfg = chain_cfg.get("search") or {}
    budget = float(search_cfg.get("budget_seconds", 300))
    policy = Policy.from_settings(timing)
    components = list(specs)
    ladders = {c: [*ranked[c][device]["candidates"], ranked[c][device]["reference"]] for c in components}
    cache: dict[str, Any] = {}
    search_files, evaluation_files = ref.files("search"), ref.files("evaluation")

    def open_runners(assignment: dict[str, dict[str, Any]]):
        preferences = {c: [f"{e['series']}@{device}"] for c, e in assignment.items()}
        artifacts = {
            c: {f"{e['series']}@{device}": {"artifact": e["source"], "marker": e["marker"]}}
            for c, e in assignment.items()
        }
        return harness.resolve(specs, roles, preferences, artifacts, threads, cache)[0]

    def evaluate(assignment: dict[str, dict[str, Any]]) -> dict[str, Any]:
        entry: dict[str, Any] = {"assignment": {c: e["series"] for c, e in assignment.items()}}
        try:
            runners = open_runners(assignment)
            records, _ = harness.score_files(chain, runners, ref, search_files)
            judged = harness.verdict(chain, records, gates)
            ms, how = harness.time_chain(chain, runners, ref.timing[point], ref.extra, policy)
            s = stats(ms)
            entry.update(
                p50_ms=s["p50_ms"],
                rel_ci=how["rel_ci"],
                rtf=s["p50_ms"] / 1e3 / chain.seconds(ref.timing[point]),
                scores=harness.worst_scores(chain, records),
                stages=harness.worst_stages(records),
                search=judged,
                margin=relative_margin(judged),
                passed=judged["status"] == "passed",
                reason=judged["reason"],
                quantized_nodes=sum(e.get("quantized_nodes") or 0 for e in assignment.values()),
            )
        except Unavailable as e:
            entry.update(passed=False, reason=f"could not run: {e}", margin=float("-inf"))
        log.info("chain search %s: %s -> %s %s", device, entry["assignment"], entry["passed"], entry["reason"])
        return entry

    def culprit(entry: dict[str, Any], movable: set[str]) -> str | None:
        if "stages" not in entry:  # it could not run at all: move anything that can
            return next(iter(sorted(movable)), None)
        failed = set(entry["search"]["failed"])
        role = chain.culprit(failed, entry["stages"], {role_of[c] for c in movable})
        return component_of[role] if role else None

    t0 = time.perf_counter()
    s = Search(components, ladders, evaluate, culprit, budget)
    passing = s.back_off(tuple(0 for _ in components))
    if passing is not None:
        s.improve(passing)
        best = min((pos for pos, e in s.tried.items() if e["passed"]), key=lambda pos: s.tried[pos]["p50_ms"])
        s.runners_up(best)
    tried = sorted(s.tried.values(), key=lambda e: e["index"])
    searched = round(time.perf_counter() - t0, 2)

    confirmed: list[dict[str, Any]] = []
    for e in sorted((e for e in tried if e["passed"]), key=lambda e: e["p50_ms"]):
        if len(confirmed) == 2:
            break
        runners = open_runners({c: ladders[c][p] for c, p in zip(components, e["positions"], strict=True)})
        records, _ = harness.score_files(chain, runners, ref, evaluation_files)
        e["evaluation"] = harness.verdict(chain, records, gates)
        e["evaluation_scores"] = harness.worst_scores(chain, records)
        if e["evaluation"]["status"] == "passed":
            confirmed.append(e)
        else:
            e["why_lost"] = f"passed the search files but not the evaluation files: {e['evaluation']['reason']}"

    paired = None
    if len(confirmed) == 2:
        paired = decide(chain_cfg, specs, ladders, components, confirmed, reference, point, threads, device)
        winner = confirmed[0] if paired["winner"] == f"#{confirmed[0]['index']}" else confirmed[1]
        loser = confirmed[1] if winner is confirmed[0] else confirmed[0]
        loser["why_lost"] = f"paired against #{winner['index']}: {paired['why']}" + (
            f"; tie broken by {paired['tie_broken_by']}" if paired.get("tie_broken_by") else ""
        )
    else:
        winner = confirmed[0] if confirmed else None
    for e in tried:
        if e is not winner and e["passed"] and "why_lost" not in e and "evaluation" not in e:
            e["why_lost"] = "slower than an assignment that passed (not judged on the evaluation files)"
    record = {
        "device": device,
        "point": point,
        "gates": gates,
        "budget_seconds": budget,
        "seconds": searched,
        "stopped": s.stopped,
        "tried": tried,
        "front": pairing.front(tried, "margin"),  # latency against the worst search file's margin
        "confirmed": [e["index"] for e in confirmed],
        "paired": paired,
        "winner": winner["index"] if winner else None,
        "files": {"search": [ref.name(i) for i in search_files], "evaluation": [ref.name(i) for i in evaluation_files]},
        "established": established(winner, tried, confirmed, paired, s.stopped),
    }
    if winner:
        chosen = {c: ladders[c][p] for c, p in zip(components, winner["positions"], strict=True)}
        reason = f"chosen by the chain search: try #{winner['index']} (what it established: the search record)"
    else:
        chosen = {c: ranked[c][device]["reference"] for c in components}
        reason = f"chain search found no assignment passing on the evaluation files ({s.stopped}): PyTorch fp32 ships"
    return {c: selection.pick(ranked[c][device], chosen[c], reason) for c in components}, record


def decide(chain_cfg, specs, ladders, components, confirmed, reference, point, threads, device) -> dict[str, Any]:
    """The two fastest confirmed assignments timed against each other (alternating, warm, one process each)."""
    recipes = []
    for e in confirmed:
        assignment = {c: ladders[c][p] for c, p in zip(components, e["positions"], strict=True)}
        recipes.append(
            {
                "builder": "workflow_lib.chains.harness:chain_step",
                "args": {
                    "chain_cfg": chain_cfg,
                    "specs": {c: s.to_json() for c, s in specs.items()},
                    "preferences": {c: [f"{x['series']}@{device}"] for c, x in assignment.items()},
                    "artifacts": {
                        c: {f"{x['series']}@{device}": {"artifact": x["source"], "marker": x["marker"]}}
                        for c, x in assignment.items()
                    },
                    "reference": reference,
                    "point": point,
                    "threads": threads,
                },
            }
        )
    a, b = confirmed
    record = pairing.compare(
        recipes[0],
        recipes[1],
        pairing.PairPolicy.from_settings((chain_cfg.get("search") or {}).get("paired")),
        (f"#{a['index']}", f"#{b['index']}"),
    )
    pairing.break_tie(
        record,
        (relative_margin(a["evaluation"]), relative_margin(b["evaluation"])),
        (a.get("quantized_nodes", 0), b.get("quantized_nodes", 0)),
    )
    return record


def established(winner, tried, confirmed, paired, stopped) -> str:
    """What the search can claim, and no more."""
    if winner is None:
        return "no assignment tried passed every gate on the evaluation files"
    text = (
        f"of {len(tried)} assignments tried ({stopped}), the fastest that passed every gate on the search "
        f"files and then on the held-out evaluation files"
    )
    if paired is None:
        return text + "; no second assignment passed, so none was timed against it"
    if paired["outcome"] == "tie":
        return (
            text
            + f"; tied with {paired['b'] if paired['winner'] == paired['a'] else paired['a']} in paired timing"
            + (f" ({paired['why']}); tie broken by {paired['tie_broken_by']}")
        )
    return (
        text + f"; faster than the runner-up in paired timing ({paired['rounds']} rounds, ratio {paired['ratio']:.3f})"
    )


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--timing", required=True, type=json.loads, help="the bench timing settings")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", required=True, help="the decision (JSON): what the bundle stage ships")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        devices = sorted(set.intersection(*(set(ranked["components"].get(c, {})) for c in specs)))
        components: dict[str, dict[str, Any]] = {c: {} for c in specs}
        searches = []
        for device in devices:
            picks, record = chain_search(specs, a.chain, ranked["components"], a.reference, a.timing, a.threads, device)
            for c, chosen in picks.items():
                components[c][device] = chosen
            searches.append(record)
        ref = harness.Reference.load(a.reference)
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": "per component, candidates as in " + selection.RULE + "; decided on the whole chain: the "
            "fastest assignment found whose chain passes every gate on the evaluation files, the last two "
            "timed against each other",
            "inputs": harness.describe_inputs(ref.splits, _hashes(a.reference)),
            "components": components,
            "search": searches,
        }
        write_json(a.out, manifest)
        for record in searches:
            log.info(
                "chain search on %s: %d assignments tried in %.1f s; %s; %s",
                record["device"],
                len(record["tried"]),
                record["seconds"],
                record["stopped"],
                record["established"],
            )

    cli.run("chain_search", run, p, argv)


def _hashes(reference: str) -> dict[str, str]:
    from ..core.files import read_json
    from ..core.paths import sidecar_path

    return {r["file"]: r["sha256"] for rs in read_json(sidecar_path(reference))["inputs"]["roles"].values() for r in rs}


if __name__ == "__main__":
    main()
