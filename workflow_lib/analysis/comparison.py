"""This run against a baseline run: per series and per chain, the ratio of medians normalised by the drift
of the machine, a significance test, and a mark, in the manner of asv's `compare` and pyperf's `compare_to`.

Absolute milliseconds drift between two runs on a shared VM by more than any useful factor (two cold runs
of one commit, nothing changed: 40 of 112 series 1.1-2.4x "slower"); what one run measures side by side is
stable. So a series is compared by its time relative to its anchor in the same run (PyTorch fp32 on the
same component, device and input: the speedup's baseline; a chain assignment's, the chain run in PyTorch
fp32), and an anchor by its time relative to the run's drift (the median over every anchor of its ratio).

A run's snapshot (written by the summary stage beside summary.csv) holds, per measured or unmeasured
series, its raw samples, its fidelity verdict, the sha256 of what it ran, the runtime versions and
the CPU. Two snapshots compare series by series:

- not comparable: the host changed: the two numbers time different machines (a changed artifact or
  runtime version is what a comparison is for: it is compared, and the why says what changed);
- newly failing / fixed: measured and passing in one run, unmeasured or failing its gates in the other;
- regressed / improved: the ratio moved by at least `factor` both relative to its anchor and scaled by the
  run's drift (a real change shows in both; an anchor that moved by chance, in one), by at least `min_ms`
  milliseconds, and significantly: a 99 % bootstrap CI of the ratio of ratios that excludes 1 (anchors:
  Mann-Whitney U p < 0.002 on the drift-scaled samples, or 99 % CIs of the two medians that do not overlap
  where too few samples make that impossible). `factor` and `min_ms` are the run-to-run noise floor,
  measured from repeated runs (BENCHMARKS.md);
- unchanged: anything else (a change below the factor or the floor, or not significant, is not reported).
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
from ..core.variants import REFERENCE, REFERENCE_VARIANT, is_reference
from ..jobs.timing import MIN_CI_SAMPLES, median_ci

# The run-to-run noise floor measured on a 2-vCPU VM (BENCHMARKS.md, 2026-12-05): over 21 pairs of seven cold runs
# of (nearly) the same graphs, a series' ratio strayed up to 3.4x both relative to its anchor and scaled by the drift,
# and up to 2.8x where it also moved by 1 ms or more (sub-millisecond series stray most), though within a run its
# median is known to ~2 %. A quieter machine: measure its own (`--factor 1 --min-ms 0`, the sidecar's `noise`).
FACTOR = 3.0
MIN_MS = 1.0
ALPHA = 0.002
RESAMPLES = 2000
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
    series that was not measured, one row with the status (device, point and series `*`); per point a series was
    not timed at (bench.prune: it did not ship there), a row with status `pruned`."""
    rows, pruned = [], []
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
        measured = list(pl.read_csv(csv, infer_schema_length=0).iter_rows(named=True))
        for r in measured:
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
        for r in {r["device"]: r for r in measured}.values():  # the points left out (bench.prune), a row each
            pruned += [
                {**{k: r[k] for k in KEYS}, "point": p, "status": "pruned", "samples_ms": []}
                for p in (meta.get("deferred") or {}).get("points", [])
            ]
    timed = {tuple(r[k] for k in KEYS) for r in rows}
    rows += [r for r in pruned if tuple(r[k] for k in KEYS) not in timed]  # not where it shipped and was timed
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


