"""Where a run's time went: every job's Snakemake `benchmark:` record (results/jobs/, and per GPU class
results/gpu_<class>/jobs/, whose stages are named with the class: gpu_a100/bench) summed per stage: jobs,
job-seconds, the share of them, the longest job, peak memory.

    .venv/bin/python benchmarks/run_cost.py [results] [--top 10]

Job-seconds are each job's wall seconds; a timing job (benchmarks, the deployment decision, live) holds
`bench.threads` cores (all of --cores where that is unset) for all of them, every other job one core. Each record
is the latest run of its job, so after an incremental rebuild the table mixes runs: read it after a cold run to
see what a first run costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl


def records(results: Path) -> pl.DataFrame:
    """One row per job: its stage (what its log is under), its name (the rest of the path), wall s, peak RSS MB."""
    rows = []
    for tsv in sorted(results.glob("**/jobs/**/*.tsv")):
        parts = tsv.with_suffix("").relative_to(results).parts
        at = parts.index("jobs")
        bench = pl.read_csv(tsv, separator="\t", null_values=["NA", "-"], infer_schema_length=0)
        rows.append(
            {
                "stage": "/".join((*parts[:at], parts[at + 1])),  # a GPU class's jobs apart from the shared ones
                "job": "/".join(parts[at + 2 :]),  # empty for a stage of one job (jobs/report.tsv)
                "s": float(bench["s"][0]),
                "max_rss_mb": float(bench["max_rss"][0]) if bench["max_rss"][0] is not None else None,
            }
        )
    return pl.DataFrame(rows, schema={"stage": pl.Utf8, "job": pl.Utf8, "s": pl.Float64, "max_rss_mb": pl.Float64})


def per_stage(jobs: pl.DataFrame) -> pl.DataFrame:
    """Per stage: jobs, job-seconds and their share, the longest job, the largest peak RSS; longest first."""
    total = jobs["s"].sum()
    return (
        jobs.sort("s", descending=True)
        .group_by("stage", maintain_order=True)
        .agg(
            pl.len().alias("jobs"),
            pl.col("s").sum().round(1).alias("job_s"),
            (pl.col("s").sum() / total * 100).round(1).alias("share_%"),
            pl.col("job").first().alias("longest"),
            pl.col("s").first().round(1).alias("longest_s"),
            pl.col("max_rss_mb").max().round(0).alias("max_rss_mb"),
        )
        .sort("job_s", descending=True)
    )


def show(results: Path, top: int) -> None:
    """Print the per-stage table, the totals and the `top` longest jobs, every row and name whole."""
    jobs = records(results)
    if jobs.is_empty():
        raise SystemExit(f"no job records under {results}/**/jobs/: run the workflow first")
    with pl.Config(tbl_rows=-1, tbl_width_chars=160, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        print(per_stage(jobs))
        print(f"{jobs.height} jobs, {jobs['s'].sum():.0f} job-seconds; the {top} longest:")
        print(jobs.sort("s", descending=True).head(top))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?", default="results", type=Path)
    p.add_argument("--top", type=int, default=10, help="also list this many longest jobs")
    a = p.parse_args()
    show(a.results, a.top)


if __name__ == "__main__":
    main()
