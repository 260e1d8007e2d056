"""The search for an INT8 graph that passes its gate: which nodes stay float, which transforms help, which
ranges rescue a node, decided on the search files alone (the evaluation files judge what ships, once, after
the deployment decision: analysis/heldout.py).

Quantizing every layer is fastest and can ruin the output: the demo's pretrained audio model quantized whole
scored far below its gate against its fp32 self, and keeping its last upsampling stage float brought it far
above at almost the same speed (BENCHMARKS.md). Which blocks must stay float is a property of each model, so
it is measured, on the roles of the component's sample set (core/splits.py): ranges from the calibration
files, every choice from the search files.

1. Every quantizable node in INT8. If it passes, done.
2. Whole-graph transforms (graphs/int8_recovery.py), cheapest first: cross-layer equalization (float-
   exact), then bias correction; each kept only if it lowers the all-INT8 error.
3. Each block (the module a node came from, as the exporter recorded it) is quantized alone, everything
   else float, and its error on the first search file measured (a probe: the output kind's quick error,
   analysis/metrics.py). Blocks are kept float, worst first, a candidate per step, until one passes or
   nothing improves for three steps.
4. Past the first pass: single nodes go back into INT8, those that hurt least first (probed one by one),
   in groups that halve on a failure, every group a full candidate.
5. A node that fails alone gets one more try with Percentile ranges for its own activations, if that
   lowers its probed error.
6. The two fastest passing candidates are timed against each other (analysis/pairing.py): the faster
   wins; a tie goes to the larger margin on the search files, then to fewer quantized nodes.

The search is bounded in work: `quantize.max_candidates` candidates and `quantize.max_probes` probes, so
two machines of different speed ship the same graph; `quantize.search_seconds` is only a safety stop
that marks the result cut short. Nothing passing on the search files: the most faithful candidate is
written, marked failed, so nothing downstream ships it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from ..analysis import metrics, pairing, parity
from ..analysis.budget import Budget
from ..analysis.gates import Statistic, relative_margin
from ..core.samples import SampleSet
from ..core.spec import ComponentSpec
from ..core.variants import Variant
from ..jobs.timing import RANKING, measure
from ..runtimes.runner import Runner
from .int8 import TRANSFORMS, Quantizer, Recipe, blocks

log = logging.getLogger(__name__)
PATIENCE = 3


@dataclass
class Candidate:
    """One INT8 graph the search built and judged on the search files."""

    index: int
    technique: str
    why: str
    float_blocks: list[str]
    partly_float: list[str]
    float_node_names: list[str]
    float_by_block: dict[str, list[int]]
    float_nodes: int
    quantized_nodes: int
    percentile_nodes: list[str]
    transforms: list[str]
    p50_ms: float
    metrics: dict[str, Any]  # per metric, the worst search file's value
    score: float  # the kind's score on the worst search file (bigger is better)
    error: float  # the kind's quick error on the worst search file (bigger is worse)
    search: dict[str, Any]  # the verdict on the search files
    verdict: str
    reason: str
    margin: float
    seconds: float = 0.0
    recipe: Recipe = field(default_factory=Recipe, repr=False)
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("recipe", "path")}


class Search:
    """Builds, judges (search files) and times candidates; everything it tried is in `candidates`."""

    def __init__(
        self,
        spec: ComponentSpec,
        variant: Variant,
        src: str | Path,
        sset: SampleSet,
        nodes: list[str],
        settings: dict[str, Any],
        work: Path,
        reference: parity.Reference,
        threads: int,
        statistic: Statistic,
    ):
        self.spec, self.variant, self.settings, self.threads, self.work = spec, variant, settings, threads, work
        self.groups = blocks(onnx.load(str(src)), nodes)
        self.block_of = {n: b for b, ns in self.groups.items() for n in ns}
        names = [i.name for i in spec.inputs]
        self.sset, self.names = sset, names
        self.search, self.search_files = sset.judged("search", names, settings.get("search_files"))
        self.gate, self.statistic, self.reference = spec.gate(variant.name), statistic, reference
        self.refs = [reference(s) for s in self.search]
        self.opt_feeds = spec.make_inputs(spec.point("opt"))
        self.quantizer = Quantizer(src, settings, sset.of("calibration", names), work, self.block_of)
        self.candidates: list[Candidate] = []
        self.budget = Budget(
            settings["max_candidates"], settings["search_seconds"], "quantize.max_candidates", "quantize.search_seconds"
        )
        self.probes = Budget(
            settings["max_probes"], settings["search_seconds"], "quantize.max_probes", "quantize.search_seconds"
        )

    def p50_ms(self, runner: Runner) -> float:
        ms, _ = measure(runner.prepare(self.opt_feeds), runner.sync, RANKING)
        return float(sorted(ms)[len(ms) // 2])

    def by_block(self, nodes) -> dict[str, list[int]]:
        """Per block holding any of `nodes`: [how many of them, how many quantizable nodes it has]."""
        counts: dict[str, list[int]] = {}
        for n in nodes:
            b = self.block_of.get(n, n)
            counts.setdefault(b, [0, len(self.groups.get(b, [b]))])[0] += 1
        return counts

    def where(self, nodes: list[str]) -> str:
        """Nodes as a reader finds them: per block, how many of its quantizable nodes (`resblocks.8: 4 of 6`)."""
        return ", ".join(f"{b}: {k} of {n}" for b, (k, n) in self.by_block(nodes).items())

    def probe(self, recipe: Recipe) -> float | None:
        """The quick error of a recipe on the first search file (no perceptual scores): a ranking, not a
        verdict; None when the probe budget is spent."""
        if not self.probes.take():
            return None
        path = self.work / "probe.onnx"
        self.quantizer.build(recipe, path)
        runner = parity.onnxruntime(path, self.threads)
        values = parity.sample_scores(self.spec, self.refs[0], runner(self.search[0]), perceptual_scores=False)
        return metrics.error_of(self.spec.output_kind, values) if values["finite"] else math.inf

    def contribution(self, block: str, transforms: tuple[str, ...] = ()) -> float | None:
        """The error with only `block` in INT8, on the first search file (a ranking, not a verdict)."""
        others = frozenset(n for b, ns in self.groups.items() if b != block for n in ns)
        return self.probe(Recipe(others, transforms=transforms))

    def candidate(self, recipe: Recipe, why: str, technique: str) -> Candidate | None:
        """Build, judge on the search files, time. A recipe already tried is not tried again; None when the
        candidate budget is spent."""
        done = next((c for c in self.candidates if c.recipe.key() == recipe.key()), None)
        if done is not None or not self.budget.take():
            return done
        t0 = time.perf_counter()
        path = self.work / f"candidate{len(self.candidates)}.onnx"
        self.quantizer.build(recipe, path)
        runner = parity.onnxruntime(path, self.threads)
        judged = parity.judge_samples(
            self.spec, self.refs, [runner(s) for s in self.search], self.gate, self.search_files, self.statistic
        )
        worst = metrics.worst_values(judged.pop("per_file"))
        finite = worst.get("snr_db") is not None and worst["snr_db"] == worst["snr_db"]
        whole = [b for b, ns in self.groups.items() if set(ns) <= recipe.float_nodes]
        c = Candidate(
            index=len(self.candidates),
            technique=technique,
            why=why,
            float_blocks=whole,
            partly_float=sorted({self.block_of[n] for n in recipe.float_nodes if self.block_of.get(n) not in whole}),
            float_node_names=sorted(recipe.float_nodes),
            float_by_block=self.by_block(recipe.float_nodes),
            float_nodes=len(recipe.float_nodes),
            quantized_nodes=len(self.block_of) - len(recipe.float_nodes),
            percentile_nodes=sorted(recipe.percentile),
            transforms=list(recipe.transforms),
            p50_ms=round(self.p50_ms(runner), 3),
            metrics=worst,
            score=metrics.score_of(self.spec.output_kind, worst) if finite else -math.inf,
            error=metrics.error_of(self.spec.output_kind, worst) if finite else math.inf,
            search=judged,
            verdict=judged["status"],
            reason=judged["reason"],
            margin=relative_margin(judged),
            recipe=recipe,
            path=str(path),
        )
        c.seconds = round(time.perf_counter() - t0, 2)
        self.candidates.append(c)
        log.info(
            "%s int8 candidate %d (%s; %d nodes float): p50 %.2f ms, search files %s, %s %s",
            self.spec.name,
            c.index,
            technique,
            c.float_nodes,
            c.p50_ms,
            {k: round(v, 3) for k, v in worst.items() if isinstance(v, float)},
            c.verdict,
            c.reason,
        )
        return c


def search(s: Search) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; the record (what was tried, what each technique bought, why it
    stopped, the work it took)."""
    record: dict[str, Any] = {"blocks": {b: len(v) for b, v in s.groups.items()}}
    record["stopped"] = _search(s, record)
    record["budget"] = {"candidates": s.budget.record(), "probes": s.probes.record()}
    record["cut_short"] = s.budget.cut_short or s.probes.cut_short
    record["search_s"] = round(s.budget.elapsed(), 2)
    return record


