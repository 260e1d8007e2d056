"""Stage: the `int8` variant: static post-training quantization (QDQ) of the fp32 graph, with a search
for the nodes that must stay float, judged on files the calibration never saw.

Quantizing every layer is fastest and can ruin the output: a pretrained HiFi-GAN quantized
whole scored PESQ 2.3 against its fp32 self, and keeping its last upsampling stage float
brought it to 4.5 at almost the same speed. Which blocks must stay float is a property of each
model, so it is measured, on the three roles of the component's sample set (core/splits.py):
ranges from the calibration files, every decision of the search from the search files, and
each candidate that passes there confirmed on the evaluation files (under leave-one-out: on
each file, re-calibrated without it). Every gate is applied per file; the worst file decides.

1. Every quantizable node in INT8 (ONNX Runtime QDQ, per-channel s8 weights, activations per
   `quantize.activation`, `quantize.calibrate_method` ranges). If it passes, done.
2. Whole-graph transforms (runtimes/int8_recovery.py), cheapest first: cross-layer equalization
   (float-exact), then bias correction; each kept only if it lowers the all-INT8 error.
3. Each block (the module a node came from, as the exporter recorded it) is quantized alone,
   everything else float, and its error on the first search file measured: its contribution
   (log-spectral distance for audio, whose waveform SNR is dominated by harmless phase shifts;
   noise-to-signal ratio for tensors). Blocks are kept float, worst first, a candidate per step,
   until one passes (search files, then evaluation files) or nothing improves for three steps.
4. Past the first pass: single convs go back into INT8. Each float node's harm (the error with
   it alone put back) is measured; they go back least harmful first, in groups that halve on
   a failure, every group a full candidate (search files, then evaluation files).
5. A node that fails alone gets one more try with Percentile ranges for its own activations
   (ONNX Runtime's per-tensor overrides), if that lowers its error.
6. The two fastest passing candidates are timed against each other (analysis/pairing.py); a tie
   goes to the larger fidelity margin, then fewer quantized nodes.

Steps 2-5 stop when `quantize.search_seconds` is spent. The sidecar records what each technique
bought (the p50 and worst evaluation score of its best candidate) and which nodes it rescued.
Every candidate is recorded with its float blocks, p50 latency at the opt point (ONNX Runtime,
this job's cores) and its scores per file; the sidecar keeps the front (latency against the
worst evaluation score) and what was decided how. Nothing passing: the most faithful candidate
is written, marked failed, so that nothing downstream ships it.
"""

from __future__ import annotations

import ast
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..analysis import pairing, parity
from ..analysis.fidelity import nsr
from ..core import cli, host
from ..core.errors import StageError
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.gates import relative_margin
from ..core.paths import sidecar_path
from ..core.samples import Feeds, SampleSet, read_sample_set
from ..core.spec import ComponentSpec
from ..core.splits import LEAVE_ONE_OUT
from ..core.variants import Variant
from ..runtimes import int8_recovery as recovery
from ..runtimes.runner import Runner

log = logging.getLogger(__name__)
OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
SCOPES = "pkg.torch.onnx.name_scopes"  # the exporter's record of each node's module path
PATIENCE = 3
# The config section this stage reads (its variant's `settings`), validated before any job runs.
SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "the int8 variant: ONNX Runtime static QDQ quantization and the search for blocks that stay float",
    "properties": {
        "op_types": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["Conv", "ConvTranspose", "MatMul", "Gemm"],
            "description": "ONNX op types to quantize",
        },
        "per_channel": {"type": "boolean", "default": True, "description": "per-output-channel weight scales"},
        "reduce_range": {
            "enum": ["auto", True, False],
            "default": "auto",
            "description": "7-bit weights; auto: on CPUs without VNNI, where u8 x s8 products saturate",
        },
        "activation": {
            "enum": ["uint8", "int8"],
            "default": "uint8",
            "description": "uint8: asymmetric (fastest on CPUs); int8: symmetric, what TensorRT's explicit "
            "quantization takes",
        },
        "calibrate_method": {
            "enum": ["MinMax", "Entropy", "Percentile"],
            "default": "MinMax",
            "description": "how activation ranges are taken from the calibration files",
        },
        "recovery": {
            "type": "array",
            "items": {"enum": ["equalization", "bias_correction", "single_nodes", "percentile"]},
            "uniqueItems": True,
            "default": ["equalization", "bias_correction", "single_nodes", "percentile"],
            "description": "the moves the search may use besides keeping whole blocks float (module docstring)",
        },
        "search_seconds": {
            "type": "number",
            "minimum": 0,
            "default": 180,
            "description": "time box of the search for blocks to keep float, per component",
        },
        "paired": {
            "type": "object",
            "default": {},
            "description": "paired timing of the two fastest passing candidates (tie_band, min_rounds, max_seconds)",
        },
    },
}


