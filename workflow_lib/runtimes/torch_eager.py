"""PyTorch eager: the reference. fp32 on the CPU always (so CPU backends have a same-device
baseline) and on CUDA where visible, and so is bf16; fp16 on CUDA only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..core import variants
from ..core.errors import Unavailable
from ..core.spec import ComponentSpec
from .loader import exportable
from .runner import Feeds, Runner

# The torch dtype a module is cast to for a variant's precision; a precision missing here is not run
# (rather than silently run in fp32).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtype(variant: str) -> torch.dtype:
    precision = variants.get(variant).precision
    if precision not in DTYPES:
        raise Unavailable(f"PyTorch has no cast for the {precision} precision of the {variant} variant")
    return DTYPES[precision]


def devices(variant: str, artifact: str | None = None) -> list[str]:
    """fp32 and bf16 on the CPU (bf16 through oneDNN's AMX and AVX512-BF16 kernels; the host probe plans it
    only where the CPU has them) and on CUDA where visible; fp16 on CUDA only (CPU fp16 kernels are not what
    anyone ships)."""
    cuda = torch.cuda.is_available()
    if dtype(variant) == torch.float16:
        if not cuda:
            raise Unavailable("PyTorch fp16 runs on CUDA only, and no CUDA device is visible here")
        return ["cuda"]
    return ["cpu", "cuda"] if cuda else ["cpu"]


class TorchRunner(Runner):
    def __init__(self, module: torch.nn.Module, spec: ComponentSpec, variant: str, device: str):
        super().__init__()
        self.spec, self.device = spec, device
        self.dtype = dtype(variant)
        self.module = module.to(device=device, dtype=self.dtype)
        self.timer = "cuda_event" if device == "cuda" else "perf_counter"

    def args(self, feeds: Feeds) -> list[torch.Tensor]:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])).to(self.device) for i in self.spec.inputs]
        return [a.to(self.dtype) if a.is_floating_point() else a for a in args]

    def call(self, args: list[torch.Tensor]) -> Any:
        with torch.inference_mode():
            return self.module(*args)

    def __call__(self, feeds: Feeds) -> list[np.ndarray]:
        out = self.call(self.args(feeds))
        return [o.float().cpu().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]

    def prepare(self, feeds: Feeds) -> Callable[[], Any]:
        args = self.args(feeds)
        return lambda: self.call(args)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def load(spec: ComponentSpec, artifact: str | None, threads: int) -> torch.nn.Module:
    """The component's module from `artifact` (a checkpoint; default: the spec's own)."""
    if threads:
        torch.set_num_threads(threads)
    if artifact:
        spec = dataclasses.replace(spec, checkpoint=str(artifact))
    return exportable(spec)


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> TorchRunner:
    return TorchRunner(load(spec, artifact, threads), spec, variant, device)
