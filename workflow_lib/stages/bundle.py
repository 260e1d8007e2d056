"""Stage: the deployment bundle: what was decided (stages/deploy.py, stages/chain_search.py), the chosen
files hard-linked (or copied) beside it, and what runs them, as one folder you ship.

    deploy/<model>/manifest.json     what ships per component and device, why, every alternative, the
                                     search, the input files' roles, the live measurement, how it was run
    deploy/<model>/README.md         the same for a reader: each file, the commands, the runtimes and host
    deploy/<model>/run.py            `python run.py convert IN.wav OUT.wav` (deployment/runner.py)
    deploy/<model>/requirements.txt  numpy, soundfile, soxr and the runtimes the manifest names, pinned
    deploy/<model>/lib/              the runner and everything it imports of workflow_lib, and the chain
                                     plug-in: the code that measured the chain is the code that runs it
    deploy/<model>/<device>/...      the chosen artifacts and their validation markers

Written to a temp folder and renamed into place: a killed job leaves no half bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..analysis.results import RUNTIMES
from ..chains.spec import ChainSpec
from ..core.codehash import ROOT, closure, plugin_files
from ..core.files import link_or_copy, now, read_json, sha256_file, versions, write_json
from ..core.paths import CHECKPOINT, bundle_file, manifest_path
from ..jobs import cli, host
from ..jobs.host import cpu_name, gpu_name
from ..runtimes import registry as backends

log = logging.getLogger(__name__)
SPEC_KEYS = ("class", "kwargs", "method", "inputs", "outputs", "dims")  # what a bundle records of a component
RUNNER = "workflow_lib.deployment.runner"
BASE_REQUIREMENTS = ("numpy",)  # what the runner itself needs, besides the runtimes and the chain's own needs
RUN_PY = '''#!/usr/bin/env python3
"""Run this deployment: python run.py --help (the code is in lib/, the files in cpu/ and cuda/)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lib"))
from workflow_lib.deployment.runner import main  # noqa: E402

