"""FLOPs of a component at a shape point, and the peak a device could do: the roofline's two ends.

FLOPs are counted by torch.utils.flop_counter on the meta device (shapes only, no
arithmetic), so counting the vocoder at its max shape costs milliseconds, not seconds.
A CPU's fp32 peak is estimated from what /proc/cpuinfo says (vector width, FMA, clock)
and the threads the benchmark used, and labelled as an estimate; config values win.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import POINTS, ComponentSpec


def count(module: torch.nn.Module, spec: ComponentSpec, dims: dict[str, int]) -> int:
    """FLOPs (multiply-add = 2) of one forward call at `dims`, counted without computing."""
    meta = copy.deepcopy(module).to("meta")
    args = [torch.empty(i.concrete_shape(dims), dtype=getattr(torch, i.dtype) if i.dtype != "bool" else torch.bool,
                        device="meta") for i in spec.inputs]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        meta(*args)
    return int(counter.get_total_flops())


def per_point(module: torch.nn.Module, spec: ComponentSpec) -> dict[str, int]:
    return {p: count(module, spec, spec.point(p)) for p in POINTS}


def _cpuinfo() -> tuple[set[str], str, float | None]:
    flags, vendor, mhz = set(), "", None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("vendor_id") and not vendor:
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
    except OSError:
        pass
    try:  # the rated maximum beats the momentary clock
        mhz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e3
    except (OSError, ValueError):
        pass
    return flags, vendor, mhz


def cpu_peak_gflops(threads: int) -> dict[str, Any]:
    """fp32 peak of `threads` cores: cores x FMA units x lanes x 2 x GHz, as an estimate.

    AMD's AVX-512 (Zen 4) runs on 256-bit units, so it counts as 8 lanes there.
    """
    flags, vendor, mhz = _cpuinfo()
    wide = "avx512f" in flags and vendor == "GenuineIntel"
    lanes = 16 if wide else 8 if "avx2" in flags else 4
    fma_units = 2 if "fma" in flags or "avx512f" in flags else 1
    cores = threads or os.cpu_count() or 1
    if mhz is None:
        return {"gflops": None, "source": "unknown: /proc/cpuinfo has no clock"}
    gflops = cores * fma_units * lanes * 2 * mhz / 1e3
    return {"gflops": round(gflops, 1), "source": f"estimate: {cores} cores x {fma_units} FMA x {lanes} fp32 lanes "
                                                   f"x 2 x {mhz / 1e3:.2f} GHz (the reported clock; boost runs above "
                                                   f"it, so achieved can exceed 100 %)"}