def blocks(model: onnx.ModelProto, nodes: list[str]) -> dict[str, list[str]]:
    """Quantizable nodes grouped by the module they came from, at the shallowest depth that gives
    more than one group; a node without a recorded module is a block of its own."""
    scopes = {}
    for n in model.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        scopes[n.name] = [s for s in ast.literal_eval(meta.get(SCOPES, "[]")) if s][:-1]  # drop the op's own name
    depth = 1
    while True:
        groups: dict[str, list[str]] = {}
        for name in nodes:
            path = scopes.get(name) or []
            groups.setdefault(path[depth - 1] if len(path) >= depth else name, []).append(name)
        deeper = any(len(scopes.get(n) or []) > depth for n in nodes)
        if len(groups) > 1 or not deeper:
            return groups
        depth += 1


class _Reader:
    """ONNX Runtime's calibration data reader over the calibration samples."""

    def __init__(self, samples: list[Feeds]):
        self.it = iter(samples)

    def get_next(self) -> Feeds | None:
        return next(self.it, None)


@dataclass(frozen=True)
class Recipe:
    """One candidate: the nodes left float, the nodes whose activations take Percentile ranges instead of the
    configured method's, and the float-exact transforms applied to the graph first."""

    float_nodes: frozenset[str] = frozenset()
    percentile: frozenset[str] = frozenset()
    transforms: tuple[str, ...] = ()

    def key(self) -> tuple:
        return (tuple(sorted(self.float_nodes)), tuple(sorted(self.percentile)), self.transforms)


TRANSFORMS = ("equalization", "bias_correction")  # tried in this order, kept only if they lower the error
PERCENTILE_FRAMES = 128  # histogram calibration needs samples of one length: cut into chunks of this many frames


class Clock:
    """The search's time box: a step starts only if the time spent plus `steps` times the longest of the last
    three steps of its kind still fits (the first step of a kind is assumed to fit)."""

    def __init__(self, budget: float):
        self.budget, self.t0 = budget, time.perf_counter()
        self.recent: dict[str, list[float]] = {}
        self.stopped: str | None = None

    def took(self, kind: str, seconds: float) -> None:
        self.recent[kind] = [*self.recent.get(kind, [])[-2:], seconds]

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def fits(self, kind: str, steps: int = 1) -> bool:
        if self.elapsed() + steps * max(self.recent.get(kind, [0.0])) <= self.budget:
            return True
        self.stopped = f"time box of {self.budget:g} s spent (quantize.search_seconds)"
        return False