main(bundle=HERE)
'''


def _suffix(path: Path) -> str:
    return ".pth.tar" if path.name.endswith(".pth.tar") else path.suffix


def place_files(manifest: dict[str, Any], specs: dict[str, dict[str, Any]], root: Path) -> None:
    """Each chosen artifact (and its validation marker) under <device>/, recorded in the manifest."""
    for comp, per_device in manifest["components"].items():
        for kind, chosen in per_device.items():
            files = []
            for src in backends.get(chosen["backend"]).artifact.files(chosen["source"]):
                rel = bundle_file(kind, comp, chosen["backend"], chosen["variant"], _suffix(src))
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(src, root / rel)
                files.append(
                    {"file": str(rel), "sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
                )
            chosen.update(file=files[0]["file"], files=files)
            if chosen["marker"]:  # the evidence travels with the artifact
                rel = bundle_file(kind, comp, chosen["backend"], chosen["variant"], ".validation.json")
                shutil.copyfile(chosen["marker"], root / rel)
                chosen["marker"] = str(rel)
            if backends.get(chosen["backend"]).artifact is CHECKPOINT:  # a checkpoint needs its module to load
                chosen["module"] = {k: specs[comp].get(k) for k in ("class", "kwargs", "method")}
            chosen["io"] = {k: specs[comp].get(k) for k in ("inputs", "outputs", "dims")}


def vendor(manifest: dict[str, Any], root: Path) -> list[str]:
    """The runner, what it imports of workflow_lib (the backends by name included), the chain plug-in, and for
    checkpoint series the module of their class, copied under lib/ at their package paths."""
    modules = [RUNNER]
    plugin = (manifest.get("chain") or {}).get("plugin")
    files = set(closure(RUNNER))
    if plugin:
        files.update(plugin_files(plugin))
    for per_device in manifest["components"].values():
        for chosen in per_device.values():
            cls = (chosen.get("module") or {}).get("class", "")
            if cls.startswith("workflow_lib."):
                files.update(closure(cls.rpartition(".")[0]))
                modules.append(cls.rpartition(".")[0])
    copied = []
    for f in sorted(files):
        if f.is_relative_to(ROOT):
            rel = Path("lib/workflow_lib") / f.relative_to(ROOT)
        else:  # a plug-in of your own: at its module path
            rel = Path("lib", *plugin.split(".")[:-1], f.name)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / rel)
        copied.append(str(rel))
    return copied


def cpu_requirements(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Per shipped CPU series whose precision needs native arithmetic, the CPU features it needs (any one of
    them): the runner refuses a host without them, naming what is missing."""
    return {
        f"{comp}: {chosen['series']}": list(host.NATIVE[chosen["precision"]])
        for comp, per_device in manifest["components"].items()
        for device, chosen in per_device.items()
        if device == "cpu" and chosen.get("precision") in host.NATIVE
    }


def requirements(manifest: dict[str, Any]) -> list[str]:
    """Pinned: the runtimes of the series that ship, at the versions they were measured with, the runner's and the
    chain plug-in's own (audio chains: soundfile, soxr)."""
    shipped = {backends.get(c["backend"]).distribution for d in manifest["components"].values() for c in d.values()}
    chain = ChainSpec.from_json(manifest["chain"]).chain_class.requirements if manifest.get("chain") else ()
    dists = [*dict.fromkeys([*BASE_REQUIREMENTS, *chain]), *sorted(shipped)]
    pinned = versions(*dists)
    return [f"{d}=={pinned[d]}" if pinned.get(d) else d for d in dists]


def readme(manifest: dict[str, Any], reqs: list[str]) -> str:
    """The bundle explained from its manifest: what each file is, the commands, what it was measured with."""
    runner, model = manifest["runner"], manifest["model"]
    lines = [
        f"# Deployment of `{model}`",
        "",
        f"Made {manifest['created']} by the checkpoint-to-deployment workflow; `manifest.json` holds every number and",
        "reason behind it. Everything here runs without the workflow, without Snakemake and (unless a PyTorch",
        "series ships) without torch.",
        "",
        "## Run it",
        "",
        "```bash",
        "python -m venv .venv && .venv/bin/pip install -r requirements.txt",
    ]
    if manifest.get("chain"):
        chain = ChainSpec.from_json(manifest["chain"]).chain_class
        lines += [f".venv/bin/python run.py convert input{chain.media_suffix} output{chain.media_suffix}"]
        if chain.streams:
            lines += [
                f".venv/bin/python run.py stream input{chain.media_suffix} output{chain.media_suffix} [--realtime]"
                "   # chunk and lookahead: what the live job measured"
            ]
    first = next(iter(manifest["components"]))
    lines += [
        f".venv/bin/python run.py component {first} inputs.npz outputs.npz",
        ".venv/bin/python run.py check",
        "```",
        "",
        "In Python: `sys.path.insert(0, '<this folder>/lib')`, then",
        "`from workflow_lib.deployment.runner import Deployment`; `Deployment('<this folder>')` has `convert`,",
        "`stream` and `component`.",
        "",
        "## What ships",
        "",
        "| component | device | series | file | p50 ms | speedup |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for comp, per_device in manifest["components"].items():
        for device, c in per_device.items():
            speedup = f"{c['speedup']:.2f}x" if c.get("speedup") else "-"
            lines.append(f"| {comp} | {device} | `{c['series']}` | `{c['file']}` | {c['p50_ms']:.3g} | {speedup} |")
    lines += [
        "",
        f"Measured on {runner['host']['cpu']}"
        + (f" with {runner['host']['gpu']}" if runner["host"].get("gpu") else ", no GPU")
        + f", {runner['threads'] or 'all'} threads, Python {runner['versions']['python']}; the runner uses the same",
        "thread count unless told otherwise (`--threads`). Runtimes pinned in `requirements.txt`:",
        "",
        *[f"- `{r}`" for r in reqs],
        "",
        "The runner refuses to start, naming the package and version, when a runtime it needs is missing or of",
        "another major version than the one measured.",
    ]
    live = manifest.get("live")
    if live:
        best = live.get("smallest_realtime")
        lines += [
            "",
            "## Live",
            "",
            "Streamed on the host above by the clock (the delay from a sample entering to it being heard, the "
            "first chunk included): "
            + (
                f"the smallest chunk with no late chunk is {best['chunk_ms']:.0f} ms, with a delay of "
                f"{best['delay_p50_ms']:.0f} ms at p50 and {best['delay_p95_ms']:.0f} ms at p95 "
                f"(lookahead {best['lookahead_ms']:.0f} ms). `run.py stream` uses these settings unless told otherwise."
                if best
                else "no chunk size kept up with real time here."
            ),
        ]
    lines += ["", "## Files", "", "- `manifest.json`: what ships and why; `run.py` and `lib/`: the runner;"]
    lines += ["  `requirements.txt`: what it needs; `cpu/`, `cuda/`: the artifacts and their validation markers.", ""]
    return "\n".join(lines)


def bundle(
    decision: dict[str, Any],
    specs: dict[str, dict[str, Any]],
    out_dir: str | Path,
    chain: dict[str, Any] | None,
    live: dict[str, Any] | None,
    threads: int,
) -> dict[str, Any]:
    """Write the bundle; atomic as a directory."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    manifest = dict(decision)
    try:
        place_files(manifest, specs, tmp)
        if chain:
            manifest["chain"] = chain
        if live:
            manifest["live"] = live
        manifest["runner"] = {
            "command": "python run.py convert IN OUT" if chain else "python run.py component NAME IN.npz OUT.npz",
            "threads": threads,
            "versions": versions(*BASE_REQUIREMENTS, *RUNTIMES),
            "host": {"host": platform.node(), "cpu": cpu_name(), "gpu": gpu_name()},
            "bundled": now(),
        }
        manifest["requires"] = cpu_requirements(manifest)
        reqs = requirements(manifest)
        manifest["runner"]["code"] = vendor(manifest, tmp)
        (tmp / "run.py").write_text(RUN_PY)
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        (tmp / "README.md").write_text(readme(manifest, reqs))
        write_json(manifest_path(tmp), manifest)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--decision", required=True, help="what the deploy or chain search stage decided (JSON)")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", type=json.loads, default=None, help="the model's chain spec (JSON: plug-in, roles)")
    p.add_argument("--live", help="the live measurement of the shipped chain (JSON)")
    p.add_argument("--runner-threads", type=int, default=0, help="the threads the benchmarks used")
    p.add_argument("--out", required=True, help="the bundle directory")

    def run(a: argparse.Namespace) -> None:
        live = read_json(a.live) if a.live else None
        manifest = bundle(
            read_json(a.decision),
            {c: json.loads(s) for c, s in a.specs.items()},
            a.out,
            a.chain,
            live,
            a.runner_threads,
        )
        log.info(
            "bundle %s: %d files of code, %d components",
            a.out,
            len(manifest["runner"]["code"]),
            len(manifest["components"]),
        )

    cli.run("bundle", run, p, argv)


if __name__ == "__main__":
    main()
