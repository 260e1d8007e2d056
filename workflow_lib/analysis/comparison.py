"""This run against a baseline run: per series and per chain, the ratio of medians, a rank test on the raw
samples, and a mark, in the manner of asv's `compare` and pyperf's `compare_to`.

A run's snapshot (written by the summary stage beside summary.csv) holds, per measured or unmeasured
series, its raw samples, its fidelity verdict, the sha256 of what it ran, the runtime versions and
the CPU. Two snapshots compare series by series:

- not comparable: the artifact, a runtime version or the host changed (the mark says which): the
  two numbers time different things;
- newly failing / fixed: measured and passing in one run, unmeasured or failing its gates in the other;
- regressed / improved: the median moved by at least `factor` (default 1.10) and the change is
  significant: Mann-Whitney U p < 0.002 on the raw samples, or, where too few samples make that
  impossible, 99 % CIs of the two medians that do not overlap;
- unchanged: anything else (a change below the factor, or not significant, is not reported).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..core.files import read_json
from ..core.paths import samples_path, sidecar_path
from ..core.timing import MIN_CI_SAMPLES, median_ci

FACTOR = 1.10
ALPHA = 0.002
KEYS = ["model", "component", "backend", "variant", "device", "point", "series"]
SNAPSHOT = {
    **{k: pl.Utf8 for k in KEYS},
    "status": pl.Utf8,  # measured | unavailable
    "fidelity": pl.Utf8,  # passed | failed | (empty: no gate of its own)
    "artifact_sha256": pl.Utf8,
    "versions": pl.Utf8,
    "cpu": pl.Utf8,
    "samples_ms": pl.List(pl.Float64),
}
MARKS = ("regressed", "improved", "newly failing", "fixed", "not comparable", "unchanged", "new", "gone")


def snapshot(csvs: list[str]) -> pl.DataFrame:
    """A run's benchmark CSVs as one comparable table: per measured row its raw samples and what it ran; per
    series that was not measured, one row with the status (device, point and series `*`)."""
    rows = []
    for csv in csvs:
        meta = read_json(sidecar_path(csv))
        if meta.get("status") != "measured":
            what = meta.get("assignment")
            rows.append(
                {
                    "model": meta.get("model"),
                    "component": "chain" if what else meta.get("component"),
                    "backend": meta.get("backend") or "*",
                    "variant": meta.get("variant") or "*",
                    "device": "*",
                    "point": "*",
                    "series": what or "*",
                    "status": "unavailable",
                }
            )
            continue
        raw = pl.read_parquet(samples_path(csv))
        for r in pl.read_csv(csv, infer_schema_length=0).iter_rows(named=True):
            ms = raw.filter((pl.col("device") == r["device"]) & (pl.col("point") == r["point"]))["sample_ms"]
            rows.append(
                {
                    **{k: r[k] for k in KEYS},
                    "status": "measured",
                    "fidelity": r.get("fidelity") or "",
                    "artifact_sha256": meta.get("artifact_sha256"),
                    "versions": r.get("versions"),
                    "cpu": r.get("cpu"),
                    "samples_ms": ms.to_list(),
                }
            )
    return pl.DataFrame([{k: r.get(k) for k in SNAPSHOT} for r in rows], schema=SNAPSHOT, orient="row")


def read_snapshot(path: str | Path) -> pl.DataFrame:
    """A snapshot file, or the one a results directory (or its bench/ folder) holds."""
    path = Path(path)
    for candidate in (path, path / "snapshot.parquet", path / "bench" / "snapshot.parquet"):
        if candidate.is_file():
            return pl.read_parquet(candidate)
    raise FileNotFoundError(f"no run snapshot at {path} (a results directory, or its bench/snapshot.parquet)")


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with a tie correction and a
    continuity correction): are the samples of one run stochastically larger than the other's?"""
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return 1.0
    both = np.concatenate([a, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(both.size)
    sorted_values = both[order]
    i = 0
    while i < both.size:  # average ranks over ties
        j = i
        while j + 1 < both.size and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    _, counts = np.unique(both, return_counts=True)
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - float((counts**3 - counts).sum()) / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / sigma
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def _changed(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """What makes the two numbers time different things."""
    reasons = []
    if new["artifact_sha256"] and old["artifact_sha256"] and new["artifact_sha256"] != old["artifact_sha256"]:
        reasons.append("artifact changed")
    if new["cpu"] != old["cpu"]:
        reasons.append(f"host changed ({old['cpu']} -> {new['cpu']})")
    a, b = json.loads(old["versions"] or "{}"), json.loads(new["versions"] or "{}")
    moved = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if moved:
        reasons.append("runtime versions changed: " + ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" for k in moved))
    return reasons


def _passing(row: dict[str, Any]) -> bool:
    return row["status"] == "measured" and row["fidelity"] != "failed"


def _series(key: tuple) -> tuple:
    """A measured row's key, as a series that was not measured is recorded (device, point `*`)."""
    k = dict(zip(KEYS, key, strict=True))
    if k["component"] == "chain":
        return (k["model"], "chain", "*", "*", "*", "*", k["series"])
    return (k["model"], k["component"], k["backend"], k["variant"], "*", "*", "*")


def compare_one(new: dict[str, Any] | None, old: dict[str, Any] | None, factor: float = FACTOR) -> dict[str, Any]:
    """One series: its mark, why, and the numbers behind it (the key of whichever run measured it)."""
    measured = [r for r in (new, old) if r is not None and r["status"] == "measured"]
    key = {k: (measured[0] if measured else new or old)[k] for k in KEYS}
    if old is None:
        return {**key, "mark": "new", "why": "not in the baseline run"}
    if new is None:
        return {**key, "mark": "gone", "why": "not in this run"}
    if _passing(old) and not _passing(new):
        why = "not measured in this run" if new["status"] != "measured" else "fails its gates in this run"
        return {**key, "mark": "newly failing", "why": why}
    if not _passing(old) and _passing(new):
        return {**key, "mark": "fixed", "why": "measured and passing now, not in the baseline run"}
    if not _passing(new):
        return {**key, "mark": "unchanged", "why": "failing or unmeasured in both runs"}
    changed = _changed(new, old)
    a, b = np.asarray(old["samples_ms"]), np.asarray(new["samples_ms"])
    out: dict[str, Any] = {
        **key,
        "old_p50_ms": float(np.median(a)),
        "new_p50_ms": float(np.median(b)),
        "ratio": float(np.median(b) / np.median(a)),  # above 1: slower now
        "old_n": int(a.size),
        "new_n": int(b.size),
        "p_value": mann_whitney_p(b, a),
    }
    if changed:
        return {**out, "mark": "not comparable", "why": "; ".join(changed)}
    significant = out["p_value"] < ALPHA
    how = f"Mann-Whitney p {out['p_value']:.2g}"
    if not significant and min(a.size, b.size) >= MIN_CI_SAMPLES:
        (alo, ahi), (blo, bhi) = median_ci(a, 0.99), median_ci(b, 0.99)
        significant = bhi < alo or blo > ahi
        how += "; 99 % CIs of the medians " + ("do not overlap" if significant else "overlap")
    ratio = out["ratio"]
    if ratio >= factor and significant:
        return {**out, "mark": "regressed", "why": f"{ratio:.2f}x slower ({how})"}
    if ratio <= 1 / factor and significant:
        return {**out, "mark": "improved", "why": f"{1 / ratio:.2f}x faster ({how})"}
    size = "within the factor" if 1 / factor < ratio < factor else "not significant"
    return {**out, "mark": "unchanged", "why": f"ratio {ratio:.3f}, {size} ({how})"}


def compare(new: pl.DataFrame, old: pl.DataFrame, factor: float = FACTOR) -> pl.DataFrame:
    """Every series of either run, compared; regressions and newly failing first."""

    def index(frame: pl.DataFrame) -> dict[tuple, dict[str, Any]]:
        return {tuple(r[k] for k in KEYS): r for r in frame.iter_rows(named=True)}

    a, b = index(old), index(new)
    rows = []
    for k in sorted(set(a) | set(b), key=lambda k: [str(x) for x in k]):
        if "*" in k[4:6] and (any(_series(m) == k for m in a) or any(_series(m) == k for m in b)):
            continue  # an unmeasured series is compared through the rows it has in the other run
        new = b.get(k) or b.get(_series(k))  # measured there, or recorded as not measured
        old = a.get(k) or a.get(_series(k))
        rows.append(compare_one(new, old, factor))
    schema = {
        **{k: pl.Utf8 for k in KEYS},
        "mark": pl.Utf8,
        "why": pl.Utf8,
        **{k: pl.Float64 for k in ("old_p50_ms", "new_p50_ms", "ratio", "p_value")},
        "old_n": pl.Int64,
        "new_n": pl.Int64,
    }
    frame = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    return frame.sort(pl.col("mark").replace_strict({m: i for i, m in enumerate(MARKS)}, default=len(MARKS)))
