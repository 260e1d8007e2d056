"""The backend registry: every runtime the workflow can validate, time and ship, in one table.

An entry says what artifact the backend consumes, whether its jobs ask a cluster for a GPU,
how it is validated, and which module implements it; which graph variants it runs is said
by the variant table (`variants.VARIANTS[...].consumers`). The implementation module is
imported only when a backend is used, so the Snakefile can read this table while it builds
the DAG without importing torch or any runtime.

Each implementation module provides:
    devices(variant, artifact) -> list[str]     where it runs here ("cpu", "cuda");
                                                raises Unavailable with the reason if nowhere
    open_runner(spec, variant, artifact, threads, device) -> Runner
and may provide
    probe(variant, config) -> list[str]         the same, before any artifact exists (the host
                                                probe); default: devices(variant, None)

Adding a backend: one module beside these, one entry below, and its name among the
consumers of the variants it runs (plus a rule only if it has its own artifact to make).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from ..core import variants
from ..core.errors import Unavailable

if TYPE_CHECKING:
    from ..core.spec import ComponentSpec
    from .runner import Runner

# How a backend's outputs are shown to match PyTorch before anything uses them:
#   reference - it is PyTorch eager itself;
#   marker    - a validation job writes a marker for its artifact (passed/failed/skipped);
#   inline    - the benchmark job checks parity in-process (no artifact of its own to validate).
VALIDATION = ("reference", "marker", "inline")


ARTIFACTS = ("checkpoint", "onnx", "openvino", "engine")


@dataclass(frozen=True)
class Backend:
    name: str
    artifact: str  # what it reads: the checkpoint, a variant's ONNX graph, or an IR / engine made from that graph
    validation: str
    requests_gpu: bool  # its jobs ask a cluster for a GPU (PyTorch's too: it runs on CUDA where one is visible)
    module: str
    description: str

    def __post_init__(self) -> None:
        if self.validation not in VALIDATION or self.artifact not in ARTIFACTS:
            raise ValueError(
                f"backend {self.name}: validation must be one of {VALIDATION}, artifact one of {ARTIFACTS}"
            )

    @property
    def variants(self) -> list[str]:
        return variants.consumed_by(self.name)

    def impl(self) -> ModuleType:
        return importlib.import_module(self.module)

    def devices(self, variant: str, artifact: str | None = None) -> list[str]:
        """Devices this backend runs on here; Unavailable names why it runs nowhere."""
        if variant not in self.variants:
            raise Unavailable(f"{self.name} does not run the {variant} graph (it runs {', '.join(self.variants)})")
        return self.impl().devices(variant, artifact)

    def probe(self, variant: str, config: dict) -> list[str]:
        """Where it could run on this host, judged before any artifact exists (the host probe)."""
        if variant not in self.variants:
            raise Unavailable(f"{self.name} does not run the {variant} graph (it runs {', '.join(self.variants)})")
        impl = self.impl()
        return impl.probe(variant, config) if hasattr(impl, "probe") else impl.devices(variant, None)

    def available(self, variant: str, artifact: str | None = None) -> tuple[bool, str]:
        try:
            return True, ", ".join(self.devices(variant, artifact))
        except Unavailable as e:
            return False, str(e)

    def checks_inline(self, variant: str) -> bool:
        """Whether its benchmark job must check parity itself: inline backends, and PyTorch below fp32."""
        return self.validation == "inline" or (self.validation == "reference" and variant != "fp32")

    def check_validated(self, marker: dict | None) -> None:
        """Marker-validated backends are used only when their artifact passed here."""
        if self.validation != "marker":
            return
        marker = marker or {}
        if marker.get("status") != "passed":
            raise Unavailable(
                f"{self.name} artifact not validated here ({marker.get('status', 'no marker')})"
                + (f": {marker['reason']}" if marker.get("reason") else "")
            )

    def open_runner(
        self, spec: ComponentSpec, variant: str, artifact: str | None, threads: int = 0, device: str | None = None
    ) -> Runner:
        device = device or self.devices(variant, artifact)[0]
        return self.impl().open_runner(spec, variant, artifact, threads, device)


REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "pytorch",
            "checkpoint",
            "reference",
            True,
            "workflow_lib.runtimes.torch_eager",
            "PyTorch eager: the reference every other backend is compared with (fp32 on CPU and CUDA, fp16 on CUDA)",
        ),
        Backend(
            "torch_compile",
            "checkpoint",
            "inline",
            True,
            "workflow_lib.runtimes.torch_compile",
            "torch.compile (inductor): what a PyTorch user would pick instead of exporting",
        ),
        Backend(
            "onnxruntime", "onnx", "marker", False, "workflow_lib.runtimes.ort", "ONNX Runtime, CPU execution provider"
        ),
        Backend(
            "onnxruntime_cuda",
            "onnx",
            "marker",
            True,
            "workflow_lib.runtimes.ort_cuda",
            "ONNX Runtime, CUDA execution provider (the onnxruntime-gpu package)",
        ),
        Backend(
            "openvino",
            "openvino",
            "marker",
            False,
            "workflow_lib.runtimes.ov",
            "OpenVINO on the CPU, from IR converted from a variant's ONNX graph (INT8: the QDQ graph)",
        ),
        Backend(
            "tensorrt",
            "engine",
            "marker",
            True,
            "workflow_lib.runtimes.tensorrt",
            "TensorRT engine (datacenter TensorRT or TensorRT for RTX), strongly typed; INT8 from the QDQ graph",
        ),
    )
}
REFERENCE = "pytorch"


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend '{name}' (one of {', '.join(REGISTRY)})") from None


def combos() -> list[tuple[str, str]]:
    """Every (backend, variant) the two tables know, in registry order."""
    return [(b.name, v) for b in REGISTRY.values() for v in b.variants]


def marker_backends() -> list[Backend]:
    return [b for b in REGISTRY.values() if b.validation == "marker"]


def open_choice(
    spec: ComponentSpec, choice: str, artifact: str, marker: dict | None, threads: int
) -> tuple[Runner, str]:
    """A runner for 'backend.variant[@device]' over `artifact`, used only if its marker passed;
    Unavailable with the reason otherwise. Returns the runner and the choice with its device resolved."""
    backend, variant, device = parse_choice(choice)
    b = get(backend)
    b.check_validated(marker)
    here = b.devices(variant, artifact)
    if device is None:
        device = "cuda" if "cuda" in here else here[0]
    elif device not in here:
        raise Unavailable(f"{backend}.{variant} runs on {', '.join(here)} here, not {device}")
    return b.open_runner(spec, variant, artifact, threads, device), f"{backend}.{variant}@{device}"


def parse_choice(choice: str) -> tuple[str, str, str | None]:
    """'backend.variant[@device]' -> (backend, variant, device or None), checked against both tables."""
    head, _, device = choice.partition("@")
    backend, _, variant = head.partition(".")
    b = get(backend)
    if variant not in b.variants:
        raise ValueError(
            f"'{choice}': {backend} does not run a '{variant or 'missing'}' graph variant "
            f"(one of {', '.join(b.variants)})"
        )
    if device not in ("", "cpu", "cuda"):
        raise ValueError(f"'{choice}': device must be cpu or cuda, not '{device}'")
    return backend, variant, device or None
