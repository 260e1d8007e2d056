"""Every path the workflow reads or writes, decided in one place.

Rules build their patterns from these functions (passing "{model}" and friends as values),
stages and the report find files through them, so moving a directory is one edit here.
GPU-dependent results (validation markers, benchmarks, the deployment bundle, the report,
their logs and failure records) live under a per-GPU-class root so two classes never
overwrite each other; graphs and checkpoints are the same everywhere and stay shared.
Imports nothing heavy: the Snakefile loads this while it builds the DAG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

RESULTS = "results"
DEFAULT_ENGINE_DIR = f"{RESULTS}/engines"
# Set for every job by the Snakefile: where this run's failure records go.
DEVICE_RESULTS_ENV = "WORKFLOW_DEVICE_RESULTS"


def engine_dir(config: dict[str, Any]) -> str:
    """tensorrt.engine_dir, else paths.engines, else results/engines: one place for every component."""
    return (config.get("tensorrt", {}).get("engine_dir") or config.get("paths", {}).get("engines")
            or DEFAULT_ENGINE_DIR)


@dataclass(frozen=True)
class Layout:
    """The run's directories: device results (per GPU class) and engines (per GPU class)."""

    device: str = RESULTS
    engines: str = DEFAULT_ENGINE_DIR

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layout":
        gpu_class = (config.get("cluster") or {}).get("gpu_class")
        if not gpu_class:
            return cls(RESULTS, engine_dir(config))
        return cls(f"{RESULTS}/gpu_{gpu_class}", os.path.join(engine_dir(config), f"gpu_{gpu_class}"))

    # shared, device-independent artifacts
    @staticmethod
    def checkpoint(model: str, component: str) -> str:
        return f"{RESULTS}/checkpoints/{model}/{component}.safetensors"

    @staticmethod
    def graph(model: str, component: str, stage: str = "onnx") -> str:
        return f"{RESULTS}/{stage}/{model}/{component}.onnx"

    @staticmethod
    def onnx_for(model: str, component: str, precision: str) -> str:
        """fp32 runtimes read the simplified graph; fp16 ones the converted graph."""
        return Layout.graph(model, component, "onnx_sim" if precision == "fp32" else "onnx_fp16")

    @staticmethod
    def openvino(model: str, component: str, precision: str) -> str:
        return f"{RESULTS}/openvino/{model}/{component}.{precision}.xml"

    @staticmethod
    def log(*parts: str) -> str:
        return "/".join((RESULTS, "logs", *parts)) + ".log"

    @staticmethod
    def job_benchmark(*parts: str) -> str:
        return "/".join((RESULTS, "jobs", *parts)) + ".tsv"

    # per GPU class
    def engine(self, model: str, component: str, precision: str) -> str:
        return f"{self.engines}/{model}/{component}.{precision}.engine"

    def marker(self, model: str, component: str, backend: str, precision: str) -> str:
        return f"{self.device}/validation/{model}/{component}.{backend}.{precision}.json"

    def bench_csv(self, model: str, component: str, backend: str, precision: str) -> str:
        return f"{self.device}/bench/{model}/{component}.{backend}.{precision}.csv"

    def e2e_csv(self, model: str, assignment: str) -> str:
        return f"{self.device}/bench/{model}/e2e/{assignment}.csv"

    def e2e_wav(self, model: str, assignment: str, reference: bool = False) -> str:
        return wav_beside(self.e2e_csv(model, assignment), reference)

    @property
    def summary(self) -> str:
        return f"{self.device}/bench/summary.csv"

    @property
    def unavailable(self) -> str:
        return f"{self.device}/bench/unavailable.json"

    def deploy(self, model: str) -> str:
        return f"{self.device}/deploy/{model}"

    @property
    def report_dir(self) -> str:
        return f"{self.device}/report"

    @property
    def failures(self) -> str:
        return f"{self.device}/failures"

    def device_log(self, *parts: str) -> str:
        return "/".join((self.device, "logs", *parts)) + ".log"


def artifact(layout: Layout, kind: str, model: str, component: str, precision: str, checkpoint: str) -> str:
    """The file a backend consumes, by the registry's artifact kind."""
    if kind == "checkpoint":
        return checkpoint
    if kind == "onnx":
        return Layout.onnx_for(model, component, precision)
    if kind == "openvino":
        return Layout.openvino(model, component, precision)
    if kind == "engine":
        return layout.engine(model, component, precision)
    raise ValueError(f"unknown artifact kind '{kind}'")


def failures_dir() -> str:
    """Where a failing stage records itself: this run's device results (set by the Snakefile)."""
    return f"{os.environ.get(DEVICE_RESULTS_ENV, RESULTS)}/failures"


def wav_beside(csv: str | os.PathLike, reference: bool = False) -> str:
    """An e2e chain's audio (or PyTorch fp32's for the same input) beside its CSV."""
    return str(csv)[: -len(".csv")] + (".reference.wav" if reference else ".wav")


def samples_path(csv: str | os.PathLike) -> str:
    """Raw timings beside a benchmark CSV: `x.csv` -> `x.samples.parquet`."""
    return str(csv)[: -len(".csv")] + ".samples.parquet"
