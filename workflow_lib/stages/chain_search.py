"""Stage: decide what to ship for a model with a chain: the fastest assignment whose whole chain passes
its gates on the search files, then judged once on files nothing was chosen on.

Per component, the series that may ship (validated, speedup CI above 1: analysis/selection.py)
form a ladder, fastest first, PyTorch eager last; except that the rungs whose benchmarks lie within
the chain's resolution of the fastest (the paired tie band of the chain's estimated time: timing the
chain cannot tell them apart) go in an order no timing enters, cheapest arithmetic first
(selection.cheapest_key), so that separate benchmarks swapping two of them between runs changes
neither where the search starts nor the runner-up it is timed against. A component doing less than
`chain.search.settle_share` (2 %) of the chain's FLOPs is settled instead, by a key no timing enters:
its most faithful validated series (selection.most_faithful), its only rung. No choice among its
series moves the chain's time beyond what paired timing resolves (±3 %), so timing would pick among
them by noise: a different graph from every run.
An assignment puts each component on a rung; trying one runs the chain on the search files (its gates
applied by the gate statistic: analysis/gates.py) and times it at `chain.search.seconds` of input.

1. Back off: from every component's first rung, while the chain fails, move the role the
   scorer names (`culprit`: by default the role adding the most noise; a scorer may know better)
   one rung down.
2. Keep going past the first pass: from every passing assignment, try each component one rung
   faster (and, where that fails, with the role it names moved down instead); then, from the
   fastest, each component one rung down where the component benchmarks of the two rungs are
   within 25 % or within the chain's resolution (separate jobs disagree by that much: such pairs
   must be timed together). The search is bounded in work (`chain.search.max_tries`), so machines
   of different speed try the same assignments; `budget_seconds` is only a safety stop that marks
   the result cut short.
3. Choose, on the search files alone: the two fastest passing assignments timed against each
   other (analysis/pairing.py `decide_between`): the faster wins; a tie goes to the larger
   margin on the search files, then to fewer quantized nodes, then to the smaller canonical key
   (the assignment's series, sorted), never to the noisy ranking that put one first.
4. Then, and only then, the evaluation files, read once: the chosen assignment's verdict and the
   held-out numbers the manifest quotes. If it fails there, the safe assignment named before any
   evaluation (`chain.safe`, default PyTorch fp32 everywhere) ships, and the manifest and report
   say so; nothing is ever picked by its evaluation score.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..analysis import heldout, pairing, selection
from ..analysis.budget import Budget
from ..analysis.gates import Statistic, relative_margin
from ..analysis.speedups import read_flops
from ..chains import harness
from ..chains.assignment import Preferences, answers, choice_of, open_roles, preferences_json, remembered
from ..chains.spec import ChainSpec
from ..core.errors import Unavailable
from ..core.files import now, read_json, write_json
from ..core.paths import sidecar_path
from ..core.spec import spec_from_json
from ..core.splits import spread
from ..jobs import cli
from ..jobs.timing import RANKING, stats

log = logging.getLogger(__name__)
# A rung below whose component benchmark is within this factor of the rung above may really be as fast:
# timings from separate jobs differ by that much on a shared machine, so such pairs are timed together.
CLOSE = 1.25
SPEC_KEYS = ("load", "io", "gate")  # what opens each component, and the gates of its held-out verdict
Positions = tuple[int, ...]
REFERENCE = "reference"  # chain.safe's default: PyTorch fp32 for every component
SETTLE_SHARE = 0.02  # chain.search.settle_share's default


@dataclass
class Try:
    """One assignment the search ran on the search files."""

    index: int
    positions: list[int]
    assignment: dict[str, str]  # component -> series
    why: str
    passed: bool = False
    reason: str = ""
    margin: float = float("-inf")  # the tightest gate's relative margin on the search files
    p50_ms: float | None = None
    rel_ci: float | None = None
    rtf: float | None = None
    scores: dict[str, Any] = field(default_factory=dict)  # per <group>_<metric>, the worst search file's
    stages: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)  # the verdict on the search files
    quantized_nodes: int = 0
    why_lost: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def search_point(spec: ChainSpec, ref: harness.Reference) -> str:
    """The input length the chain is timed at: chain.search.seconds, else the middle configured length."""
    seconds = spec.search.get("seconds")
    points = list(ref.timing)
    point = f"{seconds:g}s" if seconds is not None else points[len(points) // 2]
    if point not in ref.timing:
        raise ValueError(f"chain.search.seconds {seconds} is not one of chain.seconds ({', '.join(points)})")
    return point


class Search:
    """Tries assignments (positions on the ladders), within a budget of tries, and keeps every try."""

    def __init__(
        self,
        components: list[str],
        ladders: dict[str, list[dict[str, Any]]],
        evaluate: Callable[[Try, dict[str, dict[str, Any]]], None],
        culprit: Callable[[Try, set[str]], str | None],
        budget: Budget,
        resolution_ms: float = 0.0,
    ):
        self.components, self.ladders, self.evaluate, self.culprit = components, ladders, evaluate, culprit
        self.budget, self.resolution_ms = budget, resolution_ms
        self.tried: dict[Positions, Try] = {}
        self.stopped: str | None = None

    def movable(self, pos: Positions) -> set[str]:
        return {c for c, p in zip(self.components, pos, strict=True) if p < len(self.ladders[c]) - 1}

    def moved(self, pos: Positions, component: str, step: int) -> Positions:
        i = self.components.index(component)
        return tuple(p + step if j == i else p for j, p in enumerate(pos))

    def try_(self, pos: Positions, why: str) -> Try | None:
        """The try at `pos` (run now, if new and the budget allows; None when it does not)."""
        if pos not in self.tried:
            if not self.budget.take():
                return None
            assignment = {c: self.ladders[c][p] for c, p in zip(self.components, pos, strict=True)}
            t = Try(len(self.tried), list(pos), {c: e["series"] for c, e in assignment.items()}, why)
            self.evaluate(t, assignment)
            self.tried[pos] = t
        return self.tried[pos]

    def back_off(self, pos: Positions) -> Positions | None:
        """From `pos`, move the culprit down until the chain passes; the passing positions, or None."""
        entry = self.try_(pos, "every component on its first rung")
        while entry is not None and not entry.passed:
            back = self.culprit(entry, self.movable(pos))
            if back is None:
                self.stopped = "every component that adds error is back at PyTorch fp32 and the chain still fails"
                return None
            entry.why_lost = entry.why_lost or f"{entry.reason}; backed off {back}"
            pos = self.moved(pos, back, +1)
            entry = self.try_(pos, f"try #{entry.index} failed: {back} one rung down")
        return pos if entry is not None else None

    def improve(self, start: Positions) -> None:
        """Past the first pass: from each passing assignment, each component one rung faster (or, if that
        fails, with the role it then names moved down instead), until nothing new is left or the budget is."""
        todo = [start]
        while todo:
            pos = todo.pop(0)
            for c in self.components:
                i = self.components.index(c)
                if pos[i] == 0:
                    continue
                up = self.moved(pos, c, -1)
                known = up in self.tried
                entry = self.try_(up, f"{c} one rung faster than passing try #{self.tried[pos].index}")
                if entry is None:
                    return
                if entry.passed:
                    todo += [] if known else [up]
                    continue
                other = self.culprit(entry, self.movable(up) - {c})
                if other is None:
                    continue
                swap = self.moved(up, other, +1)
                known = swap in self.tried
                entry = self.try_(swap, f"{c} one rung faster, {other} one rung down (from try #{entry.index})")
                if entry is None:
                    return
                if entry.passed and not known:
                    todo.append(swap)
        self.stopped = self.stopped or "no faster neighbour of a passing assignment is left untried"

    def runners_up(self, best: Positions) -> None:
        """The assignments a separate-jobs ranking could have put first: the best passing one with a component
        one rung down where that rung's benchmark p50 is within CLOSE of its own, or within the chain's resolution
        (the flips between runs the paired comparison settles)."""
        for c, p in zip(self.components, best, strict=True):
            ladder = self.ladders[c]
            if p + 1 >= len(ladder):
                continue
            here, down = ladder[p]["p50_ms"], ladder[p + 1]["p50_ms"]
            if down <= here * CLOSE or down - here < self.resolution_ms:
                self.try_(
                    self.moved(best, c, +1),
                    f"{c} one rung down from #{self.tried[best].index}: its benchmarks are within {CLOSE - 1:.0%} "
                    f"or {self.resolution_ms:.1f} ms (the chain's resolution) of each other",
                )


def resolved(ladder: list[dict[str, Any]], within_ms: float) -> list[dict[str, Any]]:
    """The ladder with its rungs within `within_ms` of the fastest (as fast, as far as timing the chain can tell)
    cheapest arithmetic first, the others after them, fastest first."""
    fastest = min(r["p50_ms"] for r in ladder)
    close = [r["p50_ms"] - fastest < within_ms for r in ladder]
    return sorted((r for r, c in zip(ladder, close, strict=True) if c), key=selection.cheapest_key) + [
        r for r, c in zip(ladder, close, strict=True) if not c
    ]


def settled(components: list[str], flops: dict[str, int], limit: float) -> dict[str, float]:
    """The components too small for timing to choose among their series: per component, its share of the chain's
    FLOPs at the deploy point, where that is below `limit` (none where a count is missing)."""
    total = sum(flops.get(c) or 0 for c in components)
    if not limit or not total or any(flops.get(c) is None for c in components):
        return {}
    return {c: flops[c] / total for c in components if flops[c] / total < limit}


def safe_entries(spec: ChainSpec, ranked: dict[str, Any], device: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Per component the entry of the safe assignment (chain.safe; named before any evaluation): the first of
    its series that was validated and measured here, else PyTorch fp32; and what it is called."""
    name = spec.raw.get("safe") or REFERENCE
    wanted = spec.assignments.get(name, {})
    out = {}
    for c in spec.components():
        entry = ranked[c][device]
        usable = [e for e in [*entry["candidates"], entry["reference"], *entry["others"]] if e["validated"]]
        series = wanted.get(c, wanted.get("default", []))
        out[c] = next((e for s in series for e in usable if e["series"] == s), entry["reference"])
    return out, name


