"""FLOPs of a component at a shape point: the work end of the roofline (host.py has the peak).

FLOPs are counted by torch.utils.flop_counter on the meta device (shapes only, no
arithmetic), so counting the largest component at its max shape costs milliseconds, not seconds.
"""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..core.spec import POINTS, ComponentSpec


def count(module: torch.nn.Module, spec: ComponentSpec, dims: dict[str, int]) -> int:
    """FLOPs (multiply-add = 2) of one forward call at `dims`, counted without computing."""
    meta = copy.deepcopy(module).to("meta")
    args = [
        torch.empty(
            i.concrete_shape(dims), dtype=getattr(torch, i.dtype) if i.dtype != "bool" else torch.bool, device="meta"
        )
        for i in spec.inputs
    ]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        meta(*args)
    return int(counter.get_total_flops())


def per_point(module: torch.nn.Module, spec: ComponentSpec) -> dict[str, int]:
    return {p: count(module, spec, spec.point(p)) for p in POINTS}
