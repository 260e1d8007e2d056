"""Stage: per-component latency of one backend and precision, one process per backend.

ONNX Runtime's spinning worker threads slow other frameworks in the same process, so each
benchmark job measures exactly one backend. A backend that cannot run here produces a CSV
with no rows and a sidecar saying why: no number is ever invented.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from . import cli, parity, trt
from .components import exportable
from .host import cpu_name
from .config import ComponentSpec
from .io import atomic_path, now, read_json, sidecar_path, versions, write_json

log = logging.getLogger(__name__)
BACKENDS = ("pytorch", "onnxruntime", "tensorrt")
STAT_COLUMNS = ["iterations", "warmup", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cv"]
# label: what plots and tables call a series (backend.precision@device kind; an e2e assignment's name)
COLUMNS = ["model", "component", "backend", "precision", "device", "label", "point", "dims", "shape", "batch", *STAT_COLUMNS,
           "throughput", "threads", "cpu", "gpu", "versions", "created"]

# Raw timings per (device, point): the summary resamples them for its confidence intervals.
Samples = dict[tuple[str, str], list[float]]


class Unavailable(RuntimeError):
    """This backend/precision cannot run on this host; the message is the recorded reason."""


def measure(step: Callable[[], Any], sync: Callable[[], None], warmup: int, min_iterations: int,
            min_seconds: float, max_iterations: int, timer: str = "perf_counter") -> list[float]:
    """Per-iteration milliseconds; runs until both min_iterations and min_seconds are reached."""
    for _ in range(warmup):
        step()
    sync()
    samples: list[float] = []
    if timer == "cuda_event":
        import torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t_begin = time.perf_counter()
    while len(samples) < max_iterations and (len(samples) < min_iterations or time.perf_counter() - t_begin < min_seconds):
        if timer == "cuda_event":
            start.record()
            step()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter_ns()
            step()
            sync()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def runtime_versions() -> str:
    """The runtimes a timing depends on, as the JSON string every benchmark row carries."""
    return json.dumps(versions("torch", "onnxruntime", "tensorrt", "tensorrt-rtx-cu13"), sort_keys=True)


def stats(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    p50, p90, p99 = (float(x) for x in np.percentile(a, [50, 90, 99]))
    return {"iterations": int(a.size), "mean_ms": mean, "std_ms": std, "min_ms": float(a.min()), "p50_ms": p50,
            "p90_ms": p90, "p99_ms": p99, "max_ms": float(a.max()), "cv": std / mean if mean else float("nan")}


def _torch_devices(precision: str) -> list[str]:
    """CPU always (fp32), so CPU backends have a same-device baseline; CUDA too where present."""
    import torch

    cuda = torch.cuda.is_available()
    if precision == "fp16":
        if not cuda:
            raise Unavailable("PyTorch fp16 is benchmarked on CUDA only, and no CUDA device is visible here")
        return ["cuda"]
    return ["cpu", "cuda"] if cuda else ["cpu"]


def _torch_setup(spec: ComponentSpec, precision: str, device: str):
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.float32
    module = exportable(spec).to(device=device, dtype=dtype)

    def prepare(feeds):
        args = [torch.from_numpy(feeds[i.name]).to(device) for i in spec.inputs]
        args = [a.to(dtype) if a.is_floating_point() else a for a in args]

        def step():
            with torch.inference_mode():
                module(*args)
        return step

    cuda = device == "cuda"
    return prepare, torch.cuda.synchronize if cuda else (lambda: None), device, "cuda_event" if cuda else "perf_counter"


def _ort_setup(artifact: str, threads: int):
    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    sess = parity.ort_session(artifact, threads, providers)
    device = "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def prepare(feeds):
        return lambda: sess.run(None, feeds)
    return prepare, (lambda: None), device, "perf_counter"


def _trt_setup(engine_path: str, marker: dict[str, Any]):
    if marker.get("status") != "passed":
        raise Unavailable(f"engine not validated here ({marker.get('status')}): {marker.get('reason', '')}".strip())
    import torch

    fl = trt.load(read_json(sidecar_path(engine_path))["flavour"])
    runner = trt.EngineRunner(fl, Path(engine_path).read_bytes())
    torch.cuda.set_stream(runner.stream)  # CUDA events in measure() record on the engine's stream

    def prepare(feeds):
        runner.bind(feeds)
        return runner.execute
    return prepare, runner.stream.synchronize, "cuda", "cuda_event"


def benchmark(spec: ComponentSpec, backend: str, precision: str, settings: dict[str, Any],
              artifact: str | None = None, marker: dict[str, Any] | None = None) -> tuple[list[dict], Samples]:
    """Rows (one per device and dim point) and their raw samples. Raises Unavailable with the reason."""
    import torch

    threads = int(settings.get("threads", 0))
    if threads:
        torch.set_num_threads(threads)
    if backend == "pytorch":
        setups = [_torch_setup(spec, precision, d) for d in _torch_devices(precision)]
    elif backend == "onnxruntime":
        setups = [_ort_setup(str(artifact), threads)]
    elif backend == "tensorrt":
        setups = [_trt_setup(str(artifact), marker or {})]
    else:
        raise ValueError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
    versions_json = runtime_versions()
    rows, samples = [], {}
    for prepare, sync, device, timer in setups:
        gpu = torch.cuda.get_device_name() if device == "cuda" else None
        where = device if device == "cpu" else f"cuda:{gpu}"
        env = {"threads": threads, "cpu": cpu_name(), "gpu": gpu, "versions": versions_json, "created": now()}
        for point in settings.get("points", ["min", "opt", "max"]):
            dims = spec.point(point)
            feeds = spec.make_inputs(dims)
            step = prepare(feeds)
            ms = measure(step, sync, int(settings["warmup"]), int(settings["min_iterations"]),
                         float(settings["min_seconds"]), int(settings["max_iterations"]), timer)
            s = stats(ms)
            batch = int(dims.get("batch", 1))
            rows.append({"model": spec.model, "component": spec.component, "backend": backend, "precision": precision,
                         "device": where, "label": f"{backend}.{precision}@{device}", "point": point,
                         "dims": json.dumps(dims, sort_keys=True),
                         "shape": json.dumps({k: list(v.shape) for k, v in feeds.items()}), "batch": batch,
                         "warmup": int(settings["warmup"]), **s, "throughput": batch / (s["p50_ms"] / 1e3), **env})
            samples[(where, point)] = ms
            log.info("%s %s %s %s %s: p50 %.3f ms (n=%d, cv %.2f)", spec.label, backend, precision, where, point,
                     s["p50_ms"], s["iterations"], s["cv"])
    return rows, samples


def write_results(rows: list[dict], samples: Samples, csv_out: str | Path,
                  samples_out: str | Path, meta: dict[str, Any], columns: list[str] = COLUMNS) -> None:
    """CSV (header only when nothing was measured), raw samples for bootstrap CIs, sidecar."""
    schema = _schema(columns)
    frame = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema=schema, orient="row") if rows \
        else pl.DataFrame(schema=schema)
    with atomic_path(csv_out, suffix=".csv") as tmp:
        frame.write_csv(tmp)
    long = pl.DataFrame({"device": [d for (d, _), v in samples.items() for _ in v],
                         "point": [p for (_, p), v in samples.items() for _ in v],
                         "sample_ms": [x for v in samples.values() for x in v]},
                        schema={"device": pl.Utf8, "point": pl.Utf8, "sample_ms": pl.Float64})
    with atomic_path(samples_out, suffix=".parquet") as tmp:
        long.write_parquet(tmp)
    write_json(sidecar_path(csv_out), meta)


def _schema(columns: list[str]) -> dict[str, Any]:
    ints = {"batch", "iterations", "warmup", "threads", "frames"}
    floats = {"mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cv", "throughput", "rtf",
              "audio_seconds"}
    return {c: pl.Int64 if c in ints else pl.Float64 if c in floats else pl.Utf8 for c in columns}


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--precision", choices=["fp32", "fp16"], required=True)
    p.add_argument("--artifact", help="ONNX file or engine (onnxruntime, tensorrt)")
    p.add_argument("--marker", help="validation marker gating the artifact")
    p.add_argument("--settings", required=True, type=json.loads, help="bench config section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", required=True)

    def run(a: argparse.Namespace) -> None:
        marker = read_json(a.marker) if a.marker else None
        meta = {"stage": "bench", "model": a.spec.model, "component": a.spec.component, "backend": a.backend,
                "precision": a.precision, "artifact": a.artifact, "settings": a.settings, "created": now(),
                "host": platform.node(), "pid": os.getpid()}
        try:
            rows, samples = benchmark(a.spec, a.backend, a.precision, a.settings, a.artifact, marker)
            meta.update(status="measured", rows=len(rows))
        except Unavailable as e:
            rows, samples = [], {}
            meta.update(status="unavailable", reason=str(e))
            log.warning("%s %s %s: not measured: %s", a.spec.label, a.backend, a.precision, e)
        write_results(rows, samples, a.out, a.samples, meta)

    cli.run("bench", run, p, argv)


if __name__ == "__main__":
    main()
