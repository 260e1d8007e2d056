"""bf16 as a graph variant: the fp32 graph, its weights untouched, with the nodes that must keep f32 arithmetic
marked. bf16 keeps fp32's range and drops mantissa (8 bits): most layers do not care, and the few that do
(an f0-to-bin quantizer: Log, Div, Floor) must stay f32, as in fp16.

A runtime that computes in bf16 by a setting (OpenVINO's inference precision) reads the marks and keeps those
nodes f32 (runtimes/ov.py); one that takes precision from the graph's types (TensorRT, strongly typed) gets
the graph retyped to bf16 with the marked nodes f32 (`typed`); PyTorch casts the whole module.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto
from onnx import numpy_helper as nh

KEEP = "workflow.keep_fp32"  # a node's metadata_props key: this node keeps f32 arithmetic under bf16


def mark(model: onnx.ModelProto, op_types: Iterable[str]) -> onnx.ModelProto:
    """A copy whose nodes of `op_types` are marked to keep f32 (every other mark dropped)."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    keep = set(op_types)
    for node in out.graph.node:
        props = [p for p in node.metadata_props if p.key != KEEP]
        del node.metadata_props[:]
        node.metadata_props.extend(props)
        if node.op_type in keep:
            node.metadata_props.add(key=KEEP, value="true")
    return out


def marked(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The nodes marked to keep f32."""
    return [n for n in model.graph.node if any(p.key == KEEP for p in n.metadata_props)]


def _bf16(array: np.ndarray, name: str) -> onnx.TensorProto:
    """An fp32 array as a bf16 initializer, rounded to nearest even."""
    u = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r = np.where(np.isnan(array), np.uint16(0x7FC0), r)
    t = onnx.TensorProto(name=name, data_type=TensorProto.BFLOAT16, dims=array.shape)
    t.raw_data = r.tobytes()
    return t


def typed(model: onnx.ModelProto, keep_types: Iterable[str] = ()) -> onnx.ModelProto:
    """The graph retyped to bf16 for runtimes that take precision from types: f32 inputs and outputs, the marked
    nodes and `keep_types` (what a runtime cannot build in bf16) kept f32 with casts around them, every other
    float initializer and constant bf16 (from the fp32 values: no fp16 clipping on the way)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    originals = {i.name: nh.to_array(i) for i in model.graph.initializer if i.data_type == TensorProto.FLOAT}
    constants = {
        n.output[0]: nh.to_array(a.t)
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and a.t.data_type == TensorProto.FLOAT
    }
    out = convert_float_to_float16(
        onnx.ModelProto.FromString(model.SerializeToString()),
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *keep_types],
        node_block_list=[n.name for n in marked(model)],
    )
    graph = out.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            value = originals.get(init.name, nh.to_array(init).astype(np.float32))
            graph.initializer[i].CopyFrom(_bf16(value, init.name))
    for n in graph.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.BFLOAT16
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(_bf16(constants.get(n.output[0], nh.to_array(a.t).astype(np.float32)), a.t.name))
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.BFLOAT16
    for op in out.opset_import:  # bf16 Conv / ConvTranspose are typed from opset 22 on
        if op.domain in ("", "ai.onnx") and op.version < 22:
            op.version = 22
    return out
