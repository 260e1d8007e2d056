"""Gates: thresholds named min_<metric> / max_<metric>, applied to per-file scores by a statistic that
predicts files nobody has seen.

One owner for what a gate is, shared by the component variants' fidelity gates (INT8 markers and the
search) and the chain's gates (chain.gates). A gate key must name a registered metric
(analysis/metrics.py) in its own direction (`min_` for a metric where higher is better, `max_` where
lower is): a typo, or a bound on the wrong side, would otherwise switch the gate off.

The statistic (config `gating`): by default a one-sided normal tolerance bound, the value that at
least `coverage` of all files of this kind exceed with `confidence` (mean - k s, k from the noncentral
t distribution), so a gate passed on the search files predicts the share of unseen files that pass
too; the worst file, the fraction passing and every file's value are recorded beside it. With fewer
than `min_files` files no bound can be formed: the worst file decides and the record says so. A
value that is not a number (NaN), or infinitely bad, on any file fails the gate; so does a metric
that could not be computed there: a gate that cannot be checked is not passed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics

BOUNDS = {"min": True, "max": False}  # the bound -> the direction (higher is better) it belongs to


@dataclass(frozen=True)
class Statistic:
    """How per-file values become one number held against a gate's limit."""

    kind: str = "tolerance"  # tolerance | worst
    coverage: float = 0.9  # the share of files the bound holds for
    confidence: float = 0.9
    min_files: int = 4  # below this, no bound can be formed: the worst file decides

    @classmethod
    def from_settings(cls, s: dict[str, Any] | None) -> Statistic:
        s = s or {}
        return cls(**{k: type(getattr(cls, k))(s[k]) for k in cls.__dataclass_fields__ if k in s})

    def describe(self) -> str:
        if self.kind == "worst":
            return "the worst file"
        return (
            f"a {self.confidence:.0%}-confidence bound on the value {self.coverage:.0%} of files reach "
            f"(normal tolerance bound; the worst file below {self.min_files} files)"
        )


WORST = Statistic("worst")


def higher_is_better(key: str) -> bool:
    """A gate key's direction, from its bound: `min_snr_db`, or a chain's `<group>.min_snr_db`."""
    return BOUNDS[key.rpartition(".")[2].partition("_")[0]]


@functools.cache
def tolerance_factor(n: int, coverage: float, confidence: float) -> float:
    """One-sided normal tolerance factor k: mean - k s lies below the `coverage` quantile with `confidence`."""
    from scipy.stats import nct, norm

    return float(nct.ppf(confidence, n - 1, norm.ppf(coverage) * math.sqrt(n)) / math.sqrt(n))


def bound(values: list[float], higher_is_better: bool, statistic: Statistic) -> tuple[float, str]:
    """The statistic's value over finite per-file values, and which statistic it was."""
    worst = min(values) if higher_is_better else max(values)
    if statistic.kind == "worst" or len(values) < statistic.min_files:
        return worst, "worst file"
    a = np.asarray(values, np.float64)
    k = tolerance_factor(a.size, statistic.coverage, statistic.confidence)
    spread = k * float(a.std(ddof=1))
    return (float(a.mean()) - spread if higher_is_better else float(a.mean()) + spread), f"tolerance bound (k {k:.2f})"


def gate_keys(gates: dict[str, Any], allowed: tuple[str, ...] | list[str], where: str) -> list[str]:
    """Problems with gate keys: each must be min_<metric> / max_<metric> of a metric in `allowed`, on the side
    its direction asks for, with a number as its limit."""
    problems = []
    for key, limit in gates.items():
        bound, _, name = key.partition("_")
        if bound not in BOUNDS or name not in allowed:
            choices = [f"{'min' if metrics.get(m).higher_is_better else 'max'}_{m}" for m in allowed]
            problems.append(f"{where}.{key}: not a gate (allowed: {', '.join(choices)})")
        elif metrics.get(name).higher_is_better != BOUNDS[bound]:
            better = "higher" if metrics.get(name).higher_is_better else "lower"
            problems.append(
                f"{where}.{key}: {better} {name} is better, so its gate is a {'min' if better == 'higher' else 'max'}_"
            )
        elif not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit != limit:
            problems.append(f"{where}.{key}: the limit must be a number, not {limit!r} (a gate without one is no gate)")
    return problems


def judge(
    per_file: list[dict[str, Any]],
    gates: dict[str, float],
    files: list[Any] | None = None,
    statistic: Statistic = WORST,
) -> dict:
    """Every threshold applied to the per-file values by `statistic`: the status, why, and per gate the
    statistic's value and margin (positive: passed by that much), the worst file and its value, the fraction
    of files passing on their own, and every file's value."""
    files = list(range(len(per_file))) if files is None else files
    problems, record = [], {}
    for key, limit in sorted(gates.items()):
        bound_name, _, name = key.partition("_")
        metric = metrics.get(name)
        values = [(m.get(name), f, m) for m, f in zip(per_file, files, strict=True)]
        entry: dict[str, Any] = {"limit": limit, "margin": None, "worst": None, "file": None, "value": None}
        record[key] = entry
        missing = [(f, m.get(f"{name}_error", "not measured")) for v, f, m in values if v is None]
        if missing or not values:
            why = missing[0][1] if missing else "no file to judge"
            problems.append(f"{name} unavailable ({why})")
            entry["file"] = missing[0][0] if missing else None
            continue
        worst_possible = -math.inf if metric.higher_is_better else math.inf
        nan = [f for v, f, _ in values if v != v]
        hopeless = [f for v, f, _ in values if v == worst_possible]
        if nan or hopeless:
            problems.append(
                f"{name} is not a number on {nan[0]}" if nan else f"{name} is {worst_possible} on {hopeless[0]}"
            )
            entry["file"] = (nan or hopeless)[0]
            continue
        worst = metric.worst(v for v, _, _ in values)
        good = math.inf if metric.higher_is_better else -math.inf
        finite = [v for v, _, _ in values if v != good] or [worst]
        value, how = bound(finite, metric.higher_is_better, statistic) if worst != good else (good, "every file exact")
        margin = value - limit if metric.higher_is_better else limit - value
        entry.update(
            value=value,
            statistic=how,
            margin=margin,
            worst=worst,
            file=next(f for v, f, _ in values if v == worst),
            passing=sum((v >= limit) if metric.higher_is_better else (v <= limit) for v, _, _ in values) / len(values),
            values={str(f): v for v, f, _ in values},
        )
        if margin < 0:
            sign = "<" if bound_name == "min" else ">"
            where = how if how != "worst file" else entry["file"] if len(values) > 1 else ""
            problems.append(f"{name} {value:.3g} {sign} {limit:g}" + (f" ({where})" if where else ""))
    return {
        "status": "failed" if problems else "passed",
        "reason": "; ".join(problems),
        "gates": record,
        "files": len(per_file),
        "statistic": statistic.describe(),
    }


def relative_margin(verdict: dict[str, Any]) -> float:
    """The tightest gate's margin relative to its limit (one number to compare two candidates by: bigger
    is further from failing); -inf where a gate could not be checked, +inf when nothing is gated."""
    margins = [
        g["margin"] / (abs(g["limit"]) or 1.0) if g["margin"] is not None else float("-inf")
        for g in verdict["gates"].values()
    ]
    return min(margins, default=float("inf"))
