"""Ways to keep a layer in INT8 other than giving it back to float: transformations of the fp32 graph (or of
its calibration) that make 8-bit arithmetic fit it better. Each is checked where it claims to be exact.

- Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): in Conv -> (LeakyRelu|Relu) ->
  Conv, scale output channel c of the first conv by 1/s_c and input channel c of the second by s_c. The
  activations are positively homogeneous (f(x/s) = f(x)/s for s > 0), so the float function does not
  change; with s_c = sqrt(r1_c / r2_c) (r: the channel's largest weight) both convs get the same
  per-channel range, and the tensor between them (quantized per tensor) is evened out too.
- Bias correction (same paper): weight quantization shifts a conv's output on average by
  (Q(W) - W) * E[x]; subtracting that, per output channel, from its bias removes the shift. E[x] per input
  channel comes from the calibration samples.
- Percentile ranges: activation ranges that clip the rarest 0.001 % instead of MinMax's extremes, for the
  tensors of chosen blocks only (ONNX Runtime's TensorQuantOverrides), so one block's outliers stop
  setting its scale without changing anyone else's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    a = next((a for a in node.attribute if a.name == name), None)
    return onnx.helper.get_attribute_value(a) if a is not None else default


def _plain_conv(n: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """A Conv of group 1 whose weight is an initializer: what both transforms can rewrite."""
    return n.op_type == "Conv" and _attr(n, "group", 1) == 1 and n.input[1] in inits


HOMOGENEOUS = ("LeakyRelu", "Relu")  # f(x / s) = f(x) / s for s > 0: equalization can cross them


def equalizable_pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto | None, onnx.NodeProto]]:
    """(conv, activation or None, conv): two plain convs (group 1, initializer weights and bias) joined directly
    or through a LeakyRelu/Relu, every tensor between them read by the next node only."""
    inits, consumers = _initializers(model), _consumers(model)
    outputs = {o.name for o in model.graph.output}

    def plain(n: onnx.NodeProto) -> bool:
        params = [t for t in n.input[1:] if t]
        own = all(t in inits and len(consumers[t]) == 1 for t in params)  # a shared weight would change twice
        return _plain_conv(n, inits) and own

    def only_reader(tensor: str) -> onnx.NodeProto | None:
        readers = consumers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    pairs = []
    for first in model.graph.node:
        if not plain(first):
            continue
        mid = only_reader(first.output[0])
        act = mid if mid is not None and mid.op_type in HOMOGENEOUS else None
        second = only_reader(act.output[0]) if act is not None else mid
        if second is not None and plain(second) and second.input[0] == (act or first).output[0]:
            pairs.append((first, act, second))
    return pairs


def equalize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[dict[str, Any]]]:
    """A copy with every equalizable pair equalized, and per pair the spread (largest / smallest) of the first
    conv's per-channel weight ranges before and after: the tensor between the two follows it."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = _initializers(model)
    done = []
    for first, _, second in equalizable_pairs(model):
        w1 = numpy_helper.to_array(inits[first.input[1]]).astype(np.float64)
        w2 = numpy_helper.to_array(inits[second.input[1]]).astype(np.float64)
        r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
        r2 = np.abs(w2).transpose(1, 0, *range(2, w2.ndim)).reshape(w2.shape[1], -1).max(axis=1)
        if r1.shape != r2.shape:
            continue
        s = np.sqrt(np.maximum(r1, 1e-12) / np.maximum(r2, 1e-12))
        s = np.where((r1 > 1e-12) & (r2 > 1e-12), s, 1.0)
        shape1 = (-1,) + (1,) * (w1.ndim - 1)
        shape2 = (1, -1) + (1,) * (w2.ndim - 2)
        inits[first.input[1]].CopyFrom(
            numpy_helper.from_array((w1 / s.reshape(shape1)).astype(np.float32), first.input[1])
        )
        if len(first.input) > 2 and first.input[2]:
            b1 = numpy_helper.to_array(inits[first.input[2]]).astype(np.float64)
            inits[first.input[2]].CopyFrom(numpy_helper.from_array((b1 / s).astype(np.float32), first.input[2]))
        inits[second.input[1]].CopyFrom(
            numpy_helper.from_array((w2 * s.reshape(shape2)).astype(np.float32), second.input[1])
        )
        after = r1 / s
        done.append(
            {
                "first": first.name,
                "second": second.name,
                "range_spread_before": float(r1.max() / max(r1.min(), 1e-12)),
                "range_spread_after": float(after.max() / max(after.min(), 1e-12)),
            }
        )
    return model, done


