"""Stage: the `int8` variant: static post-training quantization (QDQ) of the fp32 graph, calibrated on
the component's calibration set, with a search for the blocks that must stay float.

Quantizing every layer is fastest and can ruin the output: a pretrained HiFi-GAN quantized
whole scored PESQ 2.3 against its fp32 self here, and keeping its last upsampling stage float
brought it to 4.5 at almost the same speed. Which blocks must stay float is a property of each
model, so it is measured:

1. Every quantizable node in INT8 (ONNX Runtime QDQ, per-channel s8 weights, activations per
   `quantize.activation`, MinMax ranges computed once from the calibration set). If the
   variant's gate passes (SNR, or PESQ/STOI for audio outputs, on the calibration samples),
   done.
2. Otherwise each block (the module a node came from, as the exporter recorded it) is
   quantized alone, everything else float, and its error measured: that is its contribution
   (log-spectral distance for audio, whose waveform SNR is dominated by harmless phase
   shifts; noise-to-signal ratio for tensors).
3. Blocks are kept float in order of contribution, worst first, each step a candidate, until
   the gate passes, nothing is left to gain (no better for three steps), or the time budget
   (`quantize.search_seconds`) is spent. A graph with nothing quantized is never a candidate.

Every candidate is recorded with its float blocks, p50 latency at the opt point (ONNX Runtime,
this job's cores) and fidelity; the sidecar keeps the Pareto front (latency vs fidelity) and
ships the fastest candidate that passes, or, if none does, the most faithful one, marked failed
so that nothing downstream ships it.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..analysis import parity
from ..analysis.fidelity import gate, nsr
from ..core import cli, host
from ..core.errors import StageError
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.samples import read_samples
from ..core.spec import ComponentSpec
from ..runtimes.runner import Runner

log = logging.getLogger(__name__)
OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
SCOPES = "pkg.torch.onnx.name_scopes"  # the exporter's record of each node's module path
PATIENCE = 3


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

    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self.it = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.it, None)


class Search:
    """Builds, judges and times candidates; everything it tried is in `candidates`."""

    def __init__(
        self,
        spec: ComponentSpec,
        src: str | Path,
        samples: list[dict[str, np.ndarray]],
        groups: dict[str, list[str]],
        settings: dict[str, Any],
        work: Path,
        reference: parity.Reference,
    ):
        self.spec, self.src, self.samples, self.groups, self.work = spec, str(src), samples, groups, work
        self.settings = settings
        self.threads = len(os.sched_getaffinity(0))
        self.limits = spec.gate("int8")
        self.refs = [reference(s) for s in samples]
        self.opt_feeds = spec.make_inputs(spec.point("opt"))
        self.candidates: list[dict[str, Any]] = []

    def build(self, float_blocks: list[str], path: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        s = self.settings
        symmetric = s["activation"] == "int8"
        quantize_static(
            self.src,
            str(path),
            _Reader(self.samples),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(s["op_types"]),
            per_channel=bool(s["per_channel"]),
            reduce_range=bool(s["reduce_range"]),
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[n for b in float_blocks for n in self.groups[b]],
            calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
            calibration_cache_path=str(self.work / "ranges.json"),
            extra_options={"ActivationSymmetric": symmetric, "QuantizeBias": not symmetric},
        )

    def outputs(self, runner: Runner, first: bool = False) -> list[list[np.ndarray]]:
        return [runner(feeds) for feeds in (self.samples[:1] if first else self.samples)]

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
        """The error with only `block` in INT8, judged on the first sample (a ranking, not a verdict)."""
        path = self.work / "alone.onnx"
        self.build([b for b in self.groups if b != block], path)
        outputs = self.outputs(parity.onnxruntime(path, self.threads), first=True)
        return self.error(parity.sample_metrics(self.spec, self.refs[:1], outputs, perceptual_scores=False))

    def candidate(self, float_blocks: list[str], why: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        path = self.work / f"candidate{len(self.candidates)}.onnx"
        self.build(float_blocks, path)
        runner = parity.onnxruntime(path, self.threads)
        metrics = parity.sample_metrics(self.spec, self.refs, self.outputs(runner))
        verdict, reason = gate(metrics, self.limits)
        c = {
            "index": len(self.candidates),
            "float_blocks": list(float_blocks),
            "float_nodes": sum(len(self.groups[b]) for b in float_blocks),
            "quantized_nodes": sum(len(v) for b, v in self.groups.items() if b not in float_blocks),
            "p50_ms": round(self.p50_ms(runner), 3),
            "metrics": metrics,
            "score": self.score(metrics),
            "error": self.error(metrics),
            "verdict": verdict,
            "reason": reason,
            "why": why,
            "seconds": round(time.perf_counter() - t0, 2),
            "path": str(path),
        }
        self.candidates.append(c)
        log.info(
            "%s int8 candidate %d (%s float): p50 %.2f ms, %s -> %s %s",
            self.spec.label,
            c["index"],
            ", ".join(float_blocks) or "nothing",
            c["p50_ms"],
            {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)},
            verdict,
            reason,
        )
        return c


def pareto(candidates: list[dict[str, Any]]) -> list[int]:
    """Indices of candidates no other candidate beats on both latency and fidelity."""
    return [
        c["index"]
        for c in candidates
        if not any(
            o["p50_ms"] <= c["p50_ms"]
            and o["score"] >= c["score"]
            and (o["p50_ms"] < c["p50_ms"] or o["score"] > c["score"])
            for o in candidates
        )
    ]


def resolved(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in; reduce_range `auto` decided for this CPU (u8s8 saturates without VNNI)."""
    s = {
        "op_types": list(OP_TYPES),
        "per_channel": True,
        "reduce_range": "auto",
        "activation": "uint8",
        "calibrate_method": "MinMax",
        "search_seconds": 180.0,
        **settings,
    }
    if s["reduce_range"] == "auto":
        s["reduce_range"] = not host.has_vnni()
        s["reduce_range_reason"] = (
            "this CPU has VNNI: full-range u8 x s8 products do not saturate"
            if not s["reduce_range"]
            else "this CPU has no VNNI: 7-bit weights avoid u8 x s8 saturation in AVX2 kernels"
        )
    return s


