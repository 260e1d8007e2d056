"""Stage: the `bf16` variant: the fp32 graph, to be run in bf16 arithmetic, with the nodes that must keep f32
marked (graphs/bf16.py), found by measurement on the search files.

bf16 keeps fp32's exponent range, so what overflows fp16 does not here; it keeps 8 bits of mantissa, so
arithmetic that turns small differences into discrete choices (an f0-to-bin quantizer) breaks. The
component's `fp32_ops` (the op types kept out of fp16) are marked first; if the graph then fails its gate
on the search files, every float op type is marked (which must pass) and each is given back to bf16, most
frequent first, kept only where the gate fails without it. Judged by OpenVINO at bf16 inference precision,
the runtime that honours per-node marks, where this CPU has native bf16 (jobs/host.py); elsewhere the
configured marks are written unsearched, and the record says why.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from ..analysis import parity
from ..analysis.gates import Statistic, relative_margin
from ..core.errors import Unavailable
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.samples import read_sample_set
from ..core.spec import ComponentSpec
from ..core.variants import Variant
from ..graphs import bf16
from ..jobs import cli, host
from ..runtimes import onnxio, ov

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io", "gate", "fp32_ops")
SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "the bf16 variant: the search for the nodes that keep f32",
    "properties": {
        "search_files": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": 6,
            "description": "judge each trial on an even spread of this many search files (null: all of them)",
        },
    },
}
FLOAT_OPS_NEVER_MARKED = ("Cast", "Shape", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Concat", "Slice")


class Trials:
    """Marked graphs judged on the search files by OpenVINO in bf16, each trial recorded."""

    def __init__(self, spec, variant, model, samples, files, refs, threads, work: Path):
        self.spec, self.variant, self.model, self.threads, self.work = spec, variant, model, threads, work
        self.samples, self.files, self.refs = samples, files, refs
        self.statistic = Statistic.from_settings(spec.raw.get("gating"))
        self.record: list[dict[str, Any]] = []

    def judge(self, keep: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
        path, xml = self.work / "trial.onnx", self.work / "trial.xml"
        onnxio.save(bf16.mark(self.model, keep), path)
        ov.write_ir(path, xml, [n.name for n in bf16.marked(bf16.mark(self.model, keep))])
        runner = ov.OpenVinoRunner(str(xml), self.threads, "bf16")
        outs = [runner(s) for s in self.samples]
        verdict = parity.judge_samples(
            self.spec, self.refs, outs, self.spec.gate(self.variant.name), self.files, self.statistic
        )
        verdict.pop("per_file")
        self.record.append({"fp32_ops": sorted(keep), "status": verdict["status"], "margin": relative_margin(verdict)})
        return verdict, ov.precisions(runner.compiled)


def search(trials: Trials, manual: set[str]) -> tuple[set[str], dict[str, Any], dict[str, str]]:
    """The op types to keep f32: the configured ones if they pass; else a greedy one-minimal set (every float op
    type marked first, which must pass, then each given back, most frequent first)."""
    verdict, precisions = trials.judge(manual)
    if verdict["status"] == "passed":
        return manual, verdict, precisions
    counts = onnxio.summary(trials.model)["op_types"]
    candidates = sorted(set(counts) - manual - set(FLOAT_OPS_NEVER_MARKED), key=lambda o: (-counts[o], o))
    keep = manual | set(candidates)
    verdict, precisions = trials.judge(keep)
    if verdict["status"] != "passed":
        return keep, verdict, precisions
    for op in candidates:
        trial = keep - {op}
        outcome, seen = trials.judge(trial)
        if outcome["status"] == "passed":
            keep, verdict, precisions = trial, outcome, seen
    return keep, verdict, precisions


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
    model = onnx.load(str(src))
    manual = set(spec.fp32_ops)
    t0 = time.perf_counter()
    ok, why = host.native("bf16")
    keep, verdict, precisions, tried = manual, None, {}, []
    if ok and calibration:
        try:
            ov.devices(variant.name)
        except Unavailable as e:
            ok, why = False, str(e)
    if ok and calibration:
        sset = read_sample_set(calibration)
        names = [i.name for i in spec.inputs]
        samples, files = sset.judged("search", names, settings.get("search_files", 6))
        ref = parity.reference(spec, [reference, calibration])
        with tempfile.TemporaryDirectory(prefix=".bf16.", dir=Path(out).parent) as work:
            trials = Trials(spec, variant, model, samples, files, [ref(s) for s in samples], threads, Path(work))
            keep, verdict, precisions = search(trials, manual)
            tried = trials.record
    marked = bf16.mark(model, keep)
    with atomic_path(out, suffix=".onnx") as tmp:
        onnxio.save(marked, tmp)
    status = "not searched" if verdict is None else verdict["status"]
    meta = {
        **cli.made_from("bf16", variant.name, spec, src),
        "onnx_sha256": sha256_file(out),
        "fp32_ops": sorted(keep),
        "configured_fp32_ops": sorted(manual),
        "keep_fp32_nodes": [n.name for n in bf16.marked(marked)],
        "status": "failed" if status == "failed" else "passed",
        "reason": (verdict or {}).get("reason", "") if status == "failed" else "",
        "search": {
            "judged_by": "OpenVINO at bf16 inference precision" if verdict else None,
            "not_searched": None if verdict else why or "no sample set",
            "verdict": verdict,
            "trials": tried,
            "layers": {p: sum(v == p for v in precisions.values()) for p in sorted(set(precisions.values()))},
            "seconds": round(time.perf_counter() - t0, 2),
        },
        "gate": spec.gate(variant.name),
        "host": host.device_info(),
        "cpu_features": host.cpu_features(),
        "versions": versions("onnx", "openvino"),
    }
    write_json(sidecar_path(out), meta)
    log.info("%s: bf16 graph, f32 kept for %s (%s): %s", spec.name, sorted(keep) or "nothing", status, meta["reason"])
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "bf16", make)
