"""Stage: the `fp16` variant: the fp32 graph converted to fp16 (fp32 I/O kept), checked against PyTorch
at the fp16 gate.

TensorRT 11 and TensorRT-RTX have no fp16 builder flag: precision lives in the graph,
and the engine is built strongly typed from it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import onnx
from onnxconverter_common import float16

from ..analysis import parity
from ..core.errors import ParityError
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec
from ..core.variants import Variant
from ..jobs import cli
from ..runtimes import onnxio

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io", "gate", "fp32_ops")  # what this stage reads of a component (core/declarations.py)


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def drop_fp16_round_trips(model: onnx.ModelProto, original: onnx.ModelProto) -> int:
    """Undo fp16 rounding that onnxconverter-common puts between fp32-kept ops.

    The converter casts every fp32-kept node's output to fp16 and back before the next
    fp32-kept node, and may store the constants such nodes read as fp16; a chain kept in
    fp32 (an f0 quantizer) then still rounds through fp16. This rewires each
    Cast(fp16) -> Cast(fp32) pair to skip the fp16 step and points a Cast(fp32) of a
    converted constant at the original fp32 value. Returns how many were fixed.
    """
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    fp32_consts = {i.name: i for i in original.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    now16 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    restored: dict[str, str] = {}
    fixed = 0
    for node in graph.node:
        if _cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        src = producer.get(node.input[0])
        if src is not None and _cast_to(src) == onnx.TensorProto.FLOAT16:
            node.input[0] = src.input[0]
            fixed += 1
        elif node.input[0] in now16 and node.input[0] in fp32_consts:
            name = node.input[0]
            if name not in restored:
                restored[name] = f"{name}__fp32"
                const = onnx.TensorProto()
                const.CopyFrom(fp32_consts[name])
                const.name = restored[name]
                graph.initializer.append(const)
            node.input[0] = restored[name]
            fixed += 1
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for n in [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]:
        graph.node.remove(n)
    for i in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(i)
    return fixed


def _convert(model: onnx.ModelProto, fp32_ops: set[str]) -> tuple[onnx.ModelProto, int]:
    """fp16 graph with fp32 I/O, `fp32_ops` (and the converter's own block list) left in fp32."""
    work = onnx.ModelProto()
    work.CopyFrom(model)  # the converter edits its input in place
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | fp32_ops)
    converted = float16.convert_float_to_float16(work, keep_io_types=True, op_block_list=block)
    return converted, drop_fp16_round_trips(converted, model)


def _check(
    spec: ComponentSpec, variant: str, converted: onnx.ModelProto, reference: parity.Infer, path: Path
) -> dict[str, Any]:
    onnxio.save(converted, path)
    return parity.check(spec, reference, parity.onnxruntime(path), variant)


def search_fp32_ops(
    spec: ComponentSpec, variant: str, model: onnx.ModelProto, manual: set[str], reference: parity.Infer, path: Path
) -> tuple[set[str], onnx.ModelProto, int, dict[str, Any], list[dict[str, Any]]] | None:
    """The op types that must stay fp32 for the graph to pass parity at min/opt/max, or None.

    Greedy one-minimal search with the parity check as the oracle: start from every op type in
    fp32 (which must pass), then try returning each to fp16, most frequent first (those are
    the ones worth running in fp16), keeping it fp32 only if the graph fails without it.
    """
    counts = onnxio.summary(model)["op_types"]
    candidates = sorted(set(counts) - manual - set(float16.DEFAULT_OP_BLOCK_LIST), key=lambda o: (-counts[o], o))
    keep = set(candidates)
    converted, round_trips = _convert(model, manual | keep)
    result = _check(spec, variant, converted, reference, path)
    trials = [{"fp32_ops": sorted(keep), "ok": result["ok"]}]
    if not result["ok"]:
        return None
    for op in candidates:
        trial = keep - {op}
        graph, trips = _convert(model, manual | trial)
        outcome = _check(spec, variant, graph, reference, path)
        trials.append({"fp16": op, "ok": outcome["ok"]})
        if outcome["ok"]:
            keep, converted, round_trips, result = trial, graph, trips, outcome
    onnxio.save(converted, path)  # leave the chosen graph (already checked) at `path`
    return keep, converted, round_trips, result, trials


def make(
    spec: ComponentSpec,
    variant: Variant,
    src: str | Path,
    out: str | Path,
    settings: dict[str, Any] | None = None,
    calibration: str | None = None,
    reference: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Convert with the configured fp32_ops; if parity fails, search for the op types that must stay fp32."""
    model = onnx.load(str(src))
    reference = parity.reference(spec, [reference])  # keeps what it computes: the search re-checks the same points
    manual = set(spec.fp32_ops)
    t0 = time.perf_counter()
    converted, round_trips = _convert(model, manual)
    seconds = time.perf_counter() - t0
    search: dict[str, Any] | None = None
    with atomic_path(out, suffix=".onnx") as tmp:
        result = _check(spec, variant.name, converted, reference, tmp)
        if not result["ok"]:
            first = parity.describe_failure(spec, result, f"{variant.name} graph")
            log.warning("%s; searching for the op types that must stay fp32", first)
            t1 = time.perf_counter()
            found = search_fp32_ops(spec, variant.name, model, manual, reference, tmp)
            if found is None:
                raise ParityError(
                    first + "; no mixed-precision graph passes, not even with every op type in fp32: "
                    f"loosen gates.{variant.name} or drop {variant.name} for this component"
                )
            auto, converted, round_trips, result, trials = found
            search = {
                "auto_fp32_ops": sorted(auto),
                "trials": trials,
                "seconds": round(time.perf_counter() - t1, 3),
                "first_failure": first,
            }
            log.info(
                "%s: fp16 passes with %s kept in fp32 (%d trials, %.1f s)",
                spec.name,
                sorted(auto),
                len(trials),
                search["seconds"],
            )
    kept = manual | set(search["auto_fp32_ops"] if search else ())
    meta = {
        **cli.made_from("fp16", variant.name, spec, src),
        "onnx_sha256": sha256_file(out),
        "keep_io_types": True,
        "fp32_ops": list(spec.fp32_ops),
        "search": search,
        "nodes_fp32": sum(1 for n in converted.graph.node if n.op_type in kept | set(float16.DEFAULT_OP_BLOCK_LIST)),
        "nodes": len(converted.graph.node),
        "fp16_round_trips_removed": round_trips,
        "convert_seconds": round(seconds, 3),
        "graph": onnxio.summary(converted),
        "parity": result,
        "versions": versions("onnx", "onnxconverter-common", "onnxruntime"),
    }
    write_json(sidecar_path(out), meta)
    log.info("%s: fp16 graph written (%d of %d nodes fp32)", spec.name, meta["nodes_fp32"], meta["nodes"])
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "fp16", make)