def _stopped(s: Search, default: str) -> str:
    return s.budget.stopped or s.probes.stopped or default


def _search(s: Search, record: dict[str, Any]) -> str:
    """The steps in order; why they stopped."""
    record["techniques"] = []
    first = s.candidate(Recipe(), "every quantizable node in INT8", "all_int8")
    if first.verdict == "passed":
        return "passed with every node quantized"
    transforms = _transforms(s, record, first)
    if transforms and s.candidates[-1].verdict == "passed":
        return f"passed with every node quantized after {' + '.join(transforms)}"
    nodes_back = "single_nodes" in s.settings["recovery"]
    if len(s.block_of) == 1 or (len(s.groups) == 1 and not nodes_back):
        return "one block only: nothing to keep float"
    if len(s.groups) > 1:
        passing = _blocks_float(s, record, transforms)
        if passing is None:
            return _stopped(s, record.pop("no_pass", "nothing passed"))
        if not nodes_back:
            return "passed with whole blocks float (single_nodes is not in quantize.recovery)"
        current = passing.recipe
    else:  # one block: the node-level search starts from everything float but what it puts back
        passing, current = None, Recipe(frozenset(s.block_of), transforms=transforms)
    _nodes_back(s, record, passing, current)
    return _stopped(s, "every float node of the passing candidate was tried back in INT8")


