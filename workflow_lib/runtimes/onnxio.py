"""ONNX file helpers shared by the graph stages: atomic save and I/O description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from ..core.files import atomic_path


def save(model: onnx.ModelProto, path: str | Path) -> None:
    """Single-file save (weights inline), renamed into place only when complete."""
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)


def describe_io(model: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    def one(v: onnx.ValueInfoProto) -> dict[str, Any]:
        t = v.type.tensor_type
        dims = [
            d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
            for d in t.shape.dim
        ]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    inits = {i.name for i in model.graph.initializer}
    return {
        "inputs": [one(v) for v in model.graph.input if v.name not in inits],
        "outputs": [one(v) for v in model.graph.output],
    }


def summary(model: onnx.ModelProto) -> dict[str, Any]:
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {
        "nodes": len(model.graph.node),
        "op_types": dict(sorted(ops.items())),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        **describe_io(model),
    }
