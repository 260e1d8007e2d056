"""The demo's first run, timed: cold run, no-op, touch-one-checkpoint, a second cold run that reuses the
torch.compile cache, and where the time went.

    .venv/bin/python benchmarks/rebuilds.py [--workdir DIR] [--cores N] [--second-run]

Runs the repository's Snakefile and config/config.yaml in a fresh working directory (default:
a temp dir; the config's speech files, config/audio/, are copied there, since config paths are
relative to the working directory), so your own results/ are untouched:
  1. cold: `snakemake --cores N` from nothing (wall time, jobs run, job seconds per stage: run_cost.py);
  2. no-op: the same command again (wall time; should run 0 jobs);
  3. touch: `touch` the vocoder checkpoint (bytes unchanged), then a dry run (jobs planned);
  4. with --second-run: a cold run in another new directory whose torch_compile.cache_dir is the
     first run's, and the compile seconds and inductor cache hits each run recorded;
  5. the demo's per-component p50 latency at the opt point per series, from summary.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_cost import show  # benchmarks/, this script's folder (run as a script, as documented)

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, cores: str, *args: str) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        "--cores",
        cores,
        *args,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
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


def compile_record(workdir: Path) -> dict[str, dict]:
    """Per component: torch.compile's compile seconds, graphs and inductor cache hits/misses, from the sidecars."""
    out = {}
    for meta_path in sorted((workdir / "results/bench").glob("*/*.torch_compile.fp32.csv.json")):
        meta = json.loads(meta_path.read_text())
        runner = meta.get("runners", {}).get("cpu", {}).get("runner", {})
        out[meta["component"]] = {k: runner.get(k) for k in ("compile_seconds", "graphs", "cache")}
    return out


def cold(workdir: Path, cores: str, *args: str) -> float:
    shutil.copytree(REPO / "config" / "audio", workdir / "config" / "audio", dirs_exist_ok=True)
    seconds, log = snakemake(workdir, cores, *args)
    print(f"cold run in {workdir}: {seconds:7.1f} s, {jobs_done(log)} jobs; job seconds per stage:")
    show(workdir / "results", 10)
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, help="where to run (default: a new temp dir)")
    p.add_argument("--cores", default="all")
    p.add_argument("--second-run", action="store_true", help="also a second cold run reusing the compile cache")
    a = p.parse_args()
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="svc-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}, {os.cpu_count()} CPUs visible, --cores {a.cores}")
    cold(workdir, a.cores)
    noop, log = snakemake(workdir, a.cores)
    print(f"no-op:    {noop:7.1f} s, {jobs_done(log)} jobs")
    ckpt = workdir / "results/packages/svc_demo/vocoder.pth.tar"
    os.utime(ckpt)
    touch, log = snakemake(workdir, a.cores, "-n", "--quiet", "rules")
    print(
        f"touch vocoder checkpoint ({ckpt.stat().st_size / 1e6:.0f} MB, same bytes), dry run: {touch:.1f} s, "
        f"{planned(log)} jobs planned"
    )
    print("torch.compile:", json.dumps(compile_record(workdir)))
    if a.second_run:
        second = Path(tempfile.mkdtemp(prefix="svc-demo-second-"))
        cache = json.dumps({"cache_dir": str(workdir / "results/compile_cache")})
        cold(second, a.cores, "--config", f"torch_compile={cache}")
        print("torch.compile, second run:", json.dumps(compile_record(second)))
    import polars as pl

    df = pl.read_csv(workdir / "results/bench/summary.csv").filter(
        (pl.col("point") == "opt") & (pl.col("component") != "e2e")
    )
    table = df.pivot(on="series", index="component", values="p50_ms", aggregate_function="first").sort("component")
    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=2, tbl_width_chars=250):
        print("p50 ms at the opt point:")
        print(table)


if __name__ == "__main__":
    main()
