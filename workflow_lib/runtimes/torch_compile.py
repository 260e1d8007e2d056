"""torch.compile (inductor): the baseline a PyTorch user would reach for instead of exporting.

A component whose dims vary is compiled once with dynamic shapes, for every shape point
(compiling per shape cost 98-182 s per component on a 2-core VM); the runner times compiling
calls separately (`info["compiles"]`) so they are never inside benchmark samples, and counts
graphs so a dim that still recompiles is recorded, not hidden. Inductor's caches live in
`torch_compile.cache_dir` (the Snakefile exports TORCHINDUCTOR_CACHE_DIR), beside the engine
cache, so a second checkout or a cluster node reuses compiled graphs on purpose; the cache
hits and misses are recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch

from ..core.errors import Unavailable
from ..core.spec import ComponentSpec
from . import torch_eager
from .runner import Feeds

devices = torch_eager.devices


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def cache_counts() -> dict[str, int]:
    """Inductor's FX-graph and AOTAutograd cache hits and misses so far in this process."""
    from torch._dynamo.utils import counters

    return {
        "fxgraph_hit": int(counters["inductor"]["fxgraph_cache_hit"]),
        "fxgraph_miss": int(counters["inductor"]["fxgraph_cache_miss"]),
        "autograd_hit": int(counters["aot_autograd"]["autograd_cache_hit"]),
        "autograd_miss": int(counters["aot_autograd"]["autograd_cache_miss"]),
    }


class CompiledRunner(torch_eager.TorchRunner):
    def __init__(self, module: torch.nn.Module, spec: ComponentSpec, variant: str, device: str):
        super().__init__(module, spec, variant, device)
        self.dynamic_axes = {
            i.name: [
                ax for ax, d in enumerate(i.shape) if isinstance(d, str) and spec.dims[d]["min"] != spec.dims[d]["max"]
            ]
            for i in spec.inputs
        }
        dynamic = any(self.dynamic_axes.values())
        self.compiled = torch.compile(self.module, dynamic=dynamic or None)
        self.info.update(
            compiles=[],
            compile_seconds=0.0,
            graphs=0,
            dynamic=dynamic,
            cache_dir=os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
            cache=cache_counts(),
        )

    def args(self, feeds: Feeds) -> list[torch.Tensor]:
        args = super().args(feeds)
        for spec_in, a in zip(self.spec.inputs, args, strict=True):
            for ax in self.dynamic_axes[spec_in.name]:
                torch._dynamo.maybe_mark_dynamic(a, ax)
        return args

    def call(self, args: list[torch.Tensor]) -> Any:
        before, t0 = graphs_compiled(), time.perf_counter()
        try:
            with torch.inference_mode():
                out = self.compiled(*args)
        except Exception as e:  # inductor/dynamo failures have many types; the reason is what matters
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
            raise Unavailable(f"torch.compile could not compile {self.spec.name}: {type(e).__name__}: {first}") from e
        new = graphs_compiled() - before
        if new:  # this call compiled: its time is compile time, recorded apart from any sample
            self.sync()
            seconds = time.perf_counter() - t0
            self.info["compiles"].append(
                {"shapes": [list(a.shape) for a in args], "graphs": new, "seconds": round(seconds, 3)}
            )
            self.info["compile_seconds"] = round(self.info["compile_seconds"] + seconds, 3)
            self.info["graphs"] += new
            self.info["cache"] = cache_counts()
        return out

    def prepare(self, feeds: Feeds) -> Callable[[], Any]:
        args = self.args(feeds)
        self.call(args)  # compile (if this shape needs it) outside whatever times the step
        self.sync()
        return lambda: self.call(args)


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> CompiledRunner:
    return CompiledRunner(torch_eager.load(spec, artifact, threads), spec, variant, device)
