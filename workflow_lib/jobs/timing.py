"""Timing primitives shared by the component benchmarks and the end-to-end chain.

Adaptive, in the manner of stability windows: warm up until consecutive runs settle (or the
warm-up's own time budget is spent: a slow step need not run six times to be warm), then
time until the 95 % confidence interval of the median is within `target_rel_ci` of it, or
the point's time budget is spent (never fewer than `min_iterations`, never more than
`max_iterations`). Each series records the CI it reached and why it stopped, so a fast
stop on a quiet machine and a budget stop on a noisy one read differently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

# Raw timings per (device, point): the summary resamples them for its confidence intervals.
Samples = dict[tuple[str, str], list[float]]
MIN_CI_SAMPLES = 6  # fewer samples give no distribution-free 95 % CI of a median: none is reported
SETTLED = 0.10  # warm-up ends when the last WINDOW runs are within 10 % of each other
WINDOW = 3


@dataclass(frozen=True)
class Policy:
    warmup: int = 2  # untimed runs at least
    min_iterations: int = 5
    max_iterations: int = 1000
    target_rel_ci: float = 0.02  # stop when the median's 95 % CI half-width is within 2 % of it
    max_seconds: float = 5.0  # timed seconds per point at most (min_iterations still run)
    max_warmup: int = 20  # untimed runs at most, settled or not
    warmup_seconds: float = 2.0  # untimed seconds per point at most (`warmup` runs still run)

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> Policy:
        return cls(**{k: type(getattr(cls, k))(s[k]) for k in cls.__dataclass_fields__ if k in s})


# How a search ranks its candidates by speed: a few warm runs, enough to order them; every decision between the
# two fastest is then made by paired timing (analysis/pairing.py), never by these numbers.
RANKING = Policy(warmup=1, min_iterations=3, max_iterations=7, target_rel_ci=0.05, max_seconds=1.0)


def median_ci(samples: list[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial ranks). Below MIN_CI_SAMPLES it is
    [min, max], which covers the median less often than asked: callers report no CI there (`rel_ci`)."""
    a = np.sort(np.asarray(samples, dtype=np.float64))
    n = a.size
    if n < 3:
        return float(a[0]), float(a[-1])
    half = NormalDist().inv_cdf((1 + level) / 2) * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    return float(a[lo]), float(a[hi])


def rel_ci(samples: list[float] | np.ndarray) -> float | None:
    """Half-width of the median's 95 % CI relative to the median; None from fewer than MIN_CI_SAMPLES samples."""
    if len(samples) < MIN_CI_SAMPLES:
        return None
    lo, hi = median_ci(samples)
    med = float(np.median(samples))
    return (hi - lo) / 2 / med if med else float("inf")


def stop_reason(samples: list[float], elapsed_s: float, policy: Policy) -> str | None:
    """Why timing of a point should stop now, or None to take another sample."""
    n = len(samples)
    if n >= policy.max_iterations:
        return "max_iterations"
    if n < policy.min_iterations:
        return None
    ci = rel_ci(samples)
    if ci is not None and ci <= policy.target_rel_ci:
        return "ci_reached"
    if elapsed_s >= policy.max_seconds:
        return "time_budget"
    return None


def settled(runs: list[float]) -> bool:
    if len(runs) < WINDOW:
        return False
    w = runs[-WINDOW:]
    return max(w) <= min(w) * (1 + SETTLED)


def measure(
    step: Callable[[], Any], sync: Callable[[], None], policy: Policy, timer: str = "perf_counter"
) -> tuple[list[float], dict[str, Any]]:
    """Per-iteration milliseconds of `step`, and how the series went (warm-up runs, CI, stop reason)."""
    time_one = _cuda_timer(step) if timer == "cuda_event" else _cpu_timer(step, sync)
    warm: list[float] = []
    while len(warm) < policy.warmup or (not settled(warm) and len(warm) < policy.max_warmup):
        warm.append(time_one())
        if len(warm) >= policy.warmup and sum(warm) / 1e3 >= policy.warmup_seconds:
            break  # a slow step: its first runs are the whole warm-up budget
    samples: list[float] = []
    t0 = time.perf_counter()
    while (reason := stop_reason(samples, time.perf_counter() - t0, policy)) is None:
        samples.append(time_one())
    return samples, {"warmup_runs": len(warm), "rel_ci": rel_ci(samples), "stop": reason}


def _cpu_timer(step: Callable[[], Any], sync: Callable[[], None]) -> Callable[[], float]:
    def one() -> float:
        t = time.perf_counter_ns()
        step()
        sync()
        return (time.perf_counter_ns() - t) / 1e6

    return one


def _cuda_timer(step: Callable[[], Any]) -> Callable[[], float]:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def one() -> float:
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return one


def stats(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    p50, p90, p99 = (float(x) for x in np.percentile(a, [50, 90, 99]))
    return {
        "iterations": int(a.size),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(a.min()),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": float(a.max()),
        "cv": std / mean if mean else float("nan"),
    }
