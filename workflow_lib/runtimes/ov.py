"""OpenVINO on the CPU, from the IR the `openvino_ir` stage converted from a graph variant.

Threads are fixed (INFERENCE_NUM_THREADS from bench.threads) and the latency hint is set,
so one request uses the cores the benchmark job owns. Inference precision is pinned to f32:
on CPUs with bf16/fp16 units OpenVINO would otherwise lower precision on its own, and the
parity check would be judging a different computation. An INT8 IR (converted from the QDQ
graph) still runs its quantized layers in INT8: the hint only governs the float ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.errors import Unavailable
from ..core.spec import ComponentSpec
from .runner import Feeds, Runner, step_at


def devices(variant: str, artifact: str | None = None) -> list[str]:
    try:
        import openvino as ov
    except ImportError as e:
        raise Unavailable(f"openvino is not importable ({e}); it is installed by scripts/setup.sh") from e
    if "CPU" not in ov.Core().available_devices:
        raise Unavailable("OpenVINO sees no CPU device here")
    return ["cpu"]


class OpenVinoRunner(Runner):
    def __init__(self, xml: str, threads: int):
        super().__init__()
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
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
    return OpenVinoRunner(str(artifact), threads)


def graph_step(path: str, spec: str, threads: int, point: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    """An IR on the CPU at a shape point, warm, as (step, sync): what paired timing runs."""
    return step_at(OpenVinoRunner(path, threads), spec, point)