def _transforms(s: Search, record: dict[str, Any], first: Candidate) -> tuple[str, ...]:
    """Step 2: each whole-graph transform as an all-INT8 candidate, kept where its worst search file scores
    better (the kind's score) than without it."""
    kept: tuple[str, ...] = ()
    best = first
    for t in (t for t in TRANSFORMS if t in s.settings["recovery"]):
        c = s.candidate(Recipe(transforms=(*kept, t)), f"every node in INT8 after {' + '.join((*kept, t))}", t)
        if c is None:
            break
        useful = c.verdict == "passed" or c.score > best.score
        record["techniques"].append(
            {"technique": t, "scope": "every node", "score_before": best.score, "score_after": c.score, "kept": useful}
        )
        if useful:
            kept, best = (*kept, t), c
        if c.verdict == "passed":
            break
    return kept


def _blocks_float(s: Search, record: dict[str, Any], transforms: tuple[str, ...]) -> Candidate | None:
    """Step 3: blocks kept float, worst contribution first, until a candidate passes (or nothing improves)."""
    contributions = {}
    for b in s.groups:
        error = s.contribution(b, transforms)
        if error is None:
            record["no_pass"] = "the probe budget ran out while ranking the blocks"
            return None
        contributions[b] = error
    # a list of [block, error], worst first: JSON objects lose their order when written sorted
    record["contributions"] = sorted(([b, e] for b, e in contributions.items()), key=lambda be: -be[1])
    order = [b for b, _ in record["contributions"]][: len(s.groups) - 1]  # at least one block stays quantized
    kept: list[str] = []
    best, stale = math.inf, 0
    for b in order:
        kept.append(b)
        recipe = Recipe(frozenset(n for k in kept for n in s.groups[k]), transforms=transforms)
        c = s.candidate(recipe, f"keep {b} float too (contribution {contributions[b]:.3g})", "blocks_float")
        if c is None:
            return None
        if c.verdict == "passed":
            record["techniques"].append(
                {"technique": "blocks_float", "scope": ", ".join(kept), "float_nodes": c.float_nodes, **_bought(c)}
            )
            return c
        stale = 0 if c.error < best * 0.98 else stale + 1
        best = min(best, c.error)
        if stale >= PATIENCE:
            record["no_pass"] = f"nothing left to gain: no better for {PATIENCE} steps"
            return None
    record["no_pass"] = "every block but one kept float, nothing passed"
    return None


