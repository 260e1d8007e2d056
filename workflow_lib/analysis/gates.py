"""Gates: thresholds named min_<metric> / max_<metric>, applied per file with the worst file deciding.

One owner for what a gate is, shared by the component variants' fidelity gates (INT8 markers and
the block search) and the chain's gates (chain.gates). A gate key must name a metric that
exists: a typo would otherwise switch the gate off.
"""

from __future__ import annotations

from typing import Any

# What a component's fidelity gate may name: every metric analysis/fidelity.py computes.
METRICS = ("snr_db", "lsd_db", "pesq", "stoi", "max_abs", "max_rel")


def gate_keys(gates: dict[str, Any], metrics: tuple[str, ...] | list[str], where: str) -> list[str]:
    """Problems with gate keys: each must be min_<metric> or max_<metric> of a metric that exists, or a
    typo (min_pesq written minimum_pesq) would switch the gate off."""
    allowed = [f"{b}_{m}" for m in metrics for b in ("min", "max")]
    return [
        f"{where}.{key}: not a gate (allowed: {', '.join(allowed)})"
        for key in gates
        if key.partition("_")[0] not in ("min", "max") or key.partition("_")[2] not in metrics
    ]


def gate(metrics: dict[str, Any], gates: dict[str, float | None]) -> tuple[str, str]:
    """('passed' | 'failed', why) of one set of metrics against min_<metric> / max_<metric> thresholds."""
    verdict = judge([metrics], gates)
    return verdict["status"], verdict["reason"]


def judge(per_file: list[dict[str, Any]], gates: dict[str, float | None], files: list[Any] | None = None) -> dict:
    """Every threshold applied to each file, the worst file deciding: the status, why, and per gate the worst
    file's value, which file, the limit and the margin (positive: passed by that much).

    A threshold whose metric was not measured (or could not be computed) on some file fails, saying so:
    a gate that cannot be checked is not passed.
    """
    files = list(range(len(per_file))) if files is None else files
    problems, record = [], {}
    for key, limit in sorted(gates.items()):
        if limit is None:
            continue
        bound, _, metric = key.partition("_")
        values = [(m.get(metric), f, m) for m, f in zip(per_file, files, strict=True)]
        missing = [(f, m.get(f"{metric}_error", "not measured")) for v, f, m in values if v is None]
        if missing or not values:
            why = missing[0][1] if missing else "no file to judge"
            problems.append(f"{metric} unavailable ({why})")
            record[key] = {"worst": None, "file": missing[0][0] if missing else None, "limit": limit, "margin": None}
            continue
        pick = min if bound == "min" else max
        worst, where, _ = pick(values, key=lambda vf: vf[0])
        margin = worst - limit if bound == "min" else limit - worst
        record[key] = {"worst": worst, "file": where, "limit": limit, "margin": margin}
        if margin < 0 or margin != margin:
            sign = "<" if bound == "min" else ">"
            problems.append(f"{metric} {worst:.3g} {sign} {limit:g}" + (f" ({where})" if len(values) > 1 else ""))
    return {
        "status": "failed" if problems else "passed",
        "reason": "; ".join(problems),
        "gates": record,
        "files": len(per_file),
    }


def relative_margin(verdict: dict[str, Any]) -> float:
    """The tightest gate's margin relative to its limit (one number to compare two candidates by: bigger
    is further from failing); +inf when nothing is gated."""
    margins = [
        g["margin"] / (abs(g["limit"]) or 1.0) if g["margin"] is not None else float("-inf")
        for g in verdict["gates"].values()
    ]
    return min(margins, default=float("inf"))
