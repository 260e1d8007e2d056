"""Stage: per-component latency of one backend and graph variant, one process per backend.

ONNX Runtime's spinning worker threads slow other frameworks in the same process, so each
benchmark job measures exactly one backend, on a slot of `bench.threads` cores of its own
(slots.py). A backend whose artifact did not pass validation produces a CSV with no rows
and a sidecar saying why: no number is ever invented. Backends validated inline
(torch.compile, and PyTorch fp16) are checked against PyTorch fp32 here, before any timing;
compile time is kept out of the samples.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from collections.abc import Callable
from typing import Any

from ..analysis import parity
from ..analysis.results import runtime_versions, series_name, write_results
from ..core import variants
from ..core.errors import Unavailable
from ..core.files import now, read_json, sha256_file
from ..core.samples import read_sample_set
from ..core.spec import ComponentSpec
from ..jobs import cli
from ..jobs.host import cpu_name, cpu_peak_gflops, gpu_name
from ..jobs.timing import Policy, Samples, measure, stats
from ..runtimes import registry as backends
from ..runtimes.runner import Runner

log = logging.getLogger(__name__)


def benchmark(
    spec: ComponentSpec,
    backend: str,
    variant: str,
    settings: dict[str, Any],
    artifact: str | None = None,
    marker: dict[str, Any] | None = None,
    reference: str | None = None,
    threads: int = 0,
    calibration: str | None = None,
    search_files: int | None = None,
    ships: list[str] | None = None,
) -> tuple[list[dict], Samples, dict[str, Any]]:
    """Rows (one per device and dim point), their raw samples, and what the runners recorded; `ships`: only on
    the device kinds a decision ships the series on.

    Raises Unavailable with the reason when the backend cannot be timed here.
    """
    b = backends.get(backend)
    b.check_validated(marker)
    policy = Policy.from_settings(settings)
    versions_json = runtime_versions()
    rows, samples, runners = [], {}, {}
    check = parity.reference(spec, [reference, calibration]) if b.checks_inline(variant) else None
    judged, files = None, None
    if check is not None and calibration:  # a fidelity gate checked inline: on the search files, like a marker
        judged, files = read_sample_set(calibration).judged("search", [i.name for i in spec.inputs], search_files)
    devices = [d for d in b.devices(variant, artifact) if ships is None or d.split(":")[0] in ships]
    if not devices:
        raise Unavailable(f"{backend} {variant} ships on none of this host's devices ({', '.join(ships or [])})")
    for device in devices:
        runner = b.open_runner(spec, variant, artifact, threads, device)
        gpu = gpu_name() if device == "cuda" else None
        where = device if device == "cpu" else f"cuda:{gpu}"
        record = runners.setdefault(where, {})
        if check is not None:
            result = parity.check(spec, check, runner, variant, judged, 0, files)
            record["parity"] = result
            if not result["ok"]:
                raise Unavailable(parity.describe_failure(spec, result, f"{backend} {variant} on {where}"))
        peak = (
            cpu_peak_gflops(threads) if device == "cpu" else {"gflops": None, "source": "set roofline.gpu_peak_gflops"}
        )
        env = {
            "threads": threads,
            "cpu": cpu_name(),
            "gpu": gpu,
            "versions": versions_json,
            "created": now(),
            "peak_gflops": peak["gflops"],
            "peak_source": peak["source"],
        }
        for point in settings.get("points", ["min", "opt", "max"]):
            dims = spec.point(point)
            feeds = spec.make_inputs(dims)
            step = runner.prepare(feeds)
            ms, how = _timed(runner, step, policy, record, point)
            s = stats(ms)
            batch = int(dims.get("batch", 1))
            rows.append(
                {
                    "model": spec.model,
                    "component": spec.component,
                    "backend": backend,
                    "variant": variant,
                    "precision": variants.get(variant).precision,
                    "device": where,
                    "series": series_name(backend, variant, device),
                    "point": point,
                    "dims": json.dumps(dims, sort_keys=True),
                    "shape": json.dumps({k: list(v.shape) for k, v in feeds.items()}),
                    "batch": batch,
                    "warmup": how["warmup_runs"],
                    **s,
                    "rel_ci": how["rel_ci"],
                    "stop": how["stop"],
                    "throughput": batch / (s["p50_ms"] / 1e3),
                    **env,
                }
            )
            samples[(where, point)] = ms
            log.info(
                "%s %s %s %s %s: p50 %.3f ms (n=%d, cv %.2f)",
                spec.name,
                backend,
                variant,
                where,
                point,
                s["p50_ms"],
                s["iterations"],
                s["cv"],
            )
        record["runner"] = runner.info
    return rows, samples, runners


def _timed(
    runner: Runner, step: Callable[[], Any], policy: Policy, record: dict[str, Any], point: str
) -> tuple[list[float], dict[str, Any]]:
    """Samples of one point; if a runner compiled during them (a late recompile), time again, warm."""
    graphs = runner.info.get("graphs")
    timed = measure(step, runner.sync, policy, runner.timer)
    if runner.info.get("graphs") != graphs:
        record.setdefault("retimed_after_compile", []).append(point)
        timed = measure(step, runner.sync, policy, runner.timer)
    return timed


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=list(backends.REGISTRY), required=True)
    p.add_argument("--variant", choices=list(variants.DERIVED), required=True)
    p.add_argument("--artifact", help="what the backend consumes (checkpoint, ONNX, IR, engine)")
    p.add_argument("--marker", help="validation marker gating the artifact")
    p.add_argument("--reference", help="PyTorch's outputs the export stored (.npz), for backends checked inline")
    p.add_argument("--calibration", help="the sample set whose search files an inline fidelity gate is judged on")
    p.add_argument("--search-files", type=int, help="an even spread of this many of them (the variant's setting)")
    p.add_argument("--settings", required=True, type=json.loads, help="bench config section as JSON")
    p.add_argument("--ships", nargs="+", help="time only on these device kinds: where a decision ships the series")
    p.add_argument("--deferred", nargs="*", default=[], help="points left to the job that times what ships")
    p.add_argument("--out", required=True)

    def about(a: argparse.Namespace) -> dict[str, Any]:
        """What every sidecar of this job opens with: which series of which component, from which artifact."""
        return {
            "stage": "bench",
            "model": a.spec.model,
            "component": a.spec.component,
            "backend": a.backend,
            "variant": a.variant,
            "artifact": a.artifact,
            "created": now(),
        }

    def run(a: argparse.Namespace) -> None:
        marker = read_json(a.marker) if a.marker else None
        meta = {
            **about(a),
            "artifact_sha256": sha256_file(a.artifact) if a.artifact and os.path.isfile(a.artifact) else None,
            "settings": a.settings,
            "host": platform.node(),
            "pid": os.getpid(),
            "cores": sorted(os.sched_getaffinity(0)),
        }
        if a.ships:
            meta["ships"] = a.ships
        if a.deferred:
            meta["deferred"] = {
                "points": a.deferred,
                "why": f"not timed at {', '.join(a.deferred)}: only where it ships (bench.prune); the decision reads "
                f"{', '.join(a.settings['points'])} alone",
            }
        if marker and marker.get("error"):
            meta["error"] = marker["error"]  # not timed because of an error upstream: a failure, named as one
        try:
            rows, samples, runners = benchmark(
                a.spec,
                a.backend,
                a.variant,
                a.settings,
                a.artifact,
                marker,
                a.reference,
                a.threads,
                a.calibration,
                a.search_files,
                a.ships,
            )
            meta.update(status="measured", rows=len(rows), runners=runners)
        except Unavailable as e:
            rows, samples = [], {}
            meta.update(status="unavailable", reason=str(e))
            log.warning("%s %s %s: not measured: %s", a.spec.name, a.backend, a.variant, e)
        write_results(rows, samples, a.out, meta)

    def failed(a: argparse.Namespace, reason: str) -> None:
        meta = {
            **about(a),
            "status": "unavailable",
            "reason": reason,
            "log": a.log,
            "error": {"stage": "bench", "reason": reason, "log": a.log},
        }
        write_results([], {}, a.out, meta)

    cli.run("bench", run, p, argv, isolate=failed)


if __name__ == "__main__":
    main()
