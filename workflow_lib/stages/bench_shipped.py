"""Stage: what a model ships, timed at the points its benchmarks left out (bench.prune).

The decision reads one point (deploy.point), so every series is timed there and no other point decides
anything; how the shipped series scale (the report's latency against length, speedups at min and max) is
measured here, after the decision, for those series alone: each in a benchmark process of its own
(stages/bench.py, one backend per process), on the device kinds it ships on. PyTorch fp32, every speedup's
baseline, is timed at every point by its own benchmark. One CSV per component (all in one folder): empty
when what it ships is PyTorch fp32.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from ..analysis.results import write_results
from ..core.files import now, read_json
from ..core.paths import samples_path, sidecar_path
from ..core.variants import is_reference
from ..jobs import cli

log = logging.getLogger(__name__)


def shipped(decision: dict[str, Any], component: str) -> dict[str, list[str]]:
    """Per series a decision ships for `component` (PyTorch fp32 aside): the device kinds it ships on."""
    out: dict[str, list[str]] = {}
    for kind, entry in sorted(decision["components"].get(component, {}).items()):
        if not is_reference(entry["backend"], entry["variant"]):
            out.setdefault(f"{entry['backend']}.{entry['variant']}", []).append(kind)
    return out


def time_component(
    component: str, series: dict[str, list[str]], args: dict[str, list[str]], settings: str, threads: int
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[float]], dict[str, Any]]:
    """Each shipped series in a benchmark process of its own (on a slot of `threads` cores): the rows and samples
    of all of them (a device ships one series, so device and point still name every sample), and the sidecar."""
    rows: list[dict[str, Any]] = []
    samples: dict[tuple[str, str], list[float]] = {}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kinds in series.items():
            csv = Path(tmp) / f"{name}.csv"
            cmd = [sys.executable, "-m", "workflow_lib.stages.bench", *args[name]]
            cmd += ["--settings", settings, "--ships", *kinds, "--threads", str(threads), "--out", str(csv)]
            log.info("%s %s on %s: timing", component, name, ", ".join(kinds))
            subprocess.run(cmd, check=True)
            meta = read_json(sidecar_path(csv))
            runs.append({"series": name, "ships": kinds, **{k: meta.get(k) for k in ("status", "reason", "runners")}})
            rows += pl.read_csv(csv, infer_schema_length=0).to_dicts()
            for r in pl.read_parquet(samples_path(csv)).iter_rows(named=True):
                samples.setdefault((r["device"], r["point"]), []).append(r["sample_ms"])
    measured = [r for r in runs if r["status"] == "measured"]
    return (
        rows,
        samples,
        {
            "stage": "bench_shipped",
            "component": component,
            "created": now(),
            "settings": json.loads(settings),
            "status": "measured" if measured or not runs else "unavailable",
            "reason": "; ".join(f"{r['series']}: {r['reason']}" for r in runs if r["status"] != "measured") or None,
            "series": runs,
            "note": None if runs else "it ships PyTorch fp32, timed at every point by its own benchmark",
        },
    )


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--decision", required=True, help="what ships (JSON)")
    p.add_argument("--series", required=True, type=json.loads, help="component -> 'backend.variant' -> bench arguments")
    p.add_argument("--settings", required=True, help="bench timing settings (JSON): the points left out")
    p.add_argument("--outs", required=True, type=json.loads, help="component -> its CSV")
    p.add_argument("--bench-threads", type=int, default=0, help="each benchmark's slot of cores (bench.threads)")

    def run(a: argparse.Namespace) -> None:
        decision = read_json(a.decision)
        for component, out in sorted(a.outs.items()):
            series = shipped(decision, component)
            rows, samples, meta = time_component(component, series, a.series[component], a.settings, a.bench_threads)
            write_results(rows, samples, out, {"model": decision.get("model"), **meta})

    cli.run("bench_shipped", run, p, argv)


if __name__ == "__main__":
    main()
