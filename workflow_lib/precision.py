"""Stage: fp32 ONNX -> fp16 ONNX (fp32 I/O kept), checked against PyTorch at fp16 tolerances.

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

from . import cli, onnxio, parity
from .config import ComponentSpec
from .errors import ParityError
from .io import atomic_path, now, sha256_file, sidecar_path, versions, write_json

log = logging.getLogger(__name__)


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


def to_fp16(spec: ComponentSpec, src: str | Path, out: str | Path) -> dict[str, Any]:
    model = onnx.load(str(src))
    original = onnx.ModelProto()
    original.CopyFrom(model)  # the converter edits its input in place
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(spec.fp32_ops))
    t0 = time.perf_counter()
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    round_trips = drop_fp16_round_trips(converted, original)
    seconds = time.perf_counter() - t0
    with atomic_path(out, suffix=".onnx") as tmp:
        onnxio.save(converted, tmp)
        result = parity.check(spec, parity.reference(spec), parity.onnxruntime(tmp), "fp16")
        if not result["ok"]:
            raise ParityError(parity.describe_failure(spec, result, "fp16 graph")
                                     + "; keep the offending op types in fp32 with fp32_ops, or loosen tolerance.fp16")
    meta = {"stage": "precision", "model": spec.model, "component": spec.component, "created": now(),
            "input": str(src), "input_sha256": sha256_file(src), "onnx_sha256": sha256_file(out),
            "keep_io_types": True, "fp32_ops": list(spec.fp32_ops),
            "fp16_round_trips_removed": round_trips, "convert_seconds": round(seconds, 3),
            "graph": onnxio.summary(converted), "parity": result,
            "versions": versions("onnx", "onnxconverter-common", "onnxruntime")}
    write_json(sidecar_path(out), meta)
    log.info("%s: fp16 graph written in %.2f s", spec.label, seconds)
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True)
    cli.run("precision", lambda a: to_fp16(a.spec, a.onnx, a.out), p, argv)


if __name__ == "__main__":
    main()