def _nodes_back(s: Search, record: dict[str, Any], passing: Candidate | None, current: Recipe) -> None:
    """Steps 4-5: the float nodes of the passing recipe back into INT8, least harmful first, in groups that
    halve on failure; a node that fails alone is tried once more with Percentile ranges for its activations
    (if that lowers its probed error)."""
    harm = {}
    for n in sorted(current.float_nodes):
        error = s.probe(replace(current, float_nodes=current.float_nodes - {n}))
        if error is None:
            break
        harm[n] = error
    pending = sorted(harm, key=harm.get)
    record["node_harm"] = [[n, s.block_of.get(n, n), round(harm[n], 4)] for n in pending]
    back, rescued, step = [], [], max(1, len(pending) // 2)
    while pending:
        group = pending[:step]
        trial = replace(current, float_nodes=current.float_nodes - set(group))
        c = s.candidate(trial, f"put {s.where(group)} back into INT8", "single_nodes")
        if c is None:
            break
        if c.verdict == "passed":
            current, passing = trial, c
            back += group
            pending = pending[step:]
            continue
        if step > 1:
            step = max(1, step // 2)
            continue
        node = pending.pop(0)
        if "percentile" in s.settings["recovery"]:
            trial = replace(current, float_nodes=current.float_nodes - {node}, percentile=current.percentile | {node})
            error = s.probe(trial)
            if error is not None and error < harm[node] * 0.98:
                c = s.candidate(trial, f"put {s.where([node])} back into INT8 with Percentile ranges", "percentile")
                if c is not None and c.verdict == "passed":
                    current, passing = trial, c
                    rescued.append(node)
    if passing is not None:
        record["techniques"].append(
            {
                "technique": "single_nodes",
                "scope": s.where(back) or "none",
                "float_nodes": len(current.float_nodes),
                **_bought(passing),
            }
        )
    if rescued:
        record["techniques"].append({"technique": "percentile", "scope": s.where(rescued)})
    record["rescued"] = {"single_nodes": back, "percentile": rescued}


def _bought(c: Candidate) -> dict[str, Any]:
    """What a technique's best candidate gives: its speed and its worst search-file score."""
    return {"p50_ms": c.p50_ms, "search_score": c.score, "candidate": c.index}


def choose(s: Search, paired: dict[str, Any]) -> tuple[Candidate, dict[str, Any] | None]:
    """The candidate to ship, on the search files alone: of those passing there, the two fastest timed against
    each other; none passing: the most faithful (written, marked failed)."""
    passing = sorted((c for c in s.candidates if c.verdict == "passed"), key=lambda c: c.p50_ms)
    if not passing:
        return max(s.candidates, key=lambda c: c.score), None
    if len(passing) == 1:
        return passing[0], None
    a, b = (
        pairing.Contender(
            f"#{c.index}",
            {
                "builder": "workflow_lib.runtimes.ort:graph_step",
                "args": {"path": c.path, "spec": s.spec.to_json(), "threads": s.threads, "point": "opt"},
            },
            c.margin,
            c.quantized_nodes,
        )
        for c in passing[:2]
    )
    record = pairing.decide_between(a, b, pairing.PairPolicy.from_settings(paired))
    return (passing[0] if record["winner"] == a.name else passing[1]), record
