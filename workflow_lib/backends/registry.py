"""The backend registry: every runtime the workflow can validate, time and ship, in one table.

An entry says what artifact the backend consumes, which precisions it has, whether it
needs a GPU job, how it is validated, and which module implements it. The implementation
module is imported only when a backend is used, so the Snakefile can read this table
while it builds the DAG without importing torch or any runtime.

Each implementation module provides:
    devices(precision, artifact) -> list[str]   where it runs here ("cpu", "cuda");
                                                raises Unavailable with the reason if nowhere
    open(spec, precision, artifact, threads, device) -> Runner

Adding a backend: one module beside these and one entry below (plus a rule only if it
has its own artifact to make).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import Unavailable

if TYPE_CHECKING:
    from ..config import ComponentSpec
    from .runner import Runner

PRECISIONS = ("fp32", "fp16")
# How a backend's outputs are shown to match PyTorch before anything uses them:
#   reference - it is PyTorch eager itself;
#   marker    - a validation job writes a marker for its artifact (passed/failed/skipped);
#   inline    - the benchmark job checks parity in-process (no artifact of its own to validate).
VALIDATION = ("reference", "marker", "inline")


@dataclass(frozen=True)
class Backend:
    name: str
    artifact: str  # checkpoint | onnx | openvino | engine
    precisions: tuple[str, ...]
    validation: str
    gpu_job: bool  # needs a GPU allocation to do anything useful
    module: str
    description: str

    def __post_init__(self) -> None:
        if self.validation not in VALIDATION or not set(self.precisions) <= set(PRECISIONS):
            raise ValueError(f"backend {self.name}: validation must be one of {VALIDATION}, precisions of {PRECISIONS}")

    def impl(self) -> ModuleType:
        return importlib.import_module(self.module)

    def devices(self, precision: str, artifact: str | None = None) -> list[str]:
        """Devices this backend runs on here; Unavailable names why it runs nowhere."""
        if precision not in self.precisions:
            raise Unavailable(f"{self.name} has no {precision} path (precisions: {', '.join(self.precisions)})")
        return self.impl().devices(precision, artifact)

    def available(self, precision: str, artifact: str | None = None) -> tuple[bool, str]:
        try:
            return True, ", ".join(self.devices(precision, artifact))
        except Unavailable as e:
            return False, str(e)

    def checks_inline(self, precision: str) -> bool:
        """Whether its benchmark job must check parity itself: inline backends, and PyTorch below fp32."""
        return self.validation == "inline" or (self.validation == "reference" and precision != "fp32")

    def check_validated(self, marker: dict | None) -> None:
        """Marker-validated backends are used only when their artifact passed here."""
        if self.validation != "marker":
            return
        marker = marker or {}
        if marker.get("status") != "passed":
            raise Unavailable(f"{self.name} artifact not validated here ({marker.get('status', 'no marker')})"
                              + (f": {marker['reason']}" if marker.get("reason") else ""))

    def open(self, spec: "ComponentSpec", precision: str, artifact: str | None, threads: int = 0,
             device: str | None = None) -> "Runner":
        device = device or self.devices(precision, artifact)[0]
        return self.impl().open(spec, precision, artifact, threads, device)


REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Backend("pytorch", "checkpoint", PRECISIONS, "reference", True, "workflow_lib.backends.torch_eager",
            "PyTorch eager: the reference every other backend is compared with (fp32 on CPU and CUDA, fp16 on CUDA)"),
    Backend("torch_compile", "checkpoint", PRECISIONS, "inline", True, "workflow_lib.backends.torch_compile",
            "torch.compile (inductor): what a PyTorch user would pick instead of exporting"),
    Backend("onnxruntime", "onnx", PRECISIONS, "marker", False, "workflow_lib.backends.ort",
            "ONNX Runtime, CPU execution provider"),
    Backend("onnxruntime_cuda", "onnx", PRECISIONS, "marker", True, "workflow_lib.backends.ort_cuda",
            "ONNX Runtime, CUDA execution provider (the onnxruntime-gpu package)"),
    Backend("openvino", "openvino", ("fp32",), "marker", False, "workflow_lib.backends.ov",
            "OpenVINO on the CPU, from IR converted from the simplified ONNX graph"),
    Backend("tensorrt", "engine", PRECISIONS, "marker", True, "workflow_lib.backends.trt_engine",
            "TensorRT engine (datacenter TensorRT or TensorRT for RTX), strongly typed"),
)}
REFERENCE = "pytorch"


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend '{name}' (one of {', '.join(REGISTRY)})") from None


def combos() -> list[tuple[str, str]]:
    """Every (backend, precision) the registry knows, in registry order."""
    return [(b.name, p) for b in REGISTRY.values() for p in b.precisions]


def marker_backends() -> list[Backend]:
    return [b for b in REGISTRY.values() if b.validation == "marker"]


def parse_choice(choice: str) -> tuple[str, str, str | None]:
    """'backend.precision[@device]' -> (backend, precision, device or None), checked against the registry."""
    head, _, device = choice.partition("@")
    backend, _, precision = head.partition(".")
    b = get(backend)
    if precision not in b.precisions:
        raise ValueError(f"'{choice}': {backend} has no {precision or 'missing'} precision "
                         f"(one of {', '.join(b.precisions)})")
    if device not in ("", "cpu", "cuda"):
        raise ValueError(f"'{choice}': device must be cpu or cuda, not '{device}'")
    return backend, precision, device or None