class Search:
    """Builds, judges and times candidates; everything it tried is in `candidates`."""

    def __init__(
        self,
        spec: ComponentSpec,
        variant: Variant,
        src: str | Path,
        sset: SampleSet,
        groups: dict[str, list[str]],
        settings: dict[str, Any],
        work: Path,
        reference: parity.Reference,
        threads: int,
    ):
        self.spec, self.variant, self.src, self.groups, self.work = spec, variant, str(src), groups, work
        self.settings, self.threads = settings, threads
        self.model = onnx.load(self.src)
        self.block_of = {n: b for b, nodes in groups.items() for n in nodes}
        names = [i.name for i in spec.inputs]
        self.calibration = sset.of("calibration", names)
        self.search = sset.of("search", names)
        self.search_files = [
            sset.splits.files[sset.files[i]] if sset.splits.files else i for i in sset.indices("search")
        ]
        self.loo = sset.splits.scheme == LEAVE_ONE_OUT
        self.folds = sset.folds(names) if self.loo else []
        self.evaluation = sset.of("evaluation", names)
        self.evaluation_files = [
            sset.splits.files[sset.files[i]] if sset.splits.files else i for i in sset.indices("evaluation")
        ]
        self.gate = spec.gate(variant.name)
        self.reference = reference
        self.refs = [reference(s) for s in self.search]
        self.opt_feeds = spec.make_inputs(spec.point("opt"))
        self.candidates: list[dict[str, Any]] = []
        self._sources: dict[tuple, str] = {}
        self._means: dict[tuple, dict[str, np.ndarray]] = {}
        self._equalized: onnx.ModelProto | None = None
        self._percentile: dict[str, Any] | None = None
        self.applied: dict[str, list[dict[str, Any]]] = {}  # what each transform did, the first time it ran
        self.clock = Clock(float(settings["search_seconds"]))

    def source(self, recipe: Recipe, calibration: list[Feeds] | None = None, cache: str = "") -> str:
        """The fp32 graph with the recipe's transforms applied, written once per distinct graph: equalization
        is float-exact; bias correction moves the biases of the convs that are quantized, from channel means
        over the calibration samples (the fold's, under leave-one-out)."""
        if not recipe.transforms:
            return self.src
        equalized = "equalization" in recipe.transforms
        corrected = ()
        if "bias_correction" in recipe.transforms:
            corrected = tuple(sorted(n for n in self.block_of if n not in recipe.float_nodes))
        key = (equalized, corrected, cache if corrected else "")
        if key not in self._sources:
            model = self.model
            if equalized:
                if "equalization" not in self.applied:
                    self._equalized, self.applied["equalization"] = recovery.equalize(self.model)
                model = self._equalized
            if corrected:
                means_key = (equalized, cache)
                if means_key not in self._means:
                    tensors = sorted({n.input[0] for n in recovery.correctable(model, self.block_of)})
                    samples = self.calibration if calibration is None else calibration
                    self._means[means_key] = recovery.channel_means(model, tensors, samples)
                model, done = recovery.bias_correct(
                    model, self._means[means_key], corrected, bool(self.settings["reduce_range"])
                )
                self.applied.setdefault("bias_correction", done)
            path = self.work / f"source{len(self._sources)}.onnx"
            onnx.save(model, str(path))
            self._sources[key] = str(path)
        return self._sources[key]

    def percentile_ranges(self) -> dict[str, Any]:
        """Every activation's Percentile range, from one calibration pass (histograms need equal lengths: chunks)."""
        if self._percentile is None:
            from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

            chunks = [
                {k: v[..., i : i + PERCENTILE_FRAMES] for k, v in s.items()}
                for s in self.calibration
                for i in range(0, max(1, next(iter(s.values())).shape[-1] - PERCENTILE_FRAMES + 1), PERCENTILE_FRAMES)
            ]
            calibrator = create_calibrator(
                self.src,
                augmented_model_path=str(self.work / "percentile.onnx"),
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"percentile": 99.999},
            )
            calibrator.collect_data(_Reader(chunks))
            ranges = calibrator.compute_data()
            self._percentile = {
                name: {"lowest": float(np.asarray(r.range_value[0])), "highest": float(np.asarray(r.range_value[1]))}
                for name, r in ranges.data.items()
            }
        return self._percentile

    def build(self, recipe: Recipe, path: Path, calibration: list[Feeds] | None = None, cache: str = "") -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        s = self.settings
        symmetric = s["activation"] == "int8"
        overrides = {}
        if recipe.percentile:
            tensors = recovery.node_tensors(self.model, recipe.percentile)
            overrides = recovery.percentile_overrides(self.percentile_ranges(), tensors)
        source = self.source(recipe, calibration, cache)
        quantize_static(
            source,
            str(path),
            _Reader(self.calibration if calibration is None else calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(s["op_types"]),
            per_channel=bool(s["per_channel"]),
            reduce_range=bool(s["reduce_range"]),
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=sorted(recipe.float_nodes),
            calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
            # ranges computed once per calibration set and source graph
            calibration_cache_path=str(self.work / f"ranges{cache}-{Path(source).stem}.json"),
            extra_options={
                "ActivationSymmetric": symmetric,
                "QuantizeBias": not symmetric,
                **({"TensorQuantOverrides": overrides} if overrides else {}),
            },
        )

    def error(self, metrics: dict[str, Any]) -> float:
        """How much worse than fp32, bigger is worse: LSD for audio, noise-to-signal ratio for tensors."""
        if self.spec.output_kind == "audio" and metrics.get("lsd_db") is not None:
            return float(metrics["lsd_db"])
        return nsr(metrics["snr_db"])

    def score(self, metrics: dict[str, Any]) -> float:
        """Fidelity, bigger is better: PESQ for audio where it could be computed, SNR otherwise."""
        if self.spec.output_kind == "audio" and metrics.get("pesq") is not None:
            return float(metrics["pesq"])
        return float(metrics["snr_db"])

    def p50_ms(self, runner: Runner, runs: int = 3) -> float:
        step = runner.prepare(self.opt_feeds)
        step()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        return float(np.median(times))

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

    def quick_error(self, recipe: Recipe) -> float:
        """The error of a recipe on the first search file (no perceptual scores): a ranking, not a verdict."""
        t0 = time.perf_counter()
        path = self.work / "quick.onnx"
        self.build(recipe, path)
        runner = parity.onnxruntime(path, self.threads)
        scores = parity.sample_scores(self.spec, self.refs[0], runner(self.search[0]), perceptual_scores=False)
        self.clock.took("quick", time.perf_counter() - t0)
        return self.error(scores)

    def contribution(self, block: str, transforms: tuple[str, ...] = ()) -> float:
        """The error with only `block` in INT8, judged on the first search file (a ranking, not a verdict)."""
        others = frozenset(n for b, ns in self.groups.items() if b != block for n in ns)
        return self.quick_error(Recipe(others, transforms=transforms))

    def candidate(self, recipe: Recipe, why: str, technique: str) -> dict[str, Any]:
        """Build, judge on the search files, time; if it passes there, confirm on the evaluation files. A recipe
        already tried is not tried again."""
        done = next((c for c in self.candidates if c["_key"] == recipe.key()), None)
        if done is not None:
            return done
        t0 = time.perf_counter()
        path = self.work / f"candidate{len(self.candidates)}.onnx"
        self.build(recipe, path)
        runner = parity.onnxruntime(path, self.threads)
        judged = parity.judge_samples(
            self.spec, self.refs, [runner(s) for s in self.search], self.gate, self.search_files
        )
        worst = parity.worst(judged.pop("per_file"))
        whole = [b for b, ns in self.groups.items() if set(ns) <= recipe.float_nodes]
        c = {
            "index": len(self.candidates),
            "float_blocks": whole,
            "partly_float": sorted({self.block_of[n] for n in recipe.float_nodes if self.block_of.get(n) not in whole}),
            "float_node_names": sorted(recipe.float_nodes),
            "float_by_block": self.by_block(recipe.float_nodes),
            "float_nodes": len(recipe.float_nodes),
            "quantized_nodes": len(self.block_of) - len(recipe.float_nodes),
            "percentile_nodes": sorted(recipe.percentile),
            "transforms": list(recipe.transforms),
            "technique": technique,
            "p50_ms": round(self.p50_ms(runner), 3),
            "metrics": worst,
            "score": self.score(worst),
            "error": self.error(worst),
            "search": judged,
            "verdict": judged["status"],
            "reason": judged["reason"],
            "why": why,
            "path": str(path),
            "_key": recipe.key(),
            "_recipe": recipe,
        }
        if c["verdict"] == "passed":
            c["evaluation"] = self.confirm(recipe, runner)
            c["verdict"] = c["evaluation"]["status"]
            c["reason"] = c["evaluation"]["reason"] and f"evaluation files: {c['evaluation']['reason']}"
            c["evaluation_score"] = self.score(c["evaluation"]["worst"])
        c["seconds"] = round(time.perf_counter() - t0, 2)
        self.clock.took("candidate", c["seconds"])
        self.candidates.append(c)
        log.info(
            "%s int8 candidate %d (%s; %d nodes float): p50 %.2f ms, search %s, %s %s",
            self.spec.name,
            c["index"],
            technique,
            c["float_nodes"],
            c["p50_ms"],
            {k: round(v, 3) for k, v in worst.items() if isinstance(v, float)},
            c["verdict"],
            c["reason"],
        )
        return c

    def confirm(self, recipe: Recipe, runner: Runner) -> dict[str, Any]:
        """The candidate judged on the evaluation files, the worst deciding; under leave-one-out each file
        is judged on a graph calibrated without it (every fold must pass)."""
        if not self.loo:
            refs = [self.reference(s) for s in self.evaluation]
            judged = parity.judge_samples(
                self.spec, refs, [runner(s) for s in self.evaluation], self.gate, self.evaluation_files
            )
        else:
            refs, outs, files = [], [], []
            for k, (train, held_out, file) in enumerate(self.folds):
                path = self.work / "fold.onnx"
                self.build(recipe, path, train, cache=f"-fold{k}")
                refs.append(self.reference(held_out))
                outs.append(parity.onnxruntime(path, self.threads)(held_out))
                files.append(file)
            judged = parity.judge_samples(self.spec, refs, outs, self.gate, files)
        judged["worst"] = parity.worst(judged.pop("per_file"))
        judged["scheme"] = "leave_one_out" if self.loo else "held-out evaluation files"
        return judged


def resolved(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in; reduce_range `auto` decided for this CPU (u8s8 saturates without VNNI)."""
    s = {k: v["default"] for k, v in SETTINGS_SCHEMA["properties"].items()} | settings
    if s["reduce_range"] == "auto":
        s["reduce_range"] = not host.has_vnni()
        s["reduce_range_reason"] = (
            "this CPU has VNNI: full-range u8 x s8 products do not saturate"
            if not s["reduce_range"]
            else "this CPU has no VNNI: 7-bit weights avoid u8 x s8 saturation in AVX2 kernels"
        )
    return s


def search(s: Search) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; the record (what was tried, what each technique bought, why it
    stopped)."""
    record: dict[str, Any] = {"blocks": {b: len(v) for b, v in s.groups.items()}, "budget_s": s.clock.budget}
    record["stopped"] = _search(s, record)
    record["search_s"] = round(s.clock.elapsed(), 2)
    return record


def _search(s: Search, record: dict[str, Any]) -> str:
    """The steps in order; why they stopped."""
    record["techniques"] = []
    first = s.candidate(Recipe(), "every quantizable node in INT8", "all_int8")
    if first["verdict"] == "passed":
        return "passed with every node quantized"
    transforms = _transforms(s, record, first)
    if transforms and s.candidates[-1]["verdict"] == "passed":
        return f"passed with every node quantized after {' + '.join(transforms)}"
    nodes_back = "single_nodes" in s.settings["recovery"]
    if len(s.block_of) == 1 or (len(s.groups) == 1 and not nodes_back):
        return "one block only: nothing to keep float"
    if len(s.groups) > 1:
        passing = _blocks_float(s, record, transforms)
        if passing is None:
            return s.clock.stopped or record.pop("no_pass")
        if not nodes_back:
            return "passed with whole blocks float (single_nodes is not in quantize.recovery)"
    else:  # one block: the node-level search starts from everything float but what it puts back
        passing = {"_recipe": Recipe(frozenset(s.block_of), transforms=transforms)}
    _nodes_back(s, record, passing)
    return s.clock.stopped or "every float node of the passing candidate was tried back in INT8"


def _transforms(s: Search, record: dict[str, Any], first: dict[str, Any]) -> tuple[str, ...]:
    """Step 2: each whole-graph transform as an all-INT8 candidate, kept where its worst search file scores
    better (the gate's metric) than without it."""
    kept: tuple[str, ...] = ()
    best = first
    for t in (t for t in TRANSFORMS if t in s.settings["recovery"]):
        if not s.clock.fits("candidate"):
            break
        c = s.candidate(Recipe(transforms=(*kept, t)), f"every node in INT8 after {' + '.join((*kept, t))}", t)
        useful = c["verdict"] == "passed" or c["score"] > best["score"]
        record["techniques"].append(
            {
                "technique": t,
                "scope": "every node",
                "score_before": best["score"],
                "score_after": c["score"],
                "kept": useful,
            }
        )
        if useful:
            kept, best = (*kept, t), c
        if c["verdict"] == "passed":
            break
    return kept


def _blocks_float(s: Search, record: dict[str, Any], transforms: tuple[str, ...]) -> dict[str, Any] | None:
    """Step 3: blocks kept float, worst contribution first, until a candidate passes (or nothing improves)."""
    contributions = {}
    if not s.clock.fits("quick", len(s.groups)):
        return None
    for b in s.groups:
        contributions[b] = s.contribution(b, transforms)
    # a list of [block, error], worst first: JSON objects lose their order when written sorted
    record["contributions"] = sorted(([b, e] for b, e in contributions.items()), key=lambda be: -be[1])
    order = [b for b, _ in record["contributions"]][: len(s.groups) - 1]  # at least one block stays quantized
    kept: list[str] = []
    best, stale = math.inf, 0
    for b in order:
        if not s.clock.fits("candidate"):
            return None
        kept.append(b)
        recipe = Recipe(frozenset(n for k in kept for n in s.groups[k]), transforms=transforms)
        c = s.candidate(recipe, f"keep {b} float too (contribution {contributions[b]:.3g})", "blocks_float")
        if c["verdict"] == "passed":
            record["techniques"].append(
                {"technique": "blocks_float", "scope": ", ".join(kept), "float_nodes": c["float_nodes"], **_bought(c)}
            )
            return c
        stale = 0 if c["error"] < best * 0.98 else stale + 1
        best = min(best, c["error"])
        if stale >= PATIENCE:
            record["no_pass"] = f"nothing left to gain: no better for {PATIENCE} steps"
            return None
    record["no_pass"] = "every block but one kept float, nothing passed"
    return None


def _nodes_back(s: Search, record: dict[str, Any], passing: dict[str, Any]) -> None:
    """Steps 4-5: the float nodes of the passing candidate back into INT8, single convs, those that hurt least
    first, in groups that halve on failure; a node that fails alone is tried once more with Percentile ranges
    for its activations (if that lowers its quick error)."""
    current: Recipe = passing["_recipe"]
    harm = {}
    if not s.clock.fits("quick", len(current.float_nodes)):
        return
    for n in sorted(current.float_nodes):
        harm[n] = s.quick_error(replace(current, float_nodes=current.float_nodes - {n}))
    pending = sorted(harm, key=harm.get)
    record["node_harm"] = [[n, s.block_of.get(n, n), round(harm[n], 4)] for n in pending]
    back, rescued, step = [], [], max(1, len(pending) // 2)
    while pending and s.clock.fits("candidate"):
        group = pending[:step]
        trial = replace(current, float_nodes=current.float_nodes - set(group))
        where = s.where(group)
        c = s.candidate(trial, f"put {where} back into INT8", "single_nodes")
        if c["verdict"] == "passed":
            current, passing = trial, c
            back += group
            pending = pending[step:]
            continue
        if step > 1:
            step = max(1, step // 2)
            continue
        node = pending.pop(0)
        try_percentile = "percentile" in s.settings["recovery"] and s.clock.fits("candidate", 2)
        rescue = _percentile_rescue(s, current, node, harm[node]) if try_percentile else None
        if rescue is not None and s.clock.fits("candidate"):
            c = s.candidate(
                rescue,
                f"put {s.where([node])} back into INT8 with Percentile ranges",
                "percentile",
            )
            if c["verdict"] == "passed":
                current, passing = rescue, c
                rescued.append(node)
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


def _percentile_rescue(s: Search, current: Recipe, node: str, plain: float) -> Recipe | None:
    """`node` back into INT8 with Percentile ranges on its activations, if that lowers its quick error by 2 %."""
    trial = replace(current, float_nodes=current.float_nodes - {node}, percentile=current.percentile | {node})
    return trial if s.quick_error(trial) < plain * 0.98 else None


def _bought(c: dict[str, Any]) -> dict[str, Any]:
    """What a technique's best candidate gives: its speed and its worst evaluation score."""
    return {"p50_ms": c.get("p50_ms"), "evaluation_score": c.get("evaluation_score"), "candidate": c.get("index")}


def decide(s: Search, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The candidate to ship: of those passing on both roles, the two fastest timed against each other;
    none passing: the most faithful on the search files."""
    passing = sorted((c for c in s.candidates if c["verdict"] == "passed"), key=lambda c: c["p50_ms"])
    if not passing:
        return max(s.candidates, key=lambda c: c["score"]), None
    if len(passing) == 1:
        return passing[0], None
    a, b = passing[:2]
    recipes = [
        {
            "builder": "workflow_lib.runtimes.ort:graph_step",
            "args": {"path": c["path"], "spec": s.spec.to_json(), "threads": s.threads, "point": "opt"},
        }
        for c in (a, b)
    ]
    record = pairing.compare(
        recipes[0],
        recipes[1],
        pairing.PairPolicy.from_settings(settings.get("paired")),
        (f"#{a['index']}", f"#{b['index']}"),
    )
    winner = pairing.break_tie(
        record,
        (relative_margin(a["evaluation"]), relative_margin(b["evaluation"])),
        (a["quantized_nodes"], b["quantized_nodes"]),
    )
    record.pop("a_ms"), record.pop("b_ms")
    return (a if winner == f"#{a['index']}" else b), record


def make(
    spec: ComponentSpec,
    variant: Variant,
    src: str | Path,
    out: str | Path,
    settings: dict[str, Any],
    calibration: str | None = None,
    reference: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    if not calibration:
        raise StageError(f"{spec.name}: the {variant.name} variant needs a sample set")
    sset = read_sample_set(calibration)
    s = resolved(settings)
    model = onnx.load(str(src))
    nodes = [n.name for n in model.graph.node if n.op_type in s["op_types"]]
    if not nodes:
        raise StageError(
            f"{spec.name}: no {'/'.join(s['op_types'])} nodes to quantize; drop {variant.name} from this "
            f"component's variants"
        )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # ONNX Runtime's quantizer advises pre-processing on every call (the graph is simplified already)
    logging.getLogger().addFilter(lambda r: "pre-process" not in r.getMessage())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=Path(out).parent) as work:
        ref = parity.reference(spec, [reference, calibration])
        searcher = Search(spec, variant, src, sset, blocks(model, nodes), s, Path(work), ref, threads)
        record = search(searcher)
        chosen, paired = decide(searcher, s)
        with atomic_path(out, suffix=".onnx") as tmp:
            shutil.copyfile(chosen["path"], tmp)
    status = "passed" if chosen["verdict"] == "passed" else "failed"
    record.update(
        seconds=round(time.perf_counter() - t0, 2),
        front=pairing.front(searcher.candidates, "evaluation_score"),  # confirmed candidates only
        chosen=chosen["index"],
        paired=paired,
        threads=threads,
        transforms_applied=searcher.applied,
        candidates=[{k: v for k, v in c.items() if k not in ("path", "_key", "_recipe")} for c in searcher.candidates],
    )
    meta = {
        **cli.made_from("quantize", variant.name, spec, src),
        "onnx_sha256": sha256_file(out),
        "calibration": str(calibration),
        "calibration_sha256": sha256_file(calibration),
        "splits": sset.splits.to_json(),
        "samples": {r: len(sset.indices(r)) for r in ("calibration", "search", "evaluation")},
        "settings": s,
        "gate": spec.gate(variant.name),
        "status": status,
        "reason": chosen["reason"] if status == "failed" else "",
        "float_blocks": chosen["float_blocks"],
        "float_nodes": chosen["float_node_names"],
        "percentile_nodes": chosen["percentile_nodes"],
        "transforms": chosen["transforms"],
        "quantized_nodes": chosen["quantized_nodes"],
        "search": record,
        "host": host.device_info(),
        "versions": versions("onnx", "onnxruntime"),
    }
    write_json(sidecar_path(out), meta)
    log.info(
        "%s: %s graph with %d nodes kept float (%s; %d candidates, %.1f s): %s",
        spec.name,
        variant.name,
        chosen["float_nodes"],
        record["stopped"],
        len(record["candidates"]),
        record["seconds"],
        status,
    )
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "quantize", make)
