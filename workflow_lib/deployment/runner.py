"""Run a deployment bundle: audio in, audio out, with exactly what the manifest ships.

The bundle (stages/bundle.py) holds the chosen files, the manifest, and this code with what it
imports (`lib/`), so it runs where only numpy, soundfile, soxr and the runtimes the manifest names
are installed: no torch (unless a PyTorch series ships), no Snakemake, no ONNX tooling. Each
component opens through the same backend registry, with the same thread count and runtime settings
the benchmarks used; the chain (the model's plug-in) converts offline, or live chunk by chunk
(chains/streaming.py), its seeded inputs drawn as the pipeline drew them.

    python run.py convert IN.wav OUT.wav            the whole file (also: OUT.npy, float32 samples)
    python run.py stream IN.wav OUT.wav --chunk-ms 160 [--lookahead-ms 23] [--realtime]
    python run.py component NAME IN.npz OUT.npz     one component on arrays (.npz by input name, or .npy)
    python run.py check                             the runtimes this bundle needs, installed or not
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

from ..chains import harness, streaming
from ..core.errors import WorkflowError
from ..core.files import atomic_path, read_json
from ..core.paths import manifest_path
from ..core.spec import component_spec
from ..runtimes import registry

log = logging.getLogger("deployment")
MIN_SECONDS = 0.25  # shorter input gives too few frames for the chain's context


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
        self.manifest = read_json(manifest_path(self.root))
        problems = check_runtimes(self.manifest)
        if problems:
            raise BundleError("; ".join(problems))
        self.threads = self.manifest.get("runner", {}).get("threads", 0) if threads is None else threads
        self.device = device
        self.specs = {c: self._spec(c) for c in self.manifest["components"]}
        self.chain_cfg = self.manifest.get("chain")
        self.chain = harness.load(self.chain_cfg) if self.chain_cfg else None
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
                chosen = self._chosen(comp)
                marker = read_json(self.root / chosen["marker"]) if chosen.get("marker") else None
                series = f"{chosen['series']}@{self.device}"
                self._runners[comp], _ = registry.open_series(
                    self.specs[comp], series, str(self.root / chosen["file"]), marker, self.threads
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
        roles = harness.parse_roles(self.chain, self.chain_cfg["roles"])
        runners = {role: harness.renamed(self.runners()[comp], names) for role, (comp, names) in roles.items()}
        extra = self.chain.conditioning(harness.role_inputs(self.specs, roles), [item])
        return runners, extra

    def read(self, path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
        """The input as the chain's item, and the conversions made on the way (stated, not silent)."""
        return read_input(self.chain, path)

    def convert(self, item: dict[str, np.ndarray]) -> np.ndarray:
        """The whole input through the chain, as the pipeline ran it (same seeded inputs)."""
        runners, extra = self._chain_parts(item)
        return harness.run_item(self.chain, runners, item, extra)[self.chain.stages[-1]].reshape(-1)

    def stream(
        self,
        item: dict[str, np.ndarray],
        chunk_ms: float,
        lookahead_ms: float = 0.0,
        crossfade_ms: float | None = None,
        window_ms: float = 1000.0,
        realtime: bool = False,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The input chunk by chunk; the output and the plan and latency record."""
        runners, extra = self._chain_parts(item)
        plan = streaming.plan(self.chain, runners, item, extra, chunk_ms, lookahead_ms, crossfade_ms, window_ms)
        s = streaming.Stream(self.chain, runners, extra, plan)
        out = s.run(item["audio"], realtime)
        ms = 1000 * self.chain.hop / self.chain.sample_rate
        return out, {**plan.describe(), **streaming.stats(s.timings_ms, plan.chunk * ms, plan.lookahead * ms)}


def read_input(chain, path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """An audio file as the chain's item: missing, empty, unreadable, silent or too short is an error naming
    the file; other channel counts and rates are converted, and the conversion is stated."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BundleError(f"{path}: the file is empty")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise BundleError(f"{path}: not an audio file libsndfile can read ({e})") from None
    notes = []
    if info.channels > 1:
        notes.append(f"{info.channels} channels averaged to mono")
    if info.samplerate != chain.sample_rate:
        notes.append(f"resampled from {info.samplerate} Hz to {chain.sample_rate} Hz")
        if info.samplerate < chain.sample_rate / 2:
            notes.append(f"(band-limited: nothing above {info.samplerate // 2} Hz in the input)")
    item = chain.read(str(path))
    audio = item["audio"]
    if audio.size < MIN_SECONDS * chain.sample_rate:
        raise BundleError(f"{path}: {audio.size / chain.sample_rate:.2f} s; at least {MIN_SECONDS:g} s are needed")
    if float(np.max(np.abs(audio))) < 1e-4:
        raise BundleError(f"{path}: the file is silent (peak below -80 dBFS): nothing to convert")
    return item, notes


def write_output(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """WAV (16-bit) or .npy (float32), written to a temp file and renamed: never a partial output."""
    path = Path(path)
    if path.suffix == ".npy":
        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(audio, np.float32))
        return
    from ..core.dsp import write_wav

    write_wav(path, audio, sample_rate)


def main(argv: list[str] | None = None, bundle: str | Path | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(bundle or Path.cwd()), help="the deployment folder (manifest.json inside)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="default: what the benchmarks used (the manifest's runner.threads)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="the whole file")
    c.add_argument("input")
    c.add_argument("output")
    s = sub.add_parser("stream", help="chunk by chunk, as live")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--chunk-ms", type=float, default=160.0)
    s.add_argument("--lookahead-ms", type=float, default=0.0)
    s.add_argument("--crossfade-ms", type=float, help="default: the lookahead")
    s.add_argument("--window-ms", type=float, default=1000.0, help="context of global (attention) components")
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
            manifest = read_json(manifest_path(a.bundle))
            for dist, version in sorted(required_runtimes(manifest).items()):
                log.info("%s==%s", dist, version)
            problems = check_runtimes(manifest)
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
            out = d.convert(item)
        else:
            out, record = d.stream(item, a.chunk_ms, a.lookahead_ms, a.crossfade_ms, a.window_ms, a.realtime)
            log.info(
                "chunks of %.0f ms, lookahead %.0f ms: compute p50 %.1f ms, p99 %.1f ms; latency %.0f ms; %s",
                record["chunk_ms"],
                record["lookahead_ms"],
                record["compute_p50_ms"],
                record["compute_p99_ms"],
                record["latency_ms"],
                "keeps up" if record["keeps_up"] else f"{record['late_chunks']} late chunks",
            )
            if a.report:
                with atomic_path(a.report, suffix=".json") as tmp:
                    tmp.write_text(json.dumps(record, indent=2))
        write_output(a.output, out, d.chain.sample_rate)
        log.info("wrote %s (%.2f s)", a.output, out.size / d.chain.sample_rate)
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
