"""Cold run, no-op and touch-one-checkpoint of the demo, timed, with job counts.

    .venv/bin/python benchmarks/rebuilds.py [--workdir DIR] [--cores N]

Runs the repository's Snakefile and config/config.yaml in a fresh working directory (default:
a temp dir), so your own results/ are untouched:
  1. cold: `snakemake --cores N` from nothing (wall time, jobs run);
  2. no-op: the same command again (wall time; should run 0 jobs);
  3. touch: `touch` the vocoder checkpoint (bytes unchanged), then a dry run (jobs planned);
  4. the demo's per-component p50 latency at the opt point per backend, from summary.csv.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, cores: str, *args: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config" / "config.yaml"), "--cores", cores, *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def jobs_done(log: str) -> int:
    m = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    return int(m[-1][0]) if m else 0


def planned(log: str) -> int:
    m = re.search(r"^total\s+(\d+)", log, re.M)
    return int(m.group(1)) if m else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, help="where to run (default: a new temp dir)")
    p.add_argument("--cores", default="all")
    a = p.parse_args()
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="svc-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}, {os.cpu_count()} CPUs visible, --cores {a.cores}")
    cold, log = snakemake(workdir, a.cores)
    print(f"cold run: {cold:7.1f} s, {jobs_done(log)} jobs")
    noop, log = snakemake(workdir, a.cores)
    print(f"no-op:    {noop:7.1f} s, {jobs_done(log)} jobs")
    ckpt = workdir / "results/checkpoints/svc_demo/vocoder.safetensors"
    os.utime(ckpt)
    touch, log = snakemake(workdir, a.cores, "-n", "--quiet", "rules")
    print(f"touch vocoder checkpoint ({ckpt.stat().st_size / 1e6:.0f} MB, same bytes), dry run: {touch:.1f} s, "
          f"{planned(log)} jobs planned")
    summary = workdir / "results/bench/summary.csv"
    import polars as pl
    df = pl.read_csv(summary).filter((pl.col("point") == "opt") & (pl.col("component") != "e2e"))
    table = df.pivot(on="label", index="component", values="p50_ms", aggregate_function="first").sort("component")
    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=1, tbl_width_chars=200):
        print("p50 ms at the opt point:")
        print(table)


if __name__ == "__main__":
    main()
