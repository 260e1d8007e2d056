"""Timing primitives shared by the component benchmarks and the end-to-end chain."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

# Raw timings per (device, point): the summary resamples them for its confidence intervals.
Samples = dict[tuple[str, str], list[float]]


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


def stats(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    p50, p90, p99 = (float(x) for x in np.percentile(a, [50, 90, 99]))
    return {"iterations": int(a.size), "mean_ms": mean, "std_ms": std, "min_ms": float(a.min()), "p50_ms": p50,
            "p90_ms": p90, "p99_ms": p99, "max_ms": float(a.max()), "cv": std / mean if mean else float("nan")}
