"""Benchmark result files: the CSV columns, the raw-sample parquet beside it, the sidecar.

Component benchmarks and the end-to-end chain write through here, so both have one
schema and the summary reads both the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from ..core.files import atomic_path, versions, write_json
from ..core.paths import samples_path, sidecar_path
from ..jobs.timing import Samples

STAT_COLUMNS = ["iterations", "warmup", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cv"]
# series: what plots and tables call a measured series (backend.variant@device kind; a chain assignment's name)
# variant: the graph variant (precision is its arithmetic, for reading convenience)
# rel_ci: half-width of the median's 95 % CI relative to it, empty below 6 samples (no distribution-free CI);
# stop: ci_reached, time_budget or max_iterations
COLUMNS = [
    "model",
    "component",
    "backend",
    "variant",
    "precision",
    "device",
    "series",
    "point",
    "dims",
    "shape",
    "batch",
    *STAT_COLUMNS,
    "rel_ci",
    "stop",
    "throughput",
    "threads",
    "cpu",
    "gpu",
    "peak_gflops",
    "peak_source",
    "versions",
    "created",
]
# A chain's rows: per timing length, the latency and real-time factor, then the worst evaluation file's value
# of every metric the plug-in reports (<group>_<metric>, e.g. chain_lsd_db), the number of files judged, and
# the verdict of its gates (fidelity: passed/failed; fidelity_reason says which gate and file).
CHAIN_HEAD = [
    "model",
    "component",
    "backend",
    "variant",
    "device",
    "series",
    "point",
    "assignment",
    "chain",
    "input_seconds",
    *STAT_COLUMNS,
    "rel_ci",
    "stop",
    "rtf",
]
CHAIN_TAIL = ["files", "fidelity", "fidelity_reason", "threads", "cpu", "gpu", "versions", "created"]
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "tensorrt-rtx-cu13")
_INTS = {"batch", "iterations", "warmup", "threads", "files"}
_STRINGS = (
    {*COLUMNS, *CHAIN_HEAD, *CHAIN_TAIL}
    - _INTS
    - {
        "mean_ms",
        "std_ms",
        "min_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "cv",
        "throughput",
        "rtf",
        "input_seconds",
        "rel_ci",
        "peak_gflops",
    }
)


def chain_columns(metrics: dict[str, tuple[str, ...]] | dict[str, list[str]]) -> list[str]:
    """A chain CSV's columns, with the plug-in's metrics as `<group>_<metric>`."""
    return [*CHAIN_HEAD, *(f"{g}_{m}" for g, ms in metrics.items() for m in ms), *CHAIN_TAIL]


def runtime_versions() -> str:
    """The runtimes a timing depends on, as the JSON string every benchmark row carries."""
    return json.dumps(versions(*RUNTIMES), sort_keys=True)


def series_name(backend: str, variant: str, device: str) -> str:
    return f"{backend}.{variant}@{device.split(':')[0]}"


def _schema(columns: list[str]) -> dict[str, Any]:
    """Counts are integers, names and versions strings, everything else (timings, scores) floats."""
    return {c: pl.Int64 if c in _INTS else pl.Utf8 if c in _STRINGS else pl.Float64 for c in columns}


def write_results(
    rows: list[dict], samples: Samples, csv_out: str | Path, meta: dict[str, Any], columns: list[str] = COLUMNS
) -> None:
    """CSV (header only when nothing was measured), raw samples for bootstrap CIs, sidecar."""
    schema = _schema(columns)
    frame = (
        pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema=schema, orient="row")
        if rows
        else pl.DataFrame(schema=schema)
    )
    with atomic_path(csv_out, suffix=".csv") as tmp:
        frame.write_csv(tmp)
    long = pl.DataFrame(
        {
            "device": [d for (d, _), v in samples.items() for _ in v],
            "point": [p for (_, p), v in samples.items() for _ in v],
            "sample_ms": [x for v in samples.values() for x in v],
        },
        schema={"device": pl.Utf8, "point": pl.Utf8, "sample_ms": pl.Float64},
    )
    with atomic_path(samples_path(csv_out), suffix=".parquet") as tmp:
        long.write_parquet(tmp)
    write_json(sidecar_path(csv_out), meta)
