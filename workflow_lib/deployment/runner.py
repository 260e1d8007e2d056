"""Run a deployment bundle: the chain's input in, its output out, with exactly what the manifest ships.

The bundle (stages/bundle.py) holds the chosen files, the manifest, and this code with what it
imports (`lib/`), so it runs where only numpy, the chain's own needs and the runtimes the manifest
names are installed: no torch (unless a PyTorch series ships), no Snakemake, no ONNX tooling. Each
component opens through the same backend registry, with the same thread count and runtime settings
the benchmarks used; the chain (the model's plug-in) reads and writes its own files and converts
offline, or live chunk by chunk (a chain that streams), its seeded inputs drawn as the pipeline drew
them. Every bad input (the file, the flags, the manifest, a missing bundle file, a CPU without what a
shipped series needs) is one line naming it, and nothing is written.

    python run.py convert IN OUT                    the whole input (a chain that streams: in segments, any length)
    python run.py stream IN OUT [--chunk-ms MS] [--lookahead-ms MS] [--realtime]    chunk by chunk, as live
    python run.py component NAME IN.npz OUT.npz     one component on arrays (.npz by input name, or .npy)
    python run.py check                             what this bundle needs, installed here or not
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..chains.assignment import choice_of, renamed
from ..chains.spec import ChainSpec
from ..core.errors import WorkflowError
from ..core.files import atomic_path, read_json
from ..core.paths import manifest_path
from ..core.spec import component_spec
from ..jobs import host
from ..runtimes import registry

log = logging.getLogger("deployment")
SEGMENT_S = 10.0  # `convert`: segments this long, so memory does not grow with the input


class BundleError(WorkflowError):
    """The bundle cannot run here, or the input cannot be converted; the message says why and what to do."""


def required_runtimes(manifest: dict[str, Any]) -> dict[str, str]:
    """Distribution -> the version the bundle was measured with, for every backend the manifest ships."""
    measured = manifest.get("runner", {}).get("versions", {})
    out = {}
    for per_device in manifest["components"].values():
        for chosen in per_device.values():
            dist = registry.get(chosen["backend"]).distribution
            if dist:
                out[dist] = measured.get(dist) or "?"
    return out


def check_cpu(manifest: dict[str, Any], features: list[str] | None = None) -> list[str]:
    """Problems with this CPU: a shipped series whose arithmetic it does not have natively (bf16 without AMX or
    AVX512-BF16 would be emulated, slower than what was measured)."""
    have = set(host.cpu_features() if features is None else features)
    return [
        f"{what} needs one of {', '.join(needed)}; this CPU has none (it has {', '.join(sorted(have)) or 'none'})"
        for what, needed in sorted(manifest.get("requires", {}).items())
        if not have & set(needed)
    ]


def check_runtimes(manifest: dict[str, Any]) -> list[str]:
    """Problems with the runtimes installed here: missing, or another major version than measured."""
    problems = []
    for dist, version in sorted(required_runtimes(manifest).items()):
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(
                f"{dist} is not installed (measured with {dist}=={version}: pip install -r requirements.txt)"
            )
            continue
        if version != "?" and have.split(".")[0] != version.split(".")[0]:
            problems.append(f"{dist} {have} is installed, but the bundle was measured with {version} (another major)")
    return problems


class Deployment:
    """A bundle opened: its components' runners on this host, and its chain when it has one."""

    def __init__(self, bundle: str | Path, threads: int | None = None, device: str = "cpu"):
        self.root = Path(bundle)
        self.manifest = read_manifest(self.root)
        problems = check_runtimes(self.manifest) + (check_cpu(self.manifest) if device == "cpu" else [])
        problems += check_files(self.manifest, self.root)
        if problems:
            raise BundleError("; ".join(problems))
        self.threads = self.manifest.get("runner", {}).get("threads", 0) if threads is None else threads
        self.device = device
        self.specs = {c: self._spec(c) for c in self.manifest["components"]}
        self.chain_spec = ChainSpec.from_json(self.manifest["chain"]) if self.manifest.get("chain") else None
        self.chain = self.chain_spec.chain if self.chain_spec else None
        self._runners: dict[str, Any] | None = None

    def _chosen(self, component: str) -> dict[str, Any]:
        per_device = self.manifest["components"][component]
        if self.device not in per_device:
            raise BundleError(f"{component} ships for {', '.join(per_device)}, not {self.device} (--device)")
        return per_device[self.device]

    def _spec(self, component: str):
        chosen = self._chosen(component)
        cfg = {**chosen["io"], **(chosen.get("module") or {}), "checkpoint": str(self.root / chosen["file"])}
        return component_spec(self.manifest["model"], component, cfg, check=False)

    def runners(self) -> dict[str, Any]:
        """Per component the runner of its shipped series (opened once)."""
        if self._runners is None:
            self._runners = {}
            for comp in self.manifest["components"]:
                choice = choice_of(self._chosen(comp), self.device, self.root)
                marker = read_json(choice.marker) if choice.marker else None
                self._runners[comp], _ = registry.open_series(
                    self.specs[comp], choice.key, choice.artifact, marker, self.threads
                )
        return self._runners

    def component(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if name not in self.manifest["components"]:
            raise BundleError(f"no component '{name}' (components: {', '.join(self.manifest['components'])})")
        expected = [i.name for i in self.specs[name].inputs]
        if sorted(feeds) != sorted(expected):
            raise BundleError(f"{name} takes inputs {expected}, got {sorted(feeds)}")
        return self.runners()[name](feeds)

    def _chain_parts(self, item: dict[str, np.ndarray]):
        if self.chain is None:
            raise BundleError("this bundle ships components without a chain: use `component`")
        runners = {role: renamed(self.runners()[b.component], b.names) for role, b in self.chain_spec.roles.items()}
        extra = self.chain.conditioning(self.chain_spec.role_inputs(self.specs), [item])
        return runners, extra

    def read(self, path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
        """The input as the chain's item, and the conversions made on the way (stated, not silent)."""
        if self.chain is None:
            raise BundleError("this bundle ships components without a chain: use `component`")
        return self.chain.read_input(str(path))

    def convert(self, item: dict[str, np.ndarray], segment_s: float = SEGMENT_S) -> dict[str, np.ndarray]:
        """The whole input through the chain, as the pipeline ran it (same seeded inputs): its outputs. A chain that
        streams converts in segments of `segment_s` with the exact lookahead, so memory does not grow with the
        input; its global roles (attention) see a window of one segment. Progress is logged per segment."""
        runners, extra = self._chain_parts(item)
        if not self.chain.streams:
            return self.chain.forward(runners, item, extra)[0]
        settings = {"chunk_ms": segment_s * 1e3, "lookahead_ms": None, "window_ms": segment_s * 1e3}
        session = self.chain.live(runners, item, extra, settings)
        total = self.chain.seconds(item)
        pieces, step = [], session.plan.chunk * self.chain.hop
        audio = item["audio"]
        for start in range(0, audio.size, step):
            end = min(audio.size, start + step)
            pieces.append(session.push(audio[start:end], final=end >= audio.size))
            if total > 2 * segment_s:
                log.info("converted %.0f of %.0f s (%.0f %%)", end / audio.size * total, total, 100 * end / audio.size)
        return {self.chain.stages[-1]: np.concatenate(pieces) if pieces else np.zeros(0, np.float32)}

    def stream_defaults(self) -> dict[str, Any]:
        """What the live job measured: its smallest chunk that kept up, its lookahead, window and device buffer."""
        live = self.manifest.get("live") or {}
        settings = dict(live.get("settings") or {})
        best = live.get("smallest_realtime") or {}
        return {
            "chunk_ms": best.get("chunk_ms", settings.get("chunks_ms", [160])[0]),
            "lookahead_ms": settings.get("lookahead_ms", 0.0),
            "window_ms": settings.get("window_ms", 1000.0),
            "device_ms": settings.get("device_ms", 0.0),
        }

    def stream(self, item: dict[str, np.ndarray], settings: dict[str, Any], realtime: bool = False):
        """The input chunk by chunk (by the clock with `realtime`): the output, and the plan and latency record."""
        if not self.chain.streams:
            raise BundleError(f"the {type(self.chain).__name__} chain does not stream: use `convert`")
        runners, extra = self._chain_parts(item)
        session = self.chain.live(runners, item, extra, settings)
        out, record = session.run(item, clock=realtime)
        return out, {**session.plan.describe(), **record}


def check_files(manifest: dict[str, Any], root: Path) -> list[str]:
    """Problems with the bundle itself: a file the manifest ships that is not there."""
    return [
        f"{root / f['file']}: missing from the bundle (copy the whole deployment folder)"
        for per_device in manifest["components"].values()
        for chosen in per_device.values()
        for f in chosen.get("files", [])
        if not (root / f["file"]).is_file()
    ]


def read_manifest(root: Path) -> dict[str, Any]:
    """The bundle's manifest; a missing or broken one is a one-line error naming the file."""
    path = manifest_path(root)
    if not path.is_file():
        raise BundleError(f"{path}: no manifest here: --bundle must name a deployment folder")
    try:
        manifest = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not a readable manifest ({e})") from None
    missing = [k for k in ("model", "components") if k not in manifest]
    if missing:
        raise BundleError(f"{path}: the manifest lacks {', '.join(missing)}")
    return manifest


def main(argv: list[str] | None = None, bundle: str | Path | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(bundle or Path.cwd()), help="the deployment folder (manifest.json inside)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="default: what the benchmarks used (the manifest's runner.threads)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="the whole file")
    c.add_argument("input")
    c.add_argument("output")
    s = sub.add_parser("stream", help="chunk by chunk, as live (defaults: what the live job measured)")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--chunk-ms", type=float, help="default: the smallest chunk that kept up in the live job")
    s.add_argument("--lookahead-ms", type=float, help="default: the live job's lookahead")
    s.add_argument("--window-ms", type=float, help="context of global (attention) components; default: the live job's")
    s.add_argument("--realtime", action="store_true", help="read the file at the pace it would be captured")
    s.add_argument("--report", help="write the plan and per-chunk latency record (JSON) here")
    k = sub.add_parser("component", help="one component on arrays")
    k.add_argument("name")
    k.add_argument("input", help=".npz with one array per input name, or .npy for a one-input component")
    k.add_argument("output", help=".npz of the outputs (output_0, ...; or the component's output names)")
    sub.add_parser("check", help="the runtimes this bundle needs, and whether they are installed")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if a.command == "check":
            manifest = read_manifest(Path(a.bundle))
            for dist, version in sorted(required_runtimes(manifest).items()):
                log.info("%s==%s", dist, version)
            for what, needed in sorted(manifest.get("requires", {}).items()):
                log.info("%s: needs a CPU with one of %s", what, ", ".join(needed))
            problems = check_runtimes(manifest) + (check_cpu(manifest) if a.device == "cpu" else [])
            for problem in problems:
                log.error(problem)
            sys.exit(1 if problems else 0)
        d = Deployment(a.bundle, a.threads, a.device)
        if a.command == "component":
            feeds = _read_arrays(a.input, [i.name for i in d.specs[a.name].inputs])
            outs = d.component(a.name, feeds)
            names = list(d.specs[a.name].outputs) if len(d.specs[a.name].outputs) == len(outs) else None
            with atomic_path(a.output, suffix=".npz") as tmp:
                np.savez(tmp, **{(names[i] if names else f"output_{i}"): o for i, o in enumerate(outs)})
            log.info("%s: wrote %s", a.name, a.output)
            return
        item, notes = d.read(a.input)
        for note in notes:
            log.info("%s: %s", a.input, note)
        if a.command == "convert":
            outputs = d.convert(item)
        else:
            asked = {"chunk_ms": a.chunk_ms, "lookahead_ms": a.lookahead_ms, "window_ms": a.window_ms}
            settings = {**d.stream_defaults(), **{k: v for k, v in asked.items() if v is not None}}
            out, record = d.stream(item, settings, a.realtime)
            outputs = {d.chain.stages[-1]: out}
            clocked = (
                f"delay p50 {record['delay_p50_ms']:.0f} ms, p95 {record['delay_p95_ms']:.0f} ms, "
                f"{record['late_chunks']} late chunks; with a {record['buffer_ms']:.0f} ms buffer no stall and "
                f"{record['latency_ms']:.0f} ms for every sample"
                if a.realtime
                else "(--realtime measures the delay a listener gets)"
            )
            log.info(
                "chunks of %.0f ms, lookahead %.0f ms: compute p50 %.1f ms, p95 %.1f ms; %s",
                record["chunk_ms"],
                record["lookahead_ms"],
                record["compute_p50_ms"],
                record["compute_p95_ms"],
                clocked,
            )
            if a.report:
                with atomic_path(a.report, suffix=".json") as tmp:
                    tmp.write_text(json.dumps(record, indent=2, default=str))
        d.chain.write(a.output, outputs)
        log.info("wrote %s", a.output)
    except WorkflowError as e:
        log.error("error: %s", e)
        sys.exit(2)


def _read_arrays(path: str, names: list[str]) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"{p}: no such file")
    if p.suffix == ".npy":
        if len(names) != 1:
            raise BundleError(f"{p} is one array; the component takes {names}: give an .npz with those names")
        return {names[0]: np.load(p, allow_pickle=False)}
    with np.load(p, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
