"""What machine an artifact was made or measured on: recorded in sidecars, markers and CSVs."""

from __future__ import annotations

import platform
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


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"host": platform.node(), "cpu": cpu_name(), "gpu": gpu_name()}
    if info["gpu"]:
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return info
