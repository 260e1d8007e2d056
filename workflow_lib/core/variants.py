"""The graph variants: every form of a component's graph the workflow makes, in one table.

A variant is what a series is named after (`onnxruntime.int8`): the ONNX graph a stage makes
from its parent, the gate it must pass before anything uses it, and its precision, which says
which backends run it (each backend declares the precisions it runs: runtimes/registry.py).
Precision is an attribute of a variant, not its identity. Paths, rules, validation,
benchmarks, deployment and the report all read this table, so adding a variant is one stage
module (`make(spec, variant, parent, out, settings, calibration, reference)` behind
`python -m workflow_lib.stages.<stage>`, declaring the spec keys and settings schema it reads)
and one entry below; the generic `graph_variant` rule makes it.

Gates: `allclose` compares elementwise with PyTorch fp32 at the min, opt and max point
(atol/rtol); `fidelity` judges the outputs on the component's calibration inputs (real data)
by the metrics of its output kind (analysis/metrics.py): per-element tolerances are the wrong
test for 8-bit arithmetic. A component's `gates.<variant>` replaces the default gate.

Imports nothing heavy: the Snakefile reads this table while it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GATES = ("allclose", "fidelity")
# The series every other one is compared with (speedups, parity): the backend registry's reference backend
# running this table's reference variant.
REFERENCE = "pytorch"
REFERENCE_VARIANT = "fp32"


def is_reference(backend: str, variant: str) -> bool:
    """Whether a series is the reference: every speedup's baseline, every parity check's truth."""
    return (backend, variant) == (REFERENCE, REFERENCE_VARIANT)


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str  # the arithmetic it runs in: fp32 | fp16 | bf16 | int8; backends declare which they run
    parent: str | None  # the variant it is made from; None: made from the checkpoint
    stage: str  # the module of workflow_lib/stages that makes it
    gate: str  # allclose | fidelity
    default_gate: dict[str, float]
    description: str
    # the model itself at this precision: checkpoint backends (PyTorch, torch.compile) run the variant by
    # casting the module; a variant that rewrites the graph (INT8, a pruned graph) is run from its graph only
    cast: bool = False
    settings: str | None = None  # the config section its stage reads, schema in the stage (SETTINGS_SCHEMA)
    calibration: bool = False  # its stage reads the component's sample set
    resources: dict[str, Any] = field(default_factory=lambda: {"mem_mb": 6000, "runtime": 30})

    def __post_init__(self) -> None:
        if self.gate not in GATES:
            raise ValueError(f"variant {self.name}: gate must be one of {GATES}")


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "export",
            "fp32",
            None,
            "export",
            "allclose",
            {"atol": 1e-4, "rtol": 1e-3},
            "the exporter's graph, dynamic dims; parent of every other graph",
        ),
        Variant(
            "fp32",
            "fp32",
            "export",
            "simplify",
            "allclose",
            {"atol": 1e-4, "rtol": 1e-3},
            "the simplified graph (or the export itself where simplifying fails or breaks parity)",
            cast=True,
            settings="simplify",
        ),
        Variant(
            "fp16",
            "fp16",
            "fp32",
            "fp16",
            "allclose",
            {"atol": 1e-2, "rtol": 1e-2},
            "fp16 graph with fp32 inputs and outputs; op types that fail parity in fp16 stay fp32",
            cast=True,
        ),
        Variant(
            "bf16",
            "bf16",
            "fp32",
            "bf16",
            "fidelity",
            {"min_snr_db": 30.0},
            "the fp32 graph run in bf16 arithmetic where the CPU or GPU has it natively (AMX, AVX512-BF16, or an "
            "Ampere-class GPU), the nodes that break in bf16 marked to keep f32, found by measurement",
            cast=True,
            settings="bf16",
            calibration=True,
        ),
        Variant(
            "int8",
            "int8",
            "fp32",
            "quantize",
            "fidelity",
            {"min_snr_db": 30.0},
            "static INT8 (QDQ, per-channel weights) calibrated on real inputs; the blocks that must stay "
            "float for the gate to pass are found by measurement",
            settings="quantize",
            calibration=True,
            resources={"mem_mb": 8000, "runtime": 60},
        ),
    )
}
DERIVED = tuple(n for n, v in VARIANTS.items() if v.parent is not None)  # made by the generic graph_variant rule


def get(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown graph variant '{name}' (one of {', '.join(VARIANTS)})") from None


def gate_for(variant: str, gates: dict[str, dict[str, float]] | None) -> dict[str, float]:
    """The component's gate for a variant: its own `gates.<variant>`, else the table's default."""
    return dict((gates or {}).get(variant) or get(variant).default_gate)
