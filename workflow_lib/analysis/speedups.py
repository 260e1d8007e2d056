"""Speedups over PyTorch fp32 with bootstrap confidence intervals, from benchmark CSVs.

Speedup = median(PyTorch fp32) / median(candidate) on the same model, component, device
and shape point (chain rows: same model, input length and device set). Its 95 % interval comes
from resampling both sets of raw timings, so a noisy machine shows as a wide interval
instead of a confident wrong number. Used by the summary, the deployment selection and
the partial report.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core.files import read_json
from ..core.paths import samples_path, sidecar_path
from ..core.variants import REFERENCE, REFERENCE_VARIANT
from ..jobs.timing import MIN_CI_SAMPLES

KEYS = ["model", "component", "backend", "variant", "device", "point"]
# The bench CSVs' series column names a series: chain assignments can resolve to the same
# backend/variant (a "mixed" that fell back to ORT), and the series name tells them apart.
SAMPLE_KEYS = [*KEYS, "series"]
FLOATS = (
    "p50_ms",
    "mean_ms",
    "cv",
    "rel_ci",
    "rtf",
    "baseline_p50_ms",
    "speedup",
    "ci_low",
    "ci_high",
    "gflop",
    "gflops",
    "peak_gflops",
    "peak_fraction",
)
STRINGS = [*SAMPLE_KEYS, "chain", "dims", "peak_source", "fidelity", "fidelity_reason", "baseline_device"]
SCHEMA = {**{k: pl.Utf8 for k in STRINGS}, "iterations": pl.Int64, **{k: pl.Float64 for k in FLOATS}}
# Columns of the CSVs that are neither keys nor timings: a chain plug-in's scores (<group>_<metric>), kept as floats
_NOT_SCORES = {
    *SCHEMA,
    "precision",
    "dims",
    "shape",
    "batch",
    "assignment",
    "input_seconds",
    "warmup",
    "std_ms",
    "min_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "stop",
    "throughput",
    "threads",
    "cpu",
    "gpu",
    "versions",
    "created",
    "files",
}
# FLOPs per (model, component, point), from the export sidecars
Flops = dict[tuple[str, str, str], int]


def bootstrap_ratio_ci(
    base: np.ndarray, cand: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of median(base) / median(cand); None when either side has fewer samples
    than a CI of a median needs (MIN_CI_SAMPLES)."""
    if min(base.size, cand.size) < MIN_CI_SAMPLES:
        return None
    rng = np.random.default_rng(seed)
    b = np.median(rng.choice(base, size=(resamples, base.size), replace=True), axis=1)
    c = np.median(rng.choice(cand, size=(resamples, cand.size), replace=True), axis=1)
    lo, hi = np.percentile(b / c, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def score_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in _NOT_SCORES]


def load(csvs: list[str]) -> tuple[pl.DataFrame, dict[tuple, np.ndarray], list[dict]]:
    """Measured rows, their raw samples by series, and the CSVs whose backend did not run (with reasons)."""
    frames, samples, unavailable = [], {}, []
    for csv in csvs:
        meta = read_json(sidecar_path(csv))
        if meta.get("status") != "measured":
            unavailable.append(
                {k: meta.get(k) for k in ("model", "component", "backend", "variant", "assignment", "reason", "error")}
                | {"file": str(csv)}
            )
            continue
        df = pl.read_csv(csv, infer_schema_length=0)

        def optional(name: str, dtype: pl.DataType, columns: list[str] = df.columns) -> pl.Expr:
            return pl.col(name).cast(dtype) if name in columns else pl.lit(None, dtype).alias(name)

        df = df.select(
            [
                *SAMPLE_KEYS,
                pl.col("iterations").cast(pl.Int64),
                pl.col("p50_ms").cast(pl.Float64),
                pl.col("mean_ms").cast(pl.Float64),
                pl.col("cv").cast(pl.Float64),
                optional("rel_ci", pl.Float64),
                optional("rtf", pl.Float64),
                optional("chain", pl.Utf8),
                optional("dims", pl.Utf8),
                optional("peak_gflops", pl.Float64),
                optional("peak_source", pl.Utf8),
                *(pl.col(k).cast(pl.Float64) for k in score_columns(df.columns)),
                optional("fidelity", pl.Utf8),
                optional("fidelity_reason", pl.Utf8),
            ]
        )
        raw = pl.read_parquet(samples_path(csv))
        for row in df.iter_rows(named=True):
            samples[tuple(row[k] for k in SAMPLE_KEYS)] = raw.filter(
                (pl.col("device") == row["device"]) & (pl.col("point") == row["point"])
            )["sample_ms"].to_numpy()
        frames.append(df)
    table = pl.concat(frames, how="diagonal") if frames else pl.DataFrame(schema={k: pl.Utf8 for k in SAMPLE_KEYS})
    return table, samples, unavailable


