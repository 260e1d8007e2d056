"""Stage: the `int8` variant: static post-training quantization (QDQ) of the fp32 graph, with a search
for the blocks that must stay float, judged on files the calibration never saw.

Quantizing every layer is fastest and can ruin the output: a pretrained HiFi-GAN quantized
whole scored PESQ 2.3 against its fp32 self, and keeping its last upsampling stage float
brought it to 4.5 at almost the same speed. Which blocks must stay float is a property of each
model, so it is measured, on the three roles of the component's sample set (core/splits.py):
ranges from the calibration files, every decision of the search from the search files, and
each candidate that passes there confirmed on the evaluation files (under leave-one-out: on
each file, re-calibrated without it). Every gate is applied per file; the worst file decides.

1. Every quantizable node in INT8 (ONNX Runtime QDQ, per-channel s8 weights, activations per
   `quantize.activation`, `quantize.calibrate_method` ranges). If it passes, done.
2. Otherwise each block (the module a node came from, as the exporter recorded it) is
   quantized alone, everything else float, and its error on the first search file measured:
   that is its contribution (log-spectral distance for audio, whose waveform SNR is dominated
   by harmless phase shifts; noise-to-signal ratio for tensors).
3. Blocks are kept float in order of contribution, worst first, a candidate per step, until one
   passes (search files, then evaluation files), nothing improves for three steps, or the time
   box (`quantize.search_seconds`) is spent.
4. Past the first pass, within the time box: each float block is put back into INT8, least
   contribution first; it stays INT8 if the candidate still passes on both.
5. The two fastest passing candidates are timed against each other (analysis/pairing.py); a tie
   goes to the larger fidelity margin, then fewer quantized nodes.

Every candidate is recorded with its float blocks, p50 latency at the opt point (ONNX Runtime,
this job's cores) and its scores per file; the sidecar keeps the front (latency against the
worst evaluation score) and what was decided how. Nothing passing: the most faithful candidate
is written, marked failed, so that nothing downstream ships it.
"""

from __future__ import annotations