def _changed(new: dict[str, Any], old: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(what makes the two numbers time different machines: the host; what changed in what was timed: the
    artifact, runtime versions, which a comparison is for, so they are said, not excused)."""
    moved_host = [f"host changed ({old['cpu']} -> {new['cpu']})"] if new["cpu"] != old["cpu"] else []
    changes = []
    if new["artifact_sha256"] and old["artifact_sha256"] and new["artifact_sha256"] != old["artifact_sha256"]:
        changes.append("artifact changed")
    a, b = json.loads(old["versions"] or "{}"), json.loads(new["versions"] or "{}")
    moved = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if moved:
        changes.append("runtime versions changed: " + ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" for k in moved))
    return moved_host, changes


def _passing(row: dict[str, Any]) -> bool:
    return row["status"] == "measured" and row["fidelity"] != "failed"


def _series(key: tuple) -> tuple:
    """A measured row's key, as a series that was not measured is recorded (device, point `*`)."""
    k = dict(zip(KEYS, key, strict=True))
    if k["component"] == "chain":
        return (k["model"], "chain", "*", "*", "*", "*", k["series"])
    return (k["model"], k["component"], k["backend"], k["variant"], "*", "*", "*")


def is_anchor(row: dict[str, Any]) -> bool:
    return is_reference(row["backend"], row["variant"])


def ratio_of_ratios_ci(
    new: np.ndarray, new_anchor: np.ndarray, old: np.ndarray, old_anchor: np.ndarray, level: float = 0.99
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of (median(new) / median(new_anchor)) / (median(old) / median(old_anchor)),
    each of the four resampled on its own; None where a side has too few samples for a median's CI."""
    if min(a.size for a in (new, new_anchor, old, old_anchor)) < MIN_CI_SAMPLES:
        return None
    rng = np.random.default_rng(0)

    def medians(a: np.ndarray) -> np.ndarray:
        return np.median(rng.choice(a, size=(RESAMPLES, a.size), replace=True), axis=1)

    r = (medians(new) / medians(new_anchor)) / (medians(old) / medians(old_anchor))
    lo, hi = np.percentile(r, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def agreed(anchored: float, drifted: float) -> float:
    """The change both normalisations see: the one nearer 1 where both move the same way, else none (1.0)."""
    if (anchored > 1) != (drifted > 1) or 1.0 in (anchored, drifted):
        return 1.0
    return min(anchored, drifted) if anchored > 1 else max(anchored, drifted)


def compare_one(
    new: dict[str, Any] | None,
    old: dict[str, Any] | None,
    factor: float = FACTOR,
    anchors: tuple[dict[str, Any], dict[str, Any]] | None = None,
    drift: float = 1.0,
    min_ms: float = MIN_MS,
) -> dict[str, Any]:
    """One series: its mark, why, and the numbers behind it (the key of whichever run measured it). Its time
    scaled by the run's `drift` is compared, and with `anchors` (new, old) also its time relative to its
    anchor in each run: a change is as large as the smaller of the two says."""
    measured = [r for r in (new, old) if r is not None and r["status"] == "measured"]
    key = {k: (measured[0] if measured else new or old)[k] for k in KEYS}
    if old is None:
        return {**key, "mark": "new", "why": "not in the baseline run"}
    if new is None:
        return {**key, "mark": "gone", "why": "not in this run"}
    if new["status"] == old["status"] == "pruned":
        return {**key, "mark": "unchanged", "why": "not timed at this point in either run (bench.prune)"}
    if "pruned" in (new["status"], old["status"]):
        which = "this run" if new["status"] == "pruned" else "the baseline run"
        why = f"not timed at this point in {which} (bench.prune: there it did not ship)"
        return {**key, "mark": "not comparable", "why": why}
    if _passing(old) and not _passing(new):
        why = "not measured in this run" if new["status"] != "measured" else "fails its gates in this run"
        return {**key, "mark": "newly failing", "why": why}
    if not _passing(old) and _passing(new):
        return {**key, "mark": "fixed", "why": "measured and passing now, not in the baseline run"}
    if not _passing(new):
        return {**key, "mark": "unchanged", "why": "failing or unmeasured in both runs"}
    host, changes = _changed(new, old)
    a, b = np.asarray(old["samples_ms"]), np.asarray(new["samples_ms"])
    raw = float(np.median(b) / np.median(a))  # above 1: slower now
    out: dict[str, Any] = {
        **key,
        "old_p50_ms": float(np.median(a)),
        "new_p50_ms": float(np.median(b)),
        "raw_ratio": raw,
        "old_n": int(a.size),
        "new_n": int(b.size),
        "drift_ratio": raw / drift,
        "moved_ms": abs(float(np.median(b)) / drift - float(np.median(a))),  # in the baseline run's milliseconds
    }
    if anchors is not None:
        new_anchor, old_anchor = (np.asarray(r["samples_ms"]) for r in anchors)
        host += [f"its anchor's {c}" for c in _changed(*anchors)[0]]
        ratio = raw / float(np.median(new_anchor) / np.median(old_anchor))
        ci = ratio_of_ratios_ci(b, new_anchor, a, old_anchor)
        significant = ci is not None and (ci[0] > 1 or ci[1] < 1)
        how = f"relative to {REFERENCE} {REFERENCE_VARIANT} in each run; " + (
            f"99 % bootstrap CI {ci[0]:.3f}-{ci[1]:.3f}" if ci else "too few samples for a CI"
        )
        out.update(ratio=ratio, p_value=None)
    else:
        ratio = raw / drift
        out.update(ratio=ratio, p_value=mann_whitney_p(b / drift, a))
        significant = out["p_value"] < ALPHA
        how = f"scaled by the run's drift {drift:.3f}; Mann-Whitney p {out['p_value']:.2g}"
        if not significant and min(a.size, b.size) >= MIN_CI_SAMPLES:
            (alo, ahi), (blo, bhi) = median_ci(a, 0.99), median_ci(b / drift, 0.99)
            significant = bhi < alo or blo > ahi
            how += "; 99 % CIs of the medians " + ("do not overlap" if significant else "overlap")
    if host:
        return {**out, "mark": "not comparable", "why": "; ".join(host)}
    said = "".join(f"; {c}" for c in changes)
    if anchors is not None:
        how += f"; {out['drift_ratio']:.3f} scaled by the run's drift"
    out["judged_ratio"] = judged = agreed(ratio, out["drift_ratio"])
    large = out["moved_ms"] >= min_ms
    if judged >= factor and large and significant:
        return {**out, "mark": "regressed", "why": f"{ratio:.2f}x slower ({how}){said}"}
    if judged <= 1 / factor and large and significant:
        return {**out, "mark": "improved", "why": f"{1 / ratio:.2f}x faster ({how}){said}"}
    if 1 / factor < judged < factor:
        size = "within the noise floor"
    elif not large:
        size = f"moved {out['moved_ms']:.3g} ms, under the {min_ms:g} ms floor"
    else:
        size = "not significant"
    return {**out, "mark": "unchanged", "why": f"ratio {ratio:.3f}, {size} ({how}){said}"}


def drift_of(new: dict[tuple, dict[str, Any]], old: dict[tuple, dict[str, Any]]) -> float:
    """How much slower the machine ran this time: the median over the anchors both runs measured (and
    passed) of their ratio of medians. 1.0 where there is none."""
    ratios = [
        float(np.median(new[k]["samples_ms"]) / np.median(old[k]["samples_ms"]))
        for k in set(new) & set(old)
        if is_anchor(new[k]) and _passing(new[k]) and _passing(old[k]) and not _changed(new[k], old[k])[0]
    ]
    return float(np.median(ratios)) if ratios else 1.0


def compare(
    new: pl.DataFrame, old: pl.DataFrame, factor: float = FACTOR, min_ms: float = MIN_MS
) -> tuple[pl.DataFrame, float]:
    """Every series of either run, compared; regressions and newly failing first. And the run's drift."""

    def index(frame: pl.DataFrame) -> dict[tuple, dict[str, Any]]:
        return {tuple(r[k] for k in KEYS): r for r in frame.iter_rows(named=True)}

    def anchor(rows: dict[tuple, dict[str, Any]], k: tuple) -> dict[str, Any] | None:
        """PyTorch fp32 on the same component (a chain: the chain run in it), device and input, as the
        speedups take their baseline."""
        found = [r for key, r in sorted(rows.items()) if key[:2] == k[:2] and key[4:6] == k[4:6] and is_anchor(r)]
        return found[0] if found and _passing(found[0]) else None

    a, b = index(old), index(new)
    drift = drift_of(b, a)
    rows = []
    for k in sorted(set(a) | set(b), key=lambda k: [str(x) for x in k]):
        if "*" in k[4:6] and (any(_series(m) == k for m in a) or any(_series(m) == k for m in b)):
            continue  # an unmeasured series is compared through the rows it has in the other run
        new = b.get(k) or b.get(_series(k))  # measured there, or recorded as not measured
        old = a.get(k) or a.get(_series(k))
        anchors = None
        if new is not None and not is_anchor(new) and "*" not in k[4:6]:
            na, oa = anchor(b, k), anchor(a, k)
            anchors = (na, oa) if na is not None and oa is not None else None
        rows.append(compare_one(new, old, factor, anchors, drift, min_ms))
    schema = {
        **{k: pl.Utf8 for k in KEYS},
        "mark": pl.Utf8,
        "why": pl.Utf8,
        **{k: pl.Float64 for k in ("old_p50_ms", "new_p50_ms", "raw_ratio", "ratio", "drift_ratio", "judged_ratio")},
        "moved_ms": pl.Float64,
        "p_value": pl.Float64,
        "old_n": pl.Int64,
        "new_n": pl.Int64,
    }
    frame = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    order = pl.col("mark").replace_strict({m: i for i, m in enumerate(MARKS)}, default=len(MARKS))
    return frame.sort(order), drift


def noise_floor(table: pl.DataFrame, min_ms: float = MIN_MS, quantile: float = 1.0) -> dict[str, Any]:
    """Two runs of one commit compared: how far the ratios stray from 1 (the largest, or a quantile, of max(r, 1/r)
    over the series both measured): relative to the anchor, raw, and as the marks judge it (`agreed`), over every
    series and over those that moved by `min_ms` or more. The factor a comparison should use is above the last."""
    measured = table.filter(pl.col("ratio").is_not_null())

    def spread(r: np.ndarray) -> float | None:
        return float(np.quantile(np.maximum(r, 1 / r), quantile)) if r.size else None

    judged = measured["judged_ratio"].to_numpy()
    return {
        "series": measured.height,
        "normalised": spread(measured["ratio"].to_numpy()),
        "raw": spread(measured["raw_ratio"].to_numpy()),
        "judged": spread(judged),
        "judged_above_floor": spread(judged[measured["moved_ms"].to_numpy() >= min_ms]),
        "min_ms": min_ms,
    }
