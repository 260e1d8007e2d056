"""Stage: the `int8` variant: static post-training quantization (QDQ) of the fp32 graph, the nodes that must
stay float found by a search on the search files (graphs/int8_search.py; the quantization itself:
graphs/int8.py). The evaluation files are not read here: they judge what ships, after the decision.

The sidecar records every candidate (its float nodes per block, p50 at the opt point, scores on the search
files), what each technique bought, the front, the paired decision, the work the search took and whether
its safety time box cut it short. `status` is `passed` only if the chosen graph passed on the search files;
a failed graph is never shipped (its validation markers fail without loading it).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from ..analysis import pairing, parity
from ..analysis.gates import Statistic
from ..core.errors import StageError
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.samples import read_sample_set
from ..core.spec import ComponentSpec
from ..core.variants import Variant
from ..graphs.int8_search import Search, choose, search
from ..jobs import cli, host

log = logging.getLogger(__name__)
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
        "max_candidates": {
            "type": "integer",
            "minimum": 1,
            "default": 12,
            "description": "work budget: INT8 graphs the search may build and judge on the search files, per component",
        },
        "max_probes": {
            "type": "integer",
            "minimum": 0,
            "default": 48,
            "description": "work budget: quick probes (one search file, no perceptual scores) ranking blocks, nodes",
        },
        "search_files": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": "judge candidates on an even spread of this many search files (null: all of them)",
        },
        "search_seconds": {
            "type": ["number", "null"],
            "minimum": 0,
            "default": 900,
            "description": "safety stop only: a search it stops is marked cut short (work budgets decide)",
        },
        "paired": {
            "type": "object",
            "default": {},
            "description": "paired timing of the two fastest passing candidates (tie_band, min_rounds, max_seconds)",
        },
    },
}


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
    nodes = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in s["op_types"]]
    if not nodes:
        raise StageError(
            f"{spec.name}: no {'/'.join(s['op_types'])} nodes to quantize; drop {variant.name} from this "
            f"component's variants"
        )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # ONNX Runtime's quantizer advises pre-processing on every call (the graph is simplified already)
    logging.getLogger().addFilter(lambda r: "pre-process" not in r.getMessage())
    statistic = Statistic.from_settings(spec.raw.get("gating"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=Path(out).parent) as work:
        ref = parity.reference(spec, [reference, calibration])
        searcher = Search(spec, variant, src, sset, nodes, s, Path(work), ref, threads, statistic)
        record = search(searcher)
        chosen, paired = choose(searcher, s["paired"])
        with atomic_path(out, suffix=".onnx") as tmp:
            shutil.copyfile(chosen.path, tmp)
    status = chosen.verdict
    reason = f"no candidate passed on the search files: {chosen.reason}" if status == "failed" else ""
    record.update(
        seconds=round(time.perf_counter() - t0, 2),
        front=pairing.front([c.to_json() for c in searcher.candidates], "score"),  # on the search files
        chosen=chosen.index,
        paired=paired,
        threads=threads,
        transforms_applied=searcher.quantizer.applied,
        candidates=[c.to_json() for c in searcher.candidates],
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
        "output_kind": spec.output_kind,
        "statistic": statistic.describe(),
        "status": status,
        "reason": reason,
        "float_blocks": chosen.float_blocks,
        "float_nodes": chosen.float_node_names,
        "percentile_nodes": chosen.percentile_nodes,
        "transforms": chosen.transforms,
        "quantized_nodes": chosen.quantized_nodes,
        "search": record,
        "host": host.device_info(),
        "versions": versions("onnx", "onnxruntime"),
    }
    write_json(sidecar_path(out), meta)
    log.info(
        "%s: %s graph with %d nodes kept float (%s; %d candidates, %.1f s%s): %s %s",
        spec.name,
        variant.name,
        chosen.float_nodes,
        record["stopped"],
        len(record["candidates"]),
        record["seconds"],
        ", cut short" if record["cut_short"] else "",
        status,
        reason,
    )
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "quantize", make)