def channel_means(
    model: onnx.ModelProto, tensors: list[str], samples: list[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per channel (axis 1), the mean of each tensor over the samples: what bias correction needs (nothing, for a
    graph without plain convs: an MLP)."""
    import onnxruntime as ort

    if not tensors:
        return {}

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in probe.graph.output}
    for t in tensors:
        if t not in known:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, float] = {}
    for feeds in samples:
        for name, value in zip(tensors, session.run(tensors, feeds), strict=True):
            v = np.asarray(value, np.float64)
            axes = tuple(i for i in range(v.ndim) if i != 1)
            sums[name] = sums.get(name, 0) + v.sum(axis=axes)
            counts[name] = counts.get(name, 0) + v.size / v.shape[1]
    return {t: sums[t] / counts[t] for t in tensors}


def correctable(model: onnx.ModelProto, nodes: Iterable[str]) -> list[onnx.NodeProto]:
    """The plain convs (group 1, initializer weights) among `nodes`: those bias correction handles."""
    inits = _initializers(model)
    wanted = set(nodes)
    return [n for n in model.graph.node if n.name in wanted and _plain_conv(n, inits)]


def quantized_weight(w: np.ndarray, reduce_range: bool) -> np.ndarray:
    """Per-output-channel symmetric int8 weights as ONNX Runtime's QDQ quantizer makes them, dequantized."""
    qmax = 63 if reduce_range else 127
    r = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    scale = np.where(r > 0, r / qmax, 1.0).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.clip(np.round(w / scale), -qmax, qmax) * scale


def bias_correct(
    model: onnx.ModelProto, means: dict[str, np.ndarray], nodes: Iterable[str], reduce_range: bool
) -> tuple[onnx.ModelProto, list[dict[str, Any]]]:
    """A copy whose plain convs among `nodes` have their bias moved by -(Q(W) - W) . E[x] (`means`: per input
    tensor, its channel means; see channel_means), and per conv the mean shift removed."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = _initializers(model)
    done = []
    for conv in correctable(model, nodes):
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        error = (quantized_weight(w, reduce_range) - w).reshape(w.shape[0], w.shape[1], -1)
        shift = np.einsum("oik,i->o", error, means[conv.input[0]])
        if len(conv.input) > 2 and conv.input[2]:
            bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
            inits[conv.input[2]].CopyFrom(numpy_helper.from_array((bias - shift).astype(np.float32), conv.input[2]))
        else:
            name = f"{conv.name}_corrected_bias"
            model.graph.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), name))
            while len(conv.input) < 3:
                conv.input.append("")
            conv.input[2] = name
        done.append({"node": conv.name, "mean_abs_shift": float(np.abs(shift).mean())})
    return model, done


def percentile_overrides(ranges: dict[str, Any], tensors: Iterable[str]) -> dict[str, list[dict[str, float]]]:
    """TensorQuantOverrides giving `tensors` their Percentile ranges (`ranges`: tensor -> {lowest, highest})."""
    return {
        t: [{"rmin": np.float32(ranges[t]["lowest"]), "rmax": np.float32(ranges[t]["highest"])}]  # numpy scalars
        for t in tensors
        if t in ranges
    }


def node_tensors(model: onnx.ModelProto, nodes: Iterable[str]) -> set[str]:
    """The activation tensors a set of nodes reads and writes (not their weights)."""
    inits = _initializers(model)
    wanted = set(nodes)
    out = set()
    for n in model.graph.node:
        if n.name in wanted:
            out.update(i for i in n.input[:1] if i and i not in inits)
            out.update(o for o in n.output if o)
    return out
