"""The backend registry: every runtime the workflow can validate, time and ship, in one table.

An entry says what the backend reads (its artifact kind: the checkpoint, a variant's ONNX graph,
or something made from that graph, with the kind's path pattern declared right there), which
precisions it runs, whether its jobs ask a cluster for a GPU, how it is validated, and which
module implements it. Which graph variants it runs follows: those of a precision it runs
(checkpoint backends: only variants that are the model itself at that precision, `cast`). The
implementation module is imported only when a backend is used, so the Snakefile can read this
table while it builds the DAG without importing torch or any runtime.

Each implementation module provides:
    devices(variant, artifact) -> list[str]     where it runs here ("cpu", "cuda");
                                                raises Unavailable with the reason if nowhere
    open_runner(spec, variant, artifact, threads, device) -> Runner
and may provide
    probe(variant, config) -> list[str]         the same, before any artifact exists (the host
                                                probe, given the whole config); default:
                                                devices(variant, None)

Adding a backend: one module beside these and one entry below (plus a rule only if its artifact
kind is new: the rule that makes the file the kind's pattern names).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..core import variants
from ..core.errors import Unavailable
from ..core.paths import CHECKPOINT, GRAPH, ArtifactKind

if TYPE_CHECKING:
    from ..core.spec import ComponentSpec
    from .runner import Runner

# How a backend's outputs are shown to match PyTorch before anything uses them:
#   reference - it is PyTorch eager itself;
#   marker    - a validation job writes a marker for its artifact (passed/failed/skipped);
#   inline    - the benchmark job checks parity in-process (no artifact of its own to validate).
VALIDATION = ("reference", "marker", "inline")
REFERENCE, REFERENCE_VARIANT = variants.REFERENCE, variants.REFERENCE_VARIANT  # the series all are compared with

OPENVINO_IR = ArtifactKind("openvino", "openvino/{variant}/{model}/{component}.xml", companions=(".bin",))
ENGINE = ArtifactKind("engine", "{variant}/{model}/{component}.engine", root="engines")


@dataclass(frozen=True)
class Backend:
    name: str
    artifact: ArtifactKind  # what it reads: the checkpoint, a variant's ONNX graph, or what is made from that graph
    precisions: tuple[str, ...]  # the variant precisions it runs
    validation: str
    requests_gpu: bool  # its jobs ask a cluster for a GPU (PyTorch's too: it runs on CUDA where one is visible)
    module: str
    description: str
    distribution: str = ""  # the package that provides its runtime (what a deployment bundle pins and checks)

    def __post_init__(self) -> None:
        if self.validation not in VALIDATION:
            raise ValueError(f"backend {self.name}: validation must be one of {VALIDATION}")

    def runs(self, variant: variants.Variant) -> bool:
        if variant.precision not in self.precisions:
            return False
        return variant.cast if self.artifact is CHECKPOINT else variant.parent is not None

    @property
    def variants(self) -> list[str]:
        """The graph variants it runs, in table order."""
        return [v.name for v in variants.VARIANTS.values() if self.runs(v)]

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
        """Whether its benchmark job must check parity itself: inline backends, and the reference below fp32."""
        return self.validation == "inline" or (self.validation == "reference" and variant != REFERENCE_VARIANT)

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
            REFERENCE,
            CHECKPOINT,
            ("fp32", "fp16", "bf16"),
            "reference",
            True,
            "workflow_lib.runtimes.torch_eager",
            "PyTorch eager: the reference every other backend is compared with (fp32 on CPU and CUDA, fp16 on CUDA, "
            "bf16 where the CPU or GPU has it natively: the whole module cast)",
            "torch",
        ),
        Backend(
            "torch_compile",
            CHECKPOINT,
            ("fp32", "fp16", "bf16"),
            "inline",
            True,
            "workflow_lib.runtimes.torch_compile",
            "torch.compile (inductor): what a PyTorch user would pick instead of exporting",
            "torch",
        ),
        Backend(
            "onnxruntime",
            GRAPH,
            ("fp32", "fp16", "int8"),
            "marker",
            False,
            "workflow_lib.runtimes.ort",
            "ONNX Runtime, CPU execution provider (no bf16: its CPU kernels for Conv, MatMul and Gemm are fp32, "
            "fp16 and int8 only, measured with 1.32)",
            "onnxruntime",
        ),
        Backend(
            "onnxruntime_cuda",
            GRAPH,
            ("fp32", "fp16"),
            "marker",
            True,
            "workflow_lib.runtimes.ort_cuda",
            "ONNX Runtime, CUDA execution provider (the onnxruntime-gpu package)",
            "onnxruntime-gpu",
        ),
        Backend(
            "openvino",
            OPENVINO_IR,
            ("fp32", "bf16", "int8"),
            "marker",
            False,
            "workflow_lib.runtimes.ov",
            "OpenVINO on the CPU, from IR converted from a variant's ONNX graph (INT8: the QDQ graph; bf16: the fp32 "
            "graph at bf16 inference precision, its marked nodes f32)",
            "openvino",
        ),
        Backend(
            "tensorrt",
            ENGINE,
            ("fp32", "fp16", "bf16", "int8"),
            "marker",
            True,
            "workflow_lib.runtimes.tensorrt",
            "TensorRT engine (datacenter TensorRT or TensorRT for RTX), strongly typed; INT8 from the QDQ graph",
            "tensorrt-rtx-cu13",
        ),
    )
}


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend '{name}' (one of {', '.join(REGISTRY)})") from None


def series() -> list[tuple[str, str]]:
    """Every (backend, variant) series the two tables allow, in registry order."""
    return [(b.name, v) for b in REGISTRY.values() for v in b.variants]


def made_kinds() -> list[ArtifactKind]:
    """Artifact kinds a rule makes from a graph (not the checkpoint, not the graph itself)."""
    kinds = {b.artifact.name: b.artifact for b in REGISTRY.values() if b.artifact not in (CHECKPOINT, GRAPH)}
    return list(kinds.values())


def marker_backends() -> list[Backend]:
    return [b for b in REGISTRY.values() if b.validation == "marker"]


def open_series(
    spec: ComponentSpec, series: str, artifact: str, marker: dict | None, threads: int
) -> tuple[Runner, str]:
    """A runner for 'backend.variant[@device]' over `artifact`, used only if its marker passed;
    Unavailable with the reason otherwise. Returns the runner and the series with its device resolved."""
    backend, variant, device = parse_series(series)
    b = get(backend)
    b.check_validated(marker)
    here = b.devices(variant, artifact)
    if device is None:
        device = "cuda" if "cuda" in here else here[0]
    elif device not in here:
        raise Unavailable(f"{backend}.{variant} runs on {', '.join(here)} here, not {device}")
    return b.open_runner(spec, variant, artifact, threads, device), f"{backend}.{variant}@{device}"


def parse_series(series: str) -> tuple[str, str, str | None]:
    """'backend.variant[@device]' -> (backend, variant, device or None), checked against both tables."""
    head, _, device = series.partition("@")
    backend, _, variant = head.partition(".")
    b = get(backend)
    if variant not in b.variants:
        raise ValueError(
            f"'{series}': {backend} does not run a '{variant or 'missing'}' graph variant "
            f"(one of {', '.join(b.variants)})"
        )
    if device not in ("", "cpu", "cuda"):
        raise ValueError(f"'{series}': device must be cpu or cuda, not '{device}'")
    return backend, variant, device or None


def series_step(
    spec: str, series: str, artifact: str, marker: dict | None, threads: int, point: str
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """One warm series at a shape point, as (step, sync): what paired timing runs (analysis/pairing.py)."""
    from ..core.spec import spec_from_json

    component = spec_from_json(spec)
    runner, _ = open_series(component, series, artifact, marker, threads)
    return runner.prepare(component.make_inputs(component.point(point))), runner.sync