import ast
import logging
import shutil
import tempfile
import time
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

    def build(
        self, float_blocks: list[str], path: Path, calibration: list[Feeds] | None = None, cache: str = ""
    ) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        s = self.settings
        symmetric = s["activation"] == "int8"
        quantize_static(
            self.src,
            str(path),
            _Reader(self.calibration if calibration is None else calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(s["op_types"]),
            per_channel=bool(s["per_channel"]),
            reduce_range=bool(s["reduce_range"]),
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[n for b in float_blocks for n in self.groups[b]],
            calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
            calibration_cache_path=str(self.work / f"ranges{cache}.json"),  # ranges computed once per calibration set
            extra_options={"ActivationSymmetric": symmetric, "QuantizeBias": not symmetric},
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

    def contribution(self, block: str) -> float:
        """The error with only `block` in INT8, judged on the first search file (a ranking, not a verdict)."""
        path = self.work / "alone.onnx"
        self.build([b for b in self.groups if b != block], path)
        runner = parity.onnxruntime(path, self.threads)
        scores = parity.sample_scores(self.spec, self.refs[0], runner(self.search[0]), perceptual_scores=False)
        return self.error(scores)

    def candidate(self, float_blocks: list[str], why: str) -> dict[str, Any]:
        """Build, judge on the search files, time; if it passes there, confirm on the evaluation files. A set of
        float blocks already tried is not tried again."""
        done = next((c for c in self.candidates if sorted(c["float_blocks"]) == sorted(float_blocks)), None)
        if done is not None:
            return done
        t0 = time.perf_counter()
        path = self.work / f"candidate{len(self.candidates)}.onnx"
        self.build(float_blocks, path)
        runner = parity.onnxruntime(path, self.threads)
        judged = parity.judge_samples(
            self.spec, self.refs, [runner(s) for s in self.search], self.gate, self.search_files
        )
        worst = parity.worst(judged.pop("per_file"))
        c = {
            "index": len(self.candidates),
            "float_blocks": list(float_blocks),
            "float_nodes": sum(len(self.groups[b]) for b in float_blocks),
            "quantized_nodes": sum(len(v) for b, v in self.groups.items() if b not in float_blocks),
            "p50_ms": round(self.p50_ms(runner), 3),
            "metrics": worst,
            "score": self.score(worst),
            "error": self.error(worst),
            "search": judged,
            "verdict": judged["status"],
            "reason": judged["reason"],
            "why": why,
            "path": str(path),
        }
        if c["verdict"] == "passed":
            c["evaluation"] = self.confirm(float_blocks, runner)
            c["verdict"] = c["evaluation"]["status"]
            c["reason"] = c["evaluation"]["reason"] and f"evaluation files: {c['evaluation']['reason']}"
            c["evaluation_score"] = self.score(c["evaluation"]["worst"])
        c["seconds"] = round(time.perf_counter() - t0, 2)
        self.candidates.append(c)
        log.info(
            "%s int8 candidate %d (%s float): p50 %.2f ms, search %s, %s %s",
            self.spec.name,
            c["index"],
            ", ".join(float_blocks) or "nothing",
            c["p50_ms"],
            {k: round(v, 3) for k, v in worst.items() if isinstance(v, float)},
            c["verdict"],
            c["reason"],
        )
        return c

    def confirm(self, float_blocks: list[str], runner: Runner) -> dict[str, Any]:
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
                self.build(float_blocks, path, train, cache=f"-fold{k}")
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


def search(s: Search, budget: float) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; the record (what was tried, why it stopped)."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"blocks": {b: len(v) for b, v in s.groups.items()}, "budget_s": budget, "stopped": None}

    def spent() -> bool:
        if time.perf_counter() - t0 > budget:
            record["stopped"] = f"time box of {budget:g} s spent (quantize.search_seconds)"
            return True
        return False

    first = s.candidate([], "every quantizable node in INT8")
    if first["verdict"] == "passed":
        record["stopped"] = "passed with every node quantized"
        return record
    if len(s.groups) == 1:
        record["stopped"] = "one block only: nothing to keep float"
        return record
    contributions = {}
    for b in s.groups:
        if spent():
            break
        contributions[b] = s.contribution(b)
    # a list of [block, error], worst first: JSON objects lose their order when written sorted
    record["contributions"] = sorted(([b, e] for b, e in contributions.items()), key=lambda be: -be[1])
    order = [b for b, _ in record["contributions"]][: len(s.groups) - 1]  # at least one block stays quantized
    kept, best, stale, passing = [], first["error"], 0, None
    for b in order:
        if spent():
            break
        kept.append(b)
        c = s.candidate(list(kept), f"keep {b} float too (contribution {contributions[b]:.3g})")
        if c["verdict"] == "passed":
            passing = c
            break
        stale = 0 if c["error"] < best * 0.98 else stale + 1
        best = min(best, c["error"])
        if stale >= PATIENCE:
            record["stopped"] = f"nothing left to gain: no better for {PATIENCE} steps"
            break
    else:
        record["stopped"] = record["stopped"] or "every block but one tried"
    if passing is None:
        return record
    # past the first pass: give each float block back to INT8, least contribution first
    current = list(passing["float_blocks"])
    for b in sorted(current, key=lambda b: contributions.get(b, 0.0)):
        if spent():
            return record
        trial = [x for x in current if x != b]
        c = s.candidate(trial, f"put {b} back into INT8 (contribution {contributions.get(b, 0.0):.3g})")
        if c["verdict"] == "passed":
            current = trial
    record["stopped"] = "every float block of the passing candidate was tried back in INT8"
    return record


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
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=Path(out).parent) as work:
        ref = parity.reference(spec, [reference, calibration])
        searcher = Search(spec, variant, src, sset, blocks(model, nodes), s, Path(work), ref, threads)
        record = search(searcher, float(s["search_seconds"]))
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
        candidates=[{k: v for k, v in c.items() if k != "path"} for c in searcher.candidates],
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
        "quantized_nodes": chosen["quantized_nodes"],
        "search": record,
        "host": host.device_info(),
        "versions": versions("onnx", "onnxruntime"),
    }
    write_json(sidecar_path(out), meta)
    log.info(
        "%s: %s graph with %s kept float (%s; %d candidates, %.1f s): %s",
        spec.name,
        variant.name,
        ", ".join(chosen["float_blocks"]) or "nothing",
        record["stopped"],
        len(record["candidates"]),
        record["seconds"],
        status,
    )
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "quantize", make)
