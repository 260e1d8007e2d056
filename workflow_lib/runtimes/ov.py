"""OpenVINO on the CPU, from the IR the `openvino_ir` stage converted from a graph variant.

Threads are fixed (INFERENCE_NUM_THREADS from bench.threads) and the latency hint is set,
so one request uses the cores the benchmark job owns. Inference precision is the variant's:
f32 for fp32 and INT8 (on any AVX-512 CPU OpenVINO would otherwise pick bf16 on its own, and
the parity check would judge another computation; an INT8 IR still runs its quantized layers
in INT8), bf16 for the bf16 variant (planned only where the CPU has native bf16: the host
probe). Nodes the bf16 graph marks keep f32 (graphs/bf16.py): the IR carries OpenVINO's own mark for them
(`keep_f32`), which its CPU plugin honours under the bf16 hint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from ..core import variants
from ..core.errors import Unavailable
from ..core.spec import ComponentSpec
from .runner import Feeds, Runner, step_at

# OpenVINO's inference precision per variant precision (what its float layers compute in)
PRECISION = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
# The IR attribute that keeps a node f32 under a lower inference precision. OpenVINO 2026's CPU plugin checks it
# for f16 under either hint (`is_conversion_disabled(op, f16)`); Python cannot set it on a model, the IR can.
KEEP_F32 = ("DisablePrecisionConversion", "0", "dynamic:f16")


def devices(variant: str, artifact: str | None = None) -> list[str]:
    try:
        import openvino as ov
    except ImportError as e:
        raise Unavailable(f"openvino is not importable ({e}); it is installed by scripts/setup.sh") from e
    if "CPU" not in ov.Core().available_devices:
        raise Unavailable("OpenVINO sees no CPU device here")
    return ["cpu"]


def write_ir(src: str | Path, xml: Path, keep_f32: list[str]) -> Any:
    """The graph as IR at `xml` (weights beside it, in the graph's own precision), the nodes named in `keep_f32`
    (ONNX node names; and a graph output's producer, which OpenVINO names after the output) marked to keep f32.
    Graph rewrites drop the mark from a node they replace, so with marks the common rewrites run first; a node
    a rewrite made (named like no node of the source) next to a marked one is marked too: `(x - a) / b`
    becomes a new Multiply beside an Add named after the Div."""
    import onnx
    import openvino as ov

    model = ov.convert_model(str(src))
    if keep_f32:
        from openvino._offline_transformations import apply_moc_transformations

        apply_moc_transformations(model, cf=False)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    if keep_f32:
        graph = onnx.load(str(src), load_external_data=False).graph
        source = {n.name for n in graph.node} | {o for n in graph.node for o in n.output}
        tree = ElementTree.parse(xml)
        layers = {layer.get("id"): layer for layer in tree.getroot().iter("layer")}
        wanted = set(keep_f32)
        marked = {i for i, layer in layers.items() if _base(layer) in wanted}
        made = {
            i
            for i, layer in layers.items()
            if _base(layer) not in source and layer.get("type") not in ("Const", "Parameter", "Result")
        }
        neighbours: dict[str, set[str]] = {i: set() for i in layers}
        for edge in tree.getroot().iter("edge"):
            a, b = edge.get("from-layer"), edge.get("to-layer")
            neighbours[a].add(b)
            neighbours[b].add(a)
        grown = True
        while grown:
            more = {i for i in made - marked if neighbours[i] & marked}
            grown = bool(more)
            marked |= more
        for i in marked:
            rt = layers[i].find("rt_info")
            if rt is None:
                rt = ElementTree.Element("rt_info")
                layers[i].insert(0, rt)
            attr, version, value = KEEP_F32
            ElementTree.SubElement(rt, "attribute", {"name": attr, "version": version, "value": value})
        tree.write(xml)
    return model


def _base(layer) -> str:
    """A layer's name as in the source graph (OpenVINO appends `/...` to the layers it splits one node into)."""
    return layer.get("name", "").split("/")[0]


def precisions(compiled) -> dict[str, str]:
    """Per layer of a compiled model, the precision it runs in (OpenVINO's runtime model): what a mark did."""
    return {
        op.get_friendly_name(): op.get_rt_info()["runtimePrecision"].astype(str)
        for op in compiled.get_runtime_model().get_ordered_ops()
        if "runtimePrecision" in op.get_rt_info()
    }


class OpenVinoRunner(Runner):
    def __init__(self, xml: str, threads: int, precision: str = "fp32"):
        super().__init__()
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(xml), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = list(self.compiled.outputs)
        self.info.update(version=ov.__version__, config={k: str(v) for k, v in config.items()})

    def __call__(self, feeds: Feeds) -> list[np.ndarray]:
        result = self.request.infer(feeds)
        return [np.asarray(result[o], dtype=np.float32) for o in self.outputs]

    def prepare(self, feeds: Feeds):
        return lambda: self.request.infer(feeds)


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> OpenVinoRunner:
    return OpenVinoRunner(str(artifact), threads, variants.get(variant).precision)


def graph_step(path: str, spec: str, threads: int, point: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    """An fp32 or INT8 IR on the CPU at a shape point, warm, as (step, sync): what paired timing runs."""
    return step_at(OpenVinoRunner(path, threads), spec, point)
