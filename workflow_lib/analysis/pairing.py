"""Two candidates timed against each other, in pairs: how every decision between two is made.

Timings taken in separate jobs minutes apart carry whatever the machine did in between (a shared
VM measured the same model 983 ms in one run and 1640 ms an hour later); a decision between two
candidates should not. So each candidate runs warm in a worker process of its own (one backend
per process stays the rule: ONNX Runtime's threads slow PyTorch in the same process), on this
job's cores, and the parent alternates them: A B, B A, A B, ... (neither always runs first). Each round gives a ratio
t_A / t_B; its median's 95 % confidence interval (order statistics, distribution-free, formed
only from 6 rounds on) decides:

- the interval lies inside the tie band (default +-3 %): a tie;
- it excludes 1: the faster one wins, unless the median ratio lies inside the tie band: a difference
  that is real but that small is a tie too (asv's `factor`: below it a change is not reported), since the
  next run on the same machine may well reverse it;
- otherwise another round, from `min_rounds` (default 10) up to `max_rounds` or `max_seconds`;
  still open then: recorded as a tie because the time box ran out.

A worker is built from a recipe: `{"builder": "module:function", "args": {...}}`; the builder
returns `(step, sync)` for a warm candidate. Builders live with what they build (a component
series, a whole chain), so this module names none of them.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..jobs.timing import MIN_CI_SAMPLES, median_ci

TIE_BAND = 0.03
MIN_ROUNDS = 10


@dataclass(frozen=True)
class PairPolicy:
    tie_band: float = TIE_BAND  # |ratio - 1| below which two candidates are the same speed
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = 200
    max_seconds: float = 60.0  # time box of one comparison (warm-up excluded)
    warmup: int = 2  # untimed runs of each candidate before the first round

    @classmethod
    def from_settings(cls, s: dict[str, Any] | None) -> PairPolicy:
        s = s or {}
        return cls(**{k: type(getattr(cls, k))(s[k]) for k in cls.__dataclass_fields__ if k in s})


def _worker(recipe: dict[str, Any], conn) -> None:
    """A warm candidate in its own process: answers 'run' with one step's milliseconds."""
    try:
        module, _, function = recipe["builder"].partition(":")
        step, sync = getattr(importlib.import_module(module), function)(**recipe["args"])
        conn.send(("ready", None))
    except Exception as e:  # a candidate that cannot be built is reported, not raised in a child
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        command = conn.recv()
        if command == "stop":
            return
        t = time.perf_counter_ns()
        step()
        sync()
        conn.send(("ms", (time.perf_counter_ns() - t) / 1e6))


class _Candidate:
    def __init__(self, recipe: dict[str, Any]):
        ctx = mp.get_context("spawn")  # a fresh interpreter: no runtime state shared with the parent
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(recipe, child), daemon=True)
        self.process.start()
        kind, value = self.conn.recv()
        if kind == "error":
            self.close()
            raise RuntimeError(value)

    def run(self) -> float:
        self.conn.send("run")
        kind, value = self.conn.recv()
        return float(value)

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send("stop")
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def ratio_ci(ratios: list[float]) -> tuple[float, float] | None:
    """95 % CI of the median paired ratio, or None with fewer rounds than a distribution-free CI needs."""
    if len(ratios) < MIN_CI_SAMPLES:
        return None
    lo, hi = median_ci(np.log(ratios))
    return math.exp(lo), math.exp(hi)


def decision(ratios: list[float], policy: PairPolicy) -> str | None:
    """'tie', 'a' (A faster), 'b' (B faster), or None to take another round."""
    ci = ratio_ci(ratios)
    if ci is None or len(ratios) < policy.min_rounds:
        return None
    lo, hi = ci
    if _within_band(lo, policy) and _within_band(hi, policy):
        return "tie"
    if hi < 1 or lo > 1:
        return "tie" if _within_band(float(np.median(ratios)), policy) else ("a" if hi < 1 else "b")
    return None


def _within_band(ratio: float, policy: PairPolicy) -> bool:
    return 1 / (1 + policy.tie_band) <= ratio <= 1 + policy.tie_band


