"""Stage: every benchmark CSV in one table, with speedups over PyTorch fp32 and bootstrap CIs.

Speedup = median(PyTorch fp32) / median(candidate) on the same model, component, device
and shape point (end-to-end rows: same model and audio length). Its 95 % interval comes
from resampling both sets of raw timings, so a noisy machine shows as a wide interval
instead of a confident wrong number.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import polars as pl

from . import cli
from .io import atomic_path, read_json, sidecar_path, write_json

log = logging.getLogger(__name__)
KEYS = ["model", "component", "backend", "precision", "device", "point"]
# The bench CSVs' label column names a series: e2e assignments can resolve to the same
# backend/precision (a "mixed" that fell back to ORT), and the label tells them apart.
SAMPLE_KEYS = [*KEYS, "label"]


def samples_path(csv: str | Path) -> Path:
    return Path(str(csv)[: -len(".csv")] + ".samples.parquet")


def bootstrap_ratio_ci(base: np.ndarray, cand: np.ndarray, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of median(base) / median(cand)."""
    rng = np.random.default_rng(seed)
    b = np.median(rng.choice(base, size=(resamples, base.size), replace=True), axis=1)
    c = np.median(rng.choice(cand, size=(resamples, cand.size), replace=True), axis=1)
    lo, hi = np.percentile(b / c, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def _load(csvs: list[str]) -> tuple[pl.DataFrame, dict[tuple, np.ndarray], list[dict]]:
    frames, samples, unavailable = [], {}, []
    for csv in csvs:
        meta = read_json(sidecar_path(csv))
        if meta.get("status") != "measured":
            unavailable.append({k: meta.get(k) for k in ("model", "component", "backend", "precision", "assignment",
                                                          "reason")} | {"file": str(csv)})
            continue
        df = pl.read_csv(csv, infer_schema_length=0)
        rtf = pl.col("rtf").cast(pl.Float64) if "rtf" in df.columns else pl.lit(None, pl.Float64).alias("rtf")
        chain = pl.col("chain") if "chain" in df.columns else pl.lit(None, pl.Utf8).alias("chain")
        df = df.select([*SAMPLE_KEYS, pl.col("iterations").cast(pl.Int64), pl.col("p50_ms").cast(pl.Float64),
                        pl.col("mean_ms").cast(pl.Float64), pl.col("cv").cast(pl.Float64), rtf, chain])
        raw = pl.read_parquet(samples_path(csv))
        for row in df.iter_rows(named=True):
            samples[tuple(row[k] for k in SAMPLE_KEYS)] = raw.filter(
                (pl.col("device") == row["device"]) & (pl.col("point") == row["point"]))["sample_ms"].to_numpy()
        frames.append(df)
    table = pl.concat(frames) if frames else pl.DataFrame(schema={k: pl.Utf8 for k in SAMPLE_KEYS})
    return table, samples, unavailable


def summarize(csvs: list[str], resamples: int = 2000) -> tuple[pl.DataFrame, list[dict]]:
    table, samples, unavailable = _load(csvs)
    rows = []
    for row in table.iter_rows(named=True):
        e2e = row["component"] == "e2e"
        base = table.filter((pl.col("model") == row["model"]) & (pl.col("component") == row["component"])
                            & (pl.col("point") == row["point"]) & (pl.col("backend") == "pytorch")
                            & (pl.col("precision") == "fp32") & (pl.lit(e2e) | (pl.col("device") == row["device"])))
        out = {**row, "baseline_p50_ms": None, "speedup": None, "ci_low": None, "ci_high": None}
        if base.height:
            b = base.row(0, named=True)
            base_s, cand_s = samples[tuple(b[k] for k in SAMPLE_KEYS)], samples[tuple(row[k] for k in SAMPLE_KEYS)]
            lo, hi = bootstrap_ratio_ci(base_s, cand_s, resamples)
            out.update(baseline_p50_ms=b["p50_ms"], speedup=float(np.median(base_s) / np.median(cand_s)),
                       ci_low=lo, ci_high=hi)
        rows.append(out)
    schema = {**{k: pl.Utf8 for k in [*SAMPLE_KEYS, "chain"]}, "iterations": pl.Int64,
              **{k: pl.Float64 for k in ("p50_ms", "mean_ms", "cv", "rtf", "baseline_p50_ms", "speedup", "ci_low", "ci_high")}}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema), unavailable


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", required=True)
    p.add_argument("--unavailable", required=True, help="JSON list of backends not measured, with reasons")

    def run(a: argparse.Namespace) -> None:
        table, unavailable = summarize(a.csvs, a.bootstrap)
        with atomic_path(a.out, suffix=".csv") as tmp:
            table.sort(SAMPLE_KEYS).write_csv(tmp)
        write_json(a.unavailable, unavailable)
        log.info("summary: %d measured rows, %d backends not measured", table.height, len(unavailable))

    cli.run("summary", run, p, argv)


if __name__ == "__main__":
    main()
