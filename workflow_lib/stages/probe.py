"""Stage: what this host can run, decided once per run.

A Snakemake checkpoint runs this before any validation or benchmark is planned; the DAG is
then re-evaluated with what it found, so no job is planned whose only possible outcome here
is "unavailable" (on a CPU-only host: no TensorRT or ONNX Runtime CUDA marker, no PyTorch
fp16 benchmark). What cannot run, and exactly why, is recorded here and shown in the report.
On a cluster this runs as a GPU job when a GPU class is configured, so it probes the nodes
that run the GPU jobs.
"""

from __future__ import annotations

import argparse
import json
import logging

from ..analysis.results import RUNTIMES
from ..core import variants as table
from ..core.errors import Unavailable
from ..core.files import now, versions, write_json
from ..jobs import cli, host
from ..jobs.host import device_info
from ..runtimes import registry

log = logging.getLogger(__name__)


def probe(config: dict, backends: list[str], variants: list[str], features: list[str] | None = None) -> dict:
    """Per backend and variant, where it runs here and why not; a precision runs on the CPU only where the CPU
    (`features`, default this one's) has it natively (jobs/host.py NATIVE): emulated, it is slower than fp32."""
    features = host.cpu_features() if features is None else features
    runs: dict[str, dict] = {}
    for name in backends:
        b = registry.get(name)
        for variant in b.variants:
            if variant not in variants:
                continue
            key = f"{name}.{variant}"
            try:
                runs[key] = {"backend": name, "variant": variant, "devices": b.probe(variant, config)}
            except Unavailable as e:
                runs[key] = {"backend": name, "variant": variant, "devices": [], "reason": str(e)}
                continue
            ok, why = host.native(table.get(variant).precision, features)
            if not ok and "cpu" in runs[key]["devices"]:
                runs[key]["devices"].remove("cpu")
                if not runs[key]["devices"]:
                    runs[key]["reason"] = why
    info = device_info()
    return {
        "created": now(),
        "host": info,
        "cpu_features": features,
        "native": {p: host.native(p, features)[0] for p in host.NATIVE},
        "vnni": bool({"avx512_vnni", "avx_vnni"} & set(features)),
        "cuda": bool(info.get("gpu")),
        "versions": versions(*RUNTIMES),
        "probed_with": config,  # the config sections the backends' probes read
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument(
        "--config", required=True, type=json.loads, help="the config sections backends' probes read ({tensorrt: ...})"
    )
    p.add_argument("--backends", nargs="+", required=True)
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        record = probe(a.config, a.backends, a.variants)
        write_json(a.out, record)
        for key, r in record["runs"].items():
            log.info("%s: %s", key, ", ".join(r["devices"]) if r["devices"] else f"not here: {r['reason']}")

    cli.run("probe", run, p, argv)


if __name__ == "__main__":
    main()