def compare(a: dict[str, Any], b: dict[str, Any], policy: PairPolicy, names: tuple[str, str] = ("a", "b")) -> dict:
    """A against B in alternating rounds; the record: rounds, each side's median ms, the median ratio
    t_A / t_B with its CI, and the outcome ('a', 'b' or 'tie', and why)."""
    t0 = time.perf_counter()
    first, second = _Candidate(a), None
    try:
        second = _Candidate(b)
        for _ in range(policy.warmup):
            first.run()
            second.run()
        ta, tb, ratios, outcome = [], [], [], None
        started = time.perf_counter()
        while outcome is None:
            if len(ratios) % 2:  # B first in every other round: a side running first would otherwise always do so
                tb.append(second.run())
                ta.append(first.run())
            else:
                ta.append(first.run())
                tb.append(second.run())
            ratios.append(ta[-1] / tb[-1])
            outcome = decision(ratios, policy)
            spent = time.perf_counter() - started
            if outcome is None and (len(ratios) >= policy.max_rounds or spent >= policy.max_seconds):
                why = f"time box ({len(ratios)} rounds, {spent:.1f} s): the CI still straddles the tie band"
                return _record(names, ta, tb, ratios, "tie", why, t0, policy)
        why = {
            "tie": f"the ratio's 95 % CI lies within +-{policy.tie_band:.0%}"
            if all(_within_band(x, policy) for x in ratio_ci(ratios))
            else f"the ratio's 95 % CI excludes 1 but its median ({float(np.median(ratios)):.3f}) lies within "
            f"+-{policy.tie_band:.0%}: a difference too small to prefer either",
            "a": f"{names[0]} is faster: the ratio's 95 % CI lies below 1",
            "b": f"{names[1]} is faster: the ratio's 95 % CI lies above 1",
        }[outcome]
        return _record(names, ta, tb, ratios, outcome, why, t0, policy)
    finally:
        first.close()
        if second is not None:
            second.close()


def _record(names, ta, tb, ratios, outcome, why, t0, policy) -> dict[str, Any]:
    ci = ratio_ci(ratios)
    return {
        "a": names[0],
        "b": names[1],
        "rounds": len(ratios),
        "a_p50_ms": float(np.median(ta)),
        "b_p50_ms": float(np.median(tb)),
        "ratio": float(np.median(ratios)),  # t_a / t_b: below 1, A is faster
        "ci": list(ci) if ci else None,
        "outcome": outcome,
        "winner": {"a": names[0], "b": names[1]}.get(outcome),
        "why": why,
        "tie_band": policy.tie_band,
        "seconds": round(time.perf_counter() - t0, 2),
        "a_ms": ta,
        "b_ms": tb,
    }


def front(entries: list[dict[str, Any]], score: str) -> list[int]:
    """Indices of the entries (with a p50_ms and a `score`, bigger is better) no other entry beats on both."""
    scored = [e for e in entries if e.get("p50_ms") is not None and e.get(score) is not None]
    return [
        e["index"]
        for e in scored
        if not any(
            o["p50_ms"] <= e["p50_ms"] and o[score] >= e[score] and (o["p50_ms"] < e["p50_ms"] or o[score] > e[score])
            for o in scored
        )
    ]


@dataclass(frozen=True)
class Contender:
    """One side of a decision between two: how to build it warm (a recipe), and what breaks a tie, both known
    before any evaluation file is read: its margin on the search files (None where it has none), how many
    of its nodes run quantized, and a canonical key (what it is, not the order a search met it in; default its
    name) that settles the rest the same way on every machine."""

    name: str
    recipe: dict[str, Any]
    margin: float | None = None
    quantized_nodes: int = 0
    key: str = ""

    @property
    def canonical(self) -> str:
        return self.key or self.name


def decide_between(a: Contender, b: Contender, policy: PairPolicy) -> dict[str, Any]:
    """The one way two candidates are decided between: timed in pairs (`compare`); the faster wins; a tie goes
    to the one further from failing its gates on the search files (where both have a margin), then to the one
    with fewer quantized nodes (closer to the model), then to the smaller canonical key: arbitrary, but not
    the noisy ranking that made A first, so two runs that tie on the same pair ship the same thing. The
    record says which and why; its raw per-round milliseconds are dropped."""
    record = compare(a.recipe, b.recipe, policy, (a.name, b.name))
    record.pop("a_ms"), record.pop("b_ms")
    if record["outcome"] != "tie":
        return record
    if a.margin is not None and b.margin is not None and a.margin != b.margin:
        winner = a if a.margin > b.margin else b
        record["tie_broken_by"] = f"margin on the search files ({a.margin:.3g} vs {b.margin:.3g})"
    elif a.quantized_nodes != b.quantized_nodes:
        winner = a if a.quantized_nodes < b.quantized_nodes else b
        record["tie_broken_by"] = f"fewer quantized nodes ({a.quantized_nodes} vs {b.quantized_nodes})"
    else:
        winner = min((a, b), key=lambda c: c.canonical)
        record["tie_broken_by"] = f"nothing else tells them apart: the smaller canonical key ({winner.canonical})"
    record["winner"] = winner.name
    return record
