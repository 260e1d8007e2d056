"""What machine an artifact was made or measured on (recorded in sidecars, markers and CSVs), and
the fp32 peak its CPU could do: the roofline's other end.

A CPU's peak is estimated from what /proc/cpuinfo says (vector width, FMA, clock) and the
threads the benchmark used, and labelled as an estimate; config values win.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> bool:
    """Whether an NVIDIA driver is loaded: without one CUDA sees no device, and torch need not be imported
    (1.7 s per job here) to say so."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or any(Path("/dev").glob("nvidia[0-9]*"))


def gpu_name() -> str | None:
    if "torch" not in sys.modules and not _nvidia_driver():
        return None
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def device_info() -> dict[str, Any]:
    info: dict[str, Any] = {"host": platform.node(), "cpu": cpu_name(), "gpu": gpu_name()}
    if info["gpu"]:
        import torch

        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return info


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


def has_vnni() -> bool:
    """Whether the CPU has VNNI (AVX-512 or AVX): u8 x s8 dot products without 16-bit saturation."""
    flags = _cpuinfo()[0]
    return bool({"avx512_vnni", "avx_vnni"} & flags)


# The CPU features a precision's arithmetic runs natively on (any one of them); where none is present the
# runtimes emulate it, slower than fp32, so no series of that precision is planned on the CPU.
NATIVE = {"bf16": ("amx_bf16", "avx512_bf16")}
# What the host probe records of the CPU: the features that decide which precisions run fast here.
FEATURES = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "fma")


def cpu_features() -> list[str]:
    """The arithmetic features of this CPU (FEATURES it has), from /proc/cpuinfo's flags."""
    flags = _cpuinfo()[0]
    return [f for f in FEATURES if f in flags]


def native(precision: str, features: list[str] | None = None) -> tuple[bool, str]:
    """Whether `precision` runs natively on this CPU (or one with `features`), and why not."""
    needed = NATIVE.get(precision)
    if needed is None:
        return True, ""
    have = cpu_features() if features is None else features
    if set(needed) & set(have):
        return True, ""
    return False, (
        f"this CPU has no native {precision} arithmetic ({' or '.join(needed)}; it has {', '.join(have) or 'none'}): "
        f"{precision} would be emulated, slower than fp32"
    )


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
    return {
        "gflops": round(gflops, 1),
        "source": f"estimate: {cores} cores x {fma_units} FMA x {lanes} fp32 lanes "
        f"x 2 x {mhz / 1e3:.2f} GHz (the reported clock; boost runs above "
        f"it, so achieved can exceed 100 %)",
    }


MEMORY_SHARE = 0.8  # of this machine's memory, the most one job may map


def cap_memory(share: float = MEMORY_SHARE) -> int | None:
    """Limit this process's writable private memory (RLIMIT_DATA: heap and anonymous mappings, not the address
    space CUDA or V8 reserve without using) to `share` of the machine's: a runtime that runs away (OpenVINO on
    some INT8 graphs asks for more than the machine has) then fails its own job with an allocation error, which
    the stage records, instead of the kernel's OOM killer taking down whatever it picks. The limit in bytes, or
    None where it cannot be set."""
    import resource

    try:
        limit = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * share)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        return limit
    except (ValueError, OSError):
        return None