def read_flops(export_sidecars: list[str]) -> Flops:
    out: Flops = {}
    for path in export_sidecars:
        meta = read_json(path)
        for point, f in (meta.get("flops") or {}).items():
            out[(meta["model"], meta["component"], point)] = int(f["flops"])
    return out


def _roofline(row: dict, flops: Flops, peaks: dict[str, float | None]) -> dict:
    """Achieved GFLOP/s at the median and its fraction of the device's peak (config value, else the estimate)."""
    n = flops.get((row["model"], row["component"], row["point"]))
    configured = peaks.get("gpu" if row["device"].startswith("cuda") else "cpu")
    peak = configured or row.get("peak_gflops")
    source = "config" if configured else row.get("peak_source")
    if not n or not row["p50_ms"]:
        return {"gflop": None, "gflops": None, "peak_gflops": peak, "peak_source": source, "peak_fraction": None}
    gflops = n / 1e9 / (row["p50_ms"] / 1e3)
    return {
        "gflop": n / 1e9,
        "gflops": gflops,
        "peak_gflops": peak,
        "peak_source": source,
        "peak_fraction": gflops / peak if peak else None,
    }


def summarize(
    csvs: list[str], resamples: int = 2000, flops: Flops | None = None, peaks: dict[str, float | None] | None = None
) -> tuple[pl.DataFrame, list[dict]]:
    """Every measured row with its baseline (PyTorch fp32 on the same device: a chain's on the same device
    set), speedup and CI, and its roofline numbers; plus what was not measured."""
    table, samples, unavailable = load(csvs)
    flops, peaks = flops or {}, peaks or {}
    rows = []
    for row in table.iter_rows(named=True):
        base = table.filter(
            (pl.col("model") == row["model"])
            & (pl.col("component") == row["component"])
            & (pl.col("point") == row["point"])
            & (pl.col("backend") == REFERENCE)
            & (pl.col("variant") == REFERENCE_VARIANT)
            & (pl.col("device") == row["device"])
        )
        out = {
            **row,
            "baseline_p50_ms": None,
            "baseline_device": None,
            "speedup": None,
            "ci_low": None,
            "ci_high": None,
            **_roofline(row, flops, peaks),
        }
        if base.height:
            b = base.row(0, named=True)
            base_s, cand_s = samples[tuple(b[k] for k in SAMPLE_KEYS)], samples[tuple(row[k] for k in SAMPLE_KEYS)]
            ci = bootstrap_ratio_ci(base_s, cand_s, resamples)
            out.update(
                baseline_p50_ms=b["p50_ms"],
                baseline_device=b["device"],
                speedup=float(np.median(base_s) / np.median(cand_s)),
                ci_low=ci[0] if ci else None,
                ci_high=ci[1] if ci else None,
            )
        rows.append(out)
    extra = [c for c in table.columns if c not in SCHEMA]
    schema = {**SCHEMA, **{c: pl.Float64 for c in extra}}
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return frame, unavailable
