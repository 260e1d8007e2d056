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
from ..core.timing import Samples

STAT_COLUMNS = ["iterations", "warmup", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cv"]
# label: what plots and tables call a series (backend.variant@device kind; an e2e assignment's name)
# variant: the graph variant (precision is its arithmetic, for reading convenience)
# rel_ci: half-width of the median's 95 % CI relative to it; stop: ci_reached, time_budget or max_iterations
COLUMNS = [
    "model",
    "component",
    "backend",
    "variant",
    "precision",
    "device",
    "label",
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
# snr_db, lsd_db, pesq, stoi, max_abs: the SVC chain's audio against PyTorch fp32's on the same input and noise;
# copy_pesq, copy_stoi, copy_lsd_db: the real speech resynthesised by the assignment's vocoder against PyTorch
# fp32's resynthesis (mean over the input files); speech_pesq, speech_stoi: that resynthesis against the speech itself;
# fidelity: passed/failed against e2e.fidelity's gates (fidelity_reason says which)
E2E_COLUMNS = [
    "model",
    "component",
    "backend",
    "variant",
    "device",
    "label",
    "point",
    "assignment",
    "chain",
    "audio_seconds",
    "frames",
    *STAT_COLUMNS,
    "rel_ci",
    "stop",
    "rtf",
    "snr_db",
    "lsd_db",
    "pesq",
    "stoi",
    "max_abs",
    "copy_pesq",
    "copy_stoi",
    "copy_lsd_db",
    "speech_pesq",
    "speech_stoi",
    "fidelity",
    "fidelity_reason",
    "threads",
    "cpu",
    "gpu",
    "versions",
    "created",
]
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "tensorrt-rtx-cu13")
_INTS = {"batch", "iterations", "warmup", "threads", "frames"}
_FLOATS = {
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
    "audio_seconds",
    "rel_ci",
    "peak_gflops",
    "snr_db",
    "lsd_db",
    "pesq",
    "stoi",
    "max_abs",
    "copy_pesq",
    "copy_stoi",
    "copy_lsd_db",
    "speech_pesq",
    "speech_stoi",
}


def runtime_versions() -> str:
    """The runtimes a timing depends on, as the JSON string every benchmark row carries."""
    return json.dumps(versions(*RUNTIMES), sort_keys=True)


def label(backend: str, variant: str, device: str) -> str:
    return f"{backend}.{variant}@{device.split(':')[0]}"


def _schema(columns: list[str]) -> dict[str, Any]:
    return {c: pl.Int64 if c in _INTS else pl.Float64 if c in _FLOATS else pl.Utf8 for c in columns}


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
