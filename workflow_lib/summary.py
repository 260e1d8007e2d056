"""Stage: every benchmark CSV in one table, with speedups over PyTorch fp32 and bootstrap CIs,
and the roofline: achieved GFLOP/s at the median and the fraction of the device's peak."""

from __future__ import annotations

import argparse
import json
import logging

from . import cli
from .io import atomic_path, write_json
from .speedups import SAMPLE_KEYS, read_flops, summarize

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--flops", nargs="*", default=[], help="export sidecars (FLOPs per shape point)")
    p.add_argument("--roofline", type=json.loads, default={}, help="roofline config: cpu/gpu_peak_gflops")
    p.add_argument("--out", required=True)
    p.add_argument("--unavailable", required=True, help="JSON list of backends not measured, with reasons")

    def run(a: argparse.Namespace) -> None:
        peaks = {"cpu": a.roofline.get("cpu_peak_gflops"), "gpu": a.roofline.get("gpu_peak_gflops")}
        table, unavailable = summarize(a.csvs, a.bootstrap, read_flops(a.flops), peaks)
        with atomic_path(a.out, suffix=".csv") as tmp:
            table.sort(SAMPLE_KEYS).write_csv(tmp)
        write_json(a.unavailable, unavailable)
        log.info("summary: %d measured rows, %d backends not measured", table.height, len(unavailable))

    cli.run("summary", run, p, argv)


if __name__ == "__main__":
    main()
