"""Do timing jobs side by side disturb each other? The same benchmark job timed alone, then beside a copy
of itself, each on a slot of its own cores (workflow_lib/slots.py), compared by median and 95 % CI.

    .venv/bin/python benchmarks/slots.py [--threads 1] [--repeats 3] [--backend onnxruntime]

Exports the demo's content encoder and flow decoder at their demo size (seeded weights) into a temp
dir, then runs `python -m workflow_lib.stages.bench` for one of them: alone (one slot), and two at once
(both components, each on its own slot). With --threads 1 on a 2-core machine that is the whole
machine split in two. Prints each run's median and CI per shape point and whether the side-by-side
median lies within the alone run's CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "warmup": 2,
    "warmup_seconds": 1.0,
    "min_iterations": 20,
    "max_iterations": 400,
    "target_rel_ci": 0.01,
    "max_seconds": 3.0,
    "points": ["opt"],
}


def prepare(d: Path) -> dict[str, str]:
    """component -> spec JSON, with its checkpoint written and its fp32 graph exported."""
    from workflow_lib.core.spec import component_spec
    from workflow_lib.stages import export
    from workflow_lib.stages.checkpoints import write_seeded

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["models"]["svc_demo"]["components"]
    specs = {}
    for comp in ("content_encoder", "flow_decoder"):
        c = dict(cfg[comp], checkpoint=str(d / f"{comp}.safetensors"))
        write_seeded(c["class"], c["kwargs"], 1234, c["checkpoint"])
        spec = component_spec("svc_demo", comp, c)
        export.export(spec, d / f"{comp}.onnx")
        specs[comp] = spec.slice("bench", "fp32")
    return specs


def bench(d: Path, comp: str, spec: str, backend: str, threads: int, tag: str) -> subprocess.Popen:
    artifact = d / f"{comp}.onnx" if backend != "pytorch" else d / f"{comp}.safetensors"
    marker = d / "passed.json"
    marker.write_text(json.dumps({"status": "passed"}))
    out = d / f"{tag}.{comp}.csv"
    cmd = [
        sys.executable,
        "-m",
        "workflow_lib.stages.bench",
        "--spec",
        spec,
        "--backend",
        backend,
        "--variant",
        "fp32",
        "--artifact",
        str(artifact),
        *(["--marker", str(marker)] if backend != "pytorch" else []),
        "--settings",
        json.dumps({**SETTINGS, "threads": threads}),
        "--out",
        str(out),
        "--threads",
        str(threads),
    ]
    return subprocess.Popen(cmd, env={**os.environ, "WORKFLOW_SLOT_DIR": str(d / "slots")}, stderr=subprocess.DEVNULL)


def row(csv: Path) -> dict:
    from workflow_lib.jobs.timing import median_ci

    raw = pl.read_parquet(csv.with_name(csv.name.replace(".csv", ".samples.parquet")))["sample_ms"].to_numpy()
    lo, hi = median_ci(raw)
    df = pl.read_csv(csv).row(0, named=True)
    return {"p50": df["p50_ms"], "lo": lo, "hi": hi, "n": df["iterations"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backend", default="onnxruntime")
    a = p.parse_args()
    d = Path(tempfile.mkdtemp(prefix="slots-"))
    specs = prepare(d)
    print(f"{os.cpu_count()} CPUs, slots of {a.threads} core(s), backend {a.backend}, workdir {d}")
    for r in range(a.repeats):
        for comp in specs:
            bench(d, comp, specs[comp], a.backend, a.threads, f"alone{r}").wait()
        both = [bench(d, comp, specs[comp], a.backend, a.threads, f"side{r}") for comp in specs]
        for proc in both:
            proc.wait()
        for comp in specs:
            alone, side = row(d / f"alone{r}.{comp}.csv"), row(d / f"side{r}.{comp}.csv")
            inside = alone["lo"] <= side["p50"] <= alone["hi"] or side["lo"] <= alone["p50"] <= side["hi"]
            print(
                f"repeat {r} {comp:16s} alone p50 {alone['p50']:8.3f} ms (CI {alone['lo']:.3f}-{alone['hi']:.3f}, "
                f"n={alone['n']})  beside the other {side['p50']:8.3f} ms (CI {side['lo']:.3f}-{side['hi']:.3f}, "
                f"n={side['n']})  ratio {side['p50'] / alone['p50']:.3f}  {'CIs overlap' if inside else 'DIFFERENT'}"
            )


if __name__ == "__main__":
    main()