def chain_search(
    specs,
    spec: ChainSpec,
    ranked: dict[str, Any],
    reference: str,
    threads: int,
    device: str,
    samples: dict[str, dict[str, str]] | None = None,
    flops: dict[str, int] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(per component the chosen entry and why, the search record) on one device kind; `flops`: per component at
    the deploy point (what settles the small ones)."""
    chain, scorer = spec.chain, spec.scorer
    ref = harness.Reference.load(reference)
    point = search_point(spec, ref)
    gates, cfg = spec.gates, spec.search
    statistic = Statistic.from_settings(spec.raw.get("gating"))
    budget = Budget(
        int(cfg.get("max_tries", 24)),
        cfg.get("budget_seconds"),
        "chain.search.max_tries",
        "chain.search.budget_seconds",
    )
    components = spec.components()
    settle_share = cfg.get("settle_share", SETTLE_SHARE)
    shares = settled(components, flops or {}, settle_share)
    fixed = {c: selection.most_faithful(ranked[c][device]) for c in shares}

    # a settled component has one rung: nothing moves it, neither a failing chain nor a runner-up's timing
    ladders = {
        c: [fixed[c]] if c in fixed else [*ranked[c][device]["candidates"], ranked[c][device]["reference"]]
        for c in components
    }
    resolution = pairing.PairPolicy.from_settings(cfg.get("paired")).tie_band * sum(
        min(r["p50_ms"] for r in ladder) for ladder in ladders.values()
    )
    ladders = {c: resolved(ladder, resolution) for c, ladder in ladders.items()}
    cache: dict[str, Any] = {}
    memo: dict[tuple, list] = {}  # what each component's series answered on each input, across tries
    search_files, evaluation_files = spread(ref.files("search"), cfg.get("files")), ref.files("evaluation")

    def prefs(assignment: dict[str, dict[str, Any]]) -> Preferences:
        return {c: [choice_of(e, device)] for c, e in assignment.items()}

    def evaluate(t: Try, assignment: dict[str, dict[str, Any]]) -> None:
        try:
            runners, chosen = open_roles(spec, specs, prefs(assignment), threads, cache)
            records, _ = harness.score_files(spec, remembered(spec, runners, chosen, memo), ref, search_files)
            judged = harness.verdict(scorer, records, gates, statistic)
            t.scores, t.stages, t.search = harness.worst_scores(scorer, records), harness.worst_stages(records), judged
            t.margin, t.passed, t.reason = relative_margin(judged), judged["status"] == "passed", judged["reason"]
            t.quantized_nodes = sum(e.get("quantized_nodes") or 0 for e in assignment.values())
            if t.passed:  # a try that failed its gates decides nothing by its speed: it is not timed
                ms, how = harness.time_chain(chain, runners, ref.timing[point], ref.extra, RANKING)
                p50 = stats(ms)["p50_ms"]
                t.p50_ms, t.rel_ci, t.rtf = p50, how["rel_ci"], p50 / 1e3 / chain.seconds(ref.timing[point])
        except Unavailable as e:
            t.passed, t.reason = False, f"could not run: {e}"
        log.info("chain search %s: %s -> %s %s", device, t.assignment, t.passed, t.reason)

    def culprit(t: Try, movable: set[str]) -> str | None:
        if not t.stages:  # it could not run at all: move anything that can
            return next(iter(sorted(movable)), None)
        role = scorer.culprit(set(t.search["failed"]), t.stages, {spec.role_of(c) for c in movable})
        return spec.roles[role].component if role else None

    s = Search(components, ladders, evaluate, culprit, budget, resolution)
    passing = s.back_off(tuple(0 for _ in components))
    if passing is not None:
        s.improve(passing)
        best = min((pos for pos, t in s.tried.items() if t.passed), key=lambda pos: s.tried[pos].p50_ms)
        s.runners_up(best)
    tried = sorted(s.tried.values(), key=lambda t: t.index)
    stopped = budget.stopped or s.stopped

    # choose on the search files alone
    ranked_passing = sorted((t for t in tried if t.passed), key=lambda t: t.p50_ms)
    paired = None
    if len(ranked_passing) >= 2:
        a, b = ranked_passing[:2]
        paired = decide(spec, specs, ladders, components, (a, b), reference, point, threads, device)
        winner = a if paired["winner"] == f"#{a.index}" else b
        loser = b if winner is a else a
        loser.why_lost = f"paired against #{winner.index}: {paired['why']}" + (
            f"; tie broken by {paired['tie_broken_by']}" if paired.get("tie_broken_by") else ""
        )
    else:
        winner = ranked_passing[0] if ranked_passing else None
    for t in tried:
        if t is not winner and t.passed and t.why_lost is None:
            t.why_lost = "slower than an assignment that passed"

    # then, once, the evaluation files: the verdict of what was chosen (and of the fallback, for the record)
    def judged_on_evaluation(assignment: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The chain's gates on its evaluation files, and each shipped component's own fidelity gate on its own."""
        runners, series = open_roles(spec, specs, prefs(assignment), threads, cache)
        records, _ = harness.score_files(spec, remembered(spec, runners, series, memo), ref, evaluation_files)
        out = harness.verdict(scorer, records, gates, statistic)
        out["scores"] = harness.worst_scores(scorer, records)
        # per file, what the chain bench of what ships reads instead of running the chain on these files again
        out["records"], out["stages"] = records, harness.worst_stages(records)
        # the inputs the chain already fed a component (a role fed the file's own features) are read, not run again
        own = {
            c: heldout.component(
                specs[c],
                e,
                samples.get(c, {}).get("calibration"),
                samples.get(c, {}).get("reference"),
                threads,
                answers(memo, c, series[c]),
            )
            for c, e in assignment.items()
        }
        out["components"] = {c: v for c, v in own.items() if v is not None}
        failing = [c for c, v in out["components"].items() if v["status"] != "passed"]
        if failing:
            out["status"] = "failed"
            out["reason"] = "; ".join(
                [
                    *([out["reason"]] if out["reason"] else []),
                    *(f"{c}: {out['components'][c]['reason']}" for c in failing),
                ]
            )
        return out

    samples = samples or {}
    safe, safe_name = safe_entries(spec, ranked, device)
    evaluation, fallback = None, None
    if winner is not None:
        chosen = {c: ladders[c][p] for c, p in zip(components, winner.positions, strict=True)}
        evaluation = judged_on_evaluation(chosen)
        reason = f"chosen by the chain search on the search files: try #{winner.index}; passed on the evaluation files"
        if evaluation["status"] != "passed":
            fallback = {
                "assignment": safe_name,
                "why": f"try #{winner.index}, chosen on the search files, failed its gates on the evaluation files "
                f"({evaluation['reason']}): the safe assignment `{safe_name}` (chain.safe, named before any "
                "evaluation) ships instead",
            }
    else:
        fallback = {
            "assignment": safe_name,
            "why": f"no assignment passed on the search files ({stopped}): the "
            f"safe assignment `{safe_name}` (chain.safe) ships",
        }
    if fallback is not None:
        chosen, reason = safe, fallback["why"]
        fallback["evaluation"] = judged_on_evaluation(safe)
        log.warning("chain search %s: %s", device, fallback["why"])
    record = {
        "device": device,
        "point": point,
        "gates": gates,
        "resolution_ms": resolution,
        "ladders": {c: [r["series"] for r in ladder] for c, ladder in ladders.items()},
        "statistic": statistic.describe(),
        "budget": budget.record(),
        "cut_short": budget.cut_short,
        "stopped": stopped,
        "tried": [t.to_json() for t in tried],
        "front": pairing.front([t.to_json() for t in tried], "margin"),  # latency against the search margin
        "paired": paired,
        "winner": winner.index if winner else None,
        "evaluation": evaluation,
        "fallback": fallback,
        "files": {"search": [ref.name(i) for i in search_files], "evaluation": [ref.name(i) for i in evaluation_files]},
        "established": established(winner, tried, paired, stopped, evaluation, fallback, budget),
    }
    record["settled"] = {
        c: {
            "series": fixed[c]["series"],
            "flops_share": share,
            "why": f"{share * 100:.2g} % of the chain's FLOPs (below chain.search.settle_share, "
            f"{settle_share:.0%}): no choice among its series moves the chain's time "
            f"beyond what paired timing resolves, so the most faithful validated one is used, not the fastest by noise",
        }
        for c, share in shares.items()
    }
    note = {c: f"; {c} settled: {v['why']}" for c, v in record["settled"].items() if fallback is None}
    return {c: selection.pick(ranked[c][device], chosen[c], reason + note.get(c, "")) for c in components}, record


def decide(spec, specs, ladders, components, pair: tuple[Try, Try], reference, point, threads, device) -> dict:
    """The two fastest passing assignments timed against each other (alternating, warm, one process each)."""
    contenders = []
    for t in pair:
        assignment = {c: ladders[c][p] for c, p in zip(components, t.positions, strict=True)}
        recipe = {
            "builder": "workflow_lib.chains.harness:chain_step",
            "args": {
                "chain": spec.slice("scoring", "settings", "roles"),
                "specs": {c: s.to_json() for c, s in specs.items()},
                "choices": preferences_json({c: [choice_of(e, device)] for c, e in assignment.items()}),
                "reference": reference,
                "point": point,
                "threads": threads,
            },
        }
        key = ", ".join(f"{c} {e['series']}" for c, e in sorted(assignment.items()))
        contenders.append(pairing.Contender(f"#{t.index}", recipe, t.margin, t.quantized_nodes, key))
    return pairing.decide_between(*contenders, pairing.PairPolicy.from_settings(spec.search.get("paired")))


def established(winner, tried, paired, stopped, evaluation, fallback, budget) -> str:
    """What the search can claim, and no more."""
    cut = " (cut short by its safety time box: another machine may have gone further)" if budget.cut_short else ""
    if winner is None:
        return f"no assignment of the {len(tried)} tried passed every gate on the search files{cut}"
    text = f"of {len(tried)} assignments tried ({stopped}){cut}, the fastest that passed every gate on the search files"
    if paired is None:
        text += "; no second assignment passed, so none was timed against it"
    elif paired["outcome"] == "tie":
        other = paired["b"] if paired["winner"] == paired["a"] else paired["a"]
        text += f"; tied with {other} in paired timing ({paired['why']}); tie broken by {paired['tie_broken_by']}"
    else:
        text += f"; faster than the runner-up in paired timing ({paired['rounds']} rounds, ratio {paired['ratio']:.3f})"
    if fallback is not None:
        return text + f"; it failed on the evaluation files, so the safe assignment `{fallback['assignment']}` ships"
    return text + f"; then judged once on the evaluation files: {evaluation['status']}"


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON)")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--flops", nargs="*", default=[], help="the components' export sidecars (FLOPs per point)")
    p.add_argument("--samples", type=json.loads, default={}, help="component -> {calibration, reference} paths")
    p.add_argument("--out", required=True, help="the decision (JSON): what the bundle stage ships")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        flops = {c: n for (_, c, point), n in read_flops(a.flops).items() if point == a.point}
        devices = sorted(set.intersection(*(set(ranked["components"].get(c, {})) for c in specs)))
        components: dict[str, dict[str, Any]] = {c: {} for c in specs}
        searches = []
        for device in devices:
            picks, record = chain_search(
                specs, a.chain, ranked["components"], a.reference, a.threads, device, a.samples, flops
            )
            for c, chosen in picks.items():
                components[c][device] = chosen
            searches.append(record)
        ref = harness.Reference.load(a.reference)
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": "per component, candidates as in " + selection.RULE + "; decided on the whole chain, on the "
            "search files: the fastest assignment found whose chain passes every gate, the last two timed against "
            "each other; then judged once on the evaluation files (failing there: chain.safe ships)",
            "inputs": harness.describe_inputs(ref.splits, _hashes(a.reference)),
            "components": components,
            "search": searches,
            "failures": selection.failures(ranked),
        }
        write_json(a.out, manifest)
        for record in searches:
            log.info(
                "chain search on %s: %d assignments tried in %.1f s; %s; %s",
                record["device"],
                len(record["tried"]),
                record["budget"]["seconds"],
                record["stopped"],
                record["established"],
            )

    cli.run("chain_search", run, p, argv)


def _hashes(reference: str) -> dict[str, str]:
    return {r["file"]: r["sha256"] for rs in read_json(sidecar_path(reference))["inputs"]["roles"].values() for r in rs}


if __name__ == "__main__":
    main()