def search(
    spec: ComponentSpec,
    src: str | Path,
    samples: list[dict[str, np.ndarray]],
    settings: dict[str, Any],
    work: Path,
    reference: parity.Reference,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the candidate to ship, the search record)."""
    model = onnx.load(str(src))
    nodes = [n.name for n in model.graph.node if n.op_type in settings["op_types"]]
    if not nodes:
        raise StageError(
            f"{spec.label}: no {'/'.join(settings['op_types'])} nodes to quantize; drop int8 from this "
            f"component's variants"
        )
    groups = blocks(model, nodes)
    s = Search(spec, src, samples, groups, settings, work, reference)
    t0, budget = time.perf_counter(), float(settings["search_seconds"])
    record: dict[str, Any] = {
        "blocks": {b: len(v) for b, v in groups.items()},
        "budget_s": budget,
        "budget_exhausted": False,
        "stopped": None,
        "contributions": None,
    }
    first = s.candidate([], "every quantizable node in INT8")
    if first["verdict"] != "passed" and len(groups) > 1:
        contributions = {}
        for b in groups:
            if time.perf_counter() - t0 > budget:
                record["budget_exhausted"] = True
                break
            contributions[b] = s.contribution(b)
        # a list of [block, error], worst first: JSON objects lose their order when written sorted
        record["contributions"] = sorted(([b, e] for b, e in contributions.items()), key=lambda be: -be[1])
        order = [b for b, _ in record["contributions"]][: len(groups) - 1]  # at least one block stays quantized
        kept, best, stale = [], first["error"], 0
        for b in order:
            if time.perf_counter() - t0 > budget:
                record["budget_exhausted"] = True
                break
            kept.append(b)
            c = s.candidate(kept, f"keep {b} float too (contribution {contributions[b]:.3g})")
            if c["verdict"] == "passed":
                record["stopped"] = "gate passed"
                break
            stale = 0 if c["error"] < best * 0.98 else stale + 1
            best = min(best, c["error"])
            if stale >= PATIENCE:
                record["stopped"] = f"nothing left to gain: no better for {PATIENCE} steps"
                break
        else:
            record["stopped"] = "every block but one tried"
    elif first["verdict"] == "passed":
        record["stopped"] = "gate passed with every node quantized"
    else:
        record["stopped"] = "one block only: nothing to keep float"
    if record["budget_exhausted"]:
        record["stopped"] = f"time budget of {budget:g} s spent (quantize.search_seconds)"
    passing = [c for c in s.candidates if c["verdict"] == "passed"]
    chosen = min(passing, key=lambda c: c["p50_ms"]) if passing else max(s.candidates, key=lambda c: c["score"])
    record.update(
        seconds=round(time.perf_counter() - t0, 2),
        pareto=pareto(s.candidates),
        chosen=chosen["index"],
        threads=s.threads,
        candidates=[{k: v for k, v in c.items() if k != "path"} for c in s.candidates],
    )
    return chosen, record


def make(
    spec: ComponentSpec,
    src: str | Path,
    out: str | Path,
    settings: dict[str, Any],
    calibration: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    if not calibration:
        raise StageError(f"{spec.label}: the int8 variant needs a calibration set")
    names = [i.name for i in spec.inputs]
    samples = [{k: s[k] for k in names} for s in read_samples(calibration)]
    s = resolved(settings)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=Path(out).parent) as work:
        chosen, record = search(spec, src, samples, s, Path(work), parity.reference(spec, [reference, calibration]))
        with atomic_path(out, suffix=".onnx") as tmp:
            shutil.copyfile(chosen["path"], tmp)
    status = "passed" if chosen["verdict"] == "passed" else "failed"
    meta = {
        **cli.made_from("quantize", "int8", spec, src),
        "onnx_sha256": sha256_file(out),
        "calibration": str(calibration),
        "calibration_sha256": sha256_file(calibration),
        "samples": len(samples),
        "settings": s,
        "gate": spec.gate("int8"),
        "status": status,
        "reason": chosen["reason"] if status == "failed" else "",
        "float_blocks": chosen["float_blocks"],
        "search": record,
        "host": host.device_info(),
        "versions": versions("onnx", "onnxruntime"),
    }
    write_json(sidecar_path(out), meta)
    log.info(
        "%s: int8 graph with %s kept float (%s; %d candidates, %.1f s): %s",
        spec.label,
        ", ".join(chosen["float_blocks"]) or "nothing",
        record["stopped"],
        len(record["candidates"]),
        record["seconds"],
        status,
    )
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "quantize", make)
