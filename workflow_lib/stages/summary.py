"""Stage: every benchmark CSV in one table, with speedups over PyTorch fp32 and bootstrap CIs,
and the roofline: achieved GFLOP/s at the median and the fraction of the device's peak. Also
every series not measured here and why: from the host probe (never planned), from the
benchmark jobs (e.g. a failed gate), and chain assignments with no runnable series."""

from __future__ import annotations

import argparse
import json
import logging

from ..analysis.comparison import snapshot
from ..analysis.speedups import SAMPLE_KEYS, read_flops, summarize
from ..core.files import atomic_path, read_json, write_json
from ..jobs import cli

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--flops", nargs="*", default=[], help="export sidecars (FLOPs per shape point)")
    p.add_argument("--roofline", type=json.loads, default={}, help="roofline config: cpu/gpu_peak_gflops")
    p.add_argument("--out", required=True)
    p.add_argument("--unavailable", required=True, help="JSON list of series not measured, with reasons")
    p.add_argument("--host", help="the host probe's record: series never planned here, and why")
    p.add_argument("--unrunnable", type=json.loads, default=[], help="chain assignments with no runnable series here")
    p.add_argument("--snapshot", help="the run's raw samples and what each ran, for comparison with a later run")

    def run(a: argparse.Namespace) -> None:
        peaks = {"cpu": a.roofline.get("cpu_peak_gflops"), "gpu": a.roofline.get("gpu_peak_gflops")}
        table, unavailable = summarize(a.csvs, a.bootstrap, read_flops(a.flops), peaks)
        probe = read_json(a.host)["runs"] if a.host else {}
        unavailable += [
            {"backend": r["backend"], "variant": r["variant"], "reason": r["reason"], "source": "host probe"}
            for r in probe.values()
            if not r["devices"]
        ]
        unavailable += [{**u, "source": "host probe"} for u in a.unrunnable]
        with atomic_path(a.out, suffix=".csv") as tmp:
            table.sort(SAMPLE_KEYS).write_csv(tmp)
        write_json(a.unavailable, unavailable)
        if a.snapshot:
            with atomic_path(a.snapshot, suffix=".parquet") as tmp:
                snapshot(a.csvs).write_parquet(tmp)
        log.info("summary: %d measured rows, %d backends not measured", table.height, len(unavailable))

    cli.run("summary", run, p, argv)


if __name__ == "__main__":
    main()
