"""Every path the workflow reads or writes, decided in one place.

Rules build their patterns from these methods (passing "{model}" and friends as values),
stages and the report find files through them (passing "*" to glob), so moving a directory
is one edit here. Results that depend on the device they were measured on (the host probe,
validation markers, benchmarks, the deployment bundle, the report, their logs and failure
records) live under a per-GPU-class root so two classes never overwrite each other; graphs,
checkpoints, calibration sets and the chain's reference are the same everywhere and shared.
Imports nothing heavy: the Snakefile loads this while it builds the DAG.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from glob import glob
from pathlib import Path
from typing import Any

RESULTS = "results"
# Set for every job by the Snakefile: this run's device root (failure records go there).
DEVICE_RESULTS_ENV = "WORKFLOW_DEVICE_RESULTS"


def engine_dir(config: dict[str, Any]) -> str:
    """tensorrt.engine_dir, else paths.engines, else results/engines: one place for every component."""
    return (
        config.get("tensorrt", {}).get("engine_dir") or config.get("paths", {}).get("engines") or f"{RESULTS}/engines"
    )


@dataclass(frozen=True)
class ArtifactKind:
    """What a backend reads: its path pattern (fields variant, model, component) under a root, and the files
    that travel with it. Declared once, beside the backend that reads it (runtimes/registry.py)."""

    name: str
    pattern: str | None  # None: the component's checkpoint, wherever the config says it is
    root: str = "results"  # results | engines (engines are per GPU class)
    companions: tuple[str, ...] = ()  # suffixes that replace the artifact's own (OpenVINO's weights: .bin)

    def files(self, path: str | os.PathLike) -> list[Path]:
        """The artifact and the files that must travel with it."""
        stem = str(path)[: -len(Path(path).suffix)]
        return [Path(path), *(Path(stem + c) for c in self.companions)]


CHECKPOINT = ArtifactKind("checkpoint", None)
GRAPH = ArtifactKind("onnx", "onnx/{variant}/{model}/{component}.onnx")


@dataclass(frozen=True)
class Paths:
    """The run's directories: shared results, device results (per GPU class) and engines (per GPU class)."""

    device: str = RESULTS
    engines: str = f"{RESULTS}/engines"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Paths:
        gpu_class = (config.get("cluster") or {}).get("gpu_class")
        if not gpu_class:
            return cls(RESULTS, engine_dir(config))
        return cls(f"{RESULTS}/gpu_{gpu_class}", os.path.join(engine_dir(config), f"gpu_{gpu_class}"))

    @classmethod
    def current(cls) -> Paths:
        """Inside a job: the run's device root, as the Snakefile exported it."""
        return cls(os.environ.get(DEVICE_RESULTS_ENV, RESULTS))

    # shared, device-independent artifacts
    @staticmethod
    def checkpoint(model: str, component: str, suffix: str = ".safetensors") -> str:
        return f"{RESULTS}/checkpoints/{model}/{component}{suffix}"

    @staticmethod
    def package_checkpoint(model: str, component: str, suffix: str) -> str:
        """A checkpoint shipped inside an installed package, placed in the run (`checkpoint: pkg:...`)."""
        return f"{RESULTS}/packages/{model}/{component}{suffix}"

    @staticmethod
    def graph(variant: str, model: str, component: str) -> str:
        return f"{RESULTS}/{GRAPH.pattern.format(variant=variant, model=model, component=component)}"

    @staticmethod
    def reference_outputs(model: str, component: str) -> str:
        """PyTorch fp32's outputs at the min, opt and max point, stored by the export for every later check."""
        return f"{RESULTS}/onnx/export/{model}/{component}.reference.npz"

    @staticmethod
    def calibration(model: str, component: str) -> str:
        """The component's sample set: its inputs per file and role (calibration, search, evaluation)."""
        return f"{RESULTS}/calibration/{model}/{component}.npz"

    @staticmethod
    def chain_reference(model: str) -> str:
        """PyTorch fp32's run of a model's chain on the files it is judged on: what assignments are scored against."""
        return f"{RESULTS}/chain/{model}/reference.npz"

    @staticmethod
    def chain_listen(model: str) -> str:
        """The first evaluation file and what PyTorch fp32 makes of it, for the media a person judges."""
        return f"{RESULTS}/chain/{model}/reference.listen.npz"

    @staticmethod
    def chain_media(model: str, which: str, suffix: str) -> str:
        """Media of the first evaluation file (`input`) and of PyTorch fp32's run of it (`reference`): the plug-in
        encodes them (`suffix`: its media_suffix, .wav for audio)."""
        return f"{RESULTS}/chain/{model}/media/{which}{suffix}"

    @staticmethod
    def log(*parts: str) -> str:
        return "/".join((RESULTS, "logs", *parts)) + ".log"

    @staticmethod
    def job_benchmark(*parts: str) -> str:
        return "/".join((RESULTS, "jobs", *parts)) + ".tsv"

    # per GPU class
    @property
    def host(self) -> str:
        """What this run's (GPU job) host can run: the probe's record."""
        return f"{self.device}/host.json"

    def marker(self, model: str, component: str, backend: str, variant: str) -> str:
        return f"{self.device}/validation/{model}/{component}.{backend}.{variant}.json"

    def bench_csv(self, model: str, component: str, backend: str, variant: str) -> str:
        return f"{self.device}/bench/{model}/{component}.{backend}.{variant}.csv"

    def shipped_dir(self, model: str) -> str:
        """What a model ships, timed at the points its benchmarks left out (bench.prune): a CSV per component."""
        return f"{self.device}/bench/{model}/shipped"

    def shipped_csv(self, model: str, component: str) -> str:
        return f"{self.shipped_dir(model)}/{component}.csv"

    def chain_csv(self, model: str, assignment: str) -> str:
        return f"{self.device}/bench/{model}/chain/{assignment}.csv"

    def assignment_listen(self, model: str, assignment: str) -> str:
        """An assignment's outputs on the first evaluation file, for the media a person judges."""
        return f"{self.device}/bench/{model}/chain/{assignment}.listen.npz"

    def assignment_media(self, model: str, assignment: str, suffix: str) -> str:
        return f"{self.device}/bench/{model}/chain/media/{assignment}{suffix}"

    @property
    def summary(self) -> str:
        return f"{self.device}/bench/summary.csv"

    @property
    def unavailable(self) -> str:
        return f"{self.device}/bench/unavailable.json"

    @property
    def snapshot(self) -> str:
        """Every series' raw samples and what it ran: what a later run is compared with."""
        return f"{self.device}/bench/snapshot.parquet"

    @property
    def comparison(self) -> str:
        """This run against `compare.baseline`."""
        return f"{self.device}/bench/comparison.csv"

    @property
    def comparison_checked(self) -> str:
        """Written only when nothing regressed or newly fails against the baseline (the opt-in gate)."""
        return f"{self.device}/bench/comparison.passed.json"

    def decision(self, model: str) -> str:
        """What ships for a model and why, before it is bundled."""
        return f"{self.device}/decisions/{model}.json"

    def live(self, model: str) -> str:
        """The shipped chain converted live: latency and fidelity per chunk size."""
        return f"{self.device}/live/{model}.json"

    def live_listen(self, model: str) -> str:
        """The first evaluation file streamed at the smallest chunk that keeps up, for its media."""
        return f"{self.device}/live/{model}.listen.npz"

    def live_media(self, model: str, suffix: str) -> str:
        return f"{self.device}/live/media/{model}{suffix}"

    def deploy(self, model: str) -> str:
        return f"{self.device}/deploy/{model}"

    def manifest(self, model: str) -> str:
        return manifest_path(self.deploy(model))

    @property
    def report_dir(self) -> str:
        return f"{self.device}/report"

    @property
    def report(self) -> str:
        return f"{self.report_dir}/index.html"

    def plot(self, name: str) -> str:
        return f"{self.report_dir}/{name}.png"

    @property
    def failures_checked(self) -> str:
        """Written when the run's last check passes: no variant failed with an error (or failures may pass)."""
        return f"{self.device}/checks/failures.json"

    @property
    def failures_dir(self) -> str:
        return f"{self.device}/failures"

    def failure(self, model: str, name: str) -> str:
        return f"{self.failures_dir}/{model}/{name}.json"

    def device_log(self, *parts: str) -> str:
        return "/".join((self.device, "logs", *parts)) + ".log"

    def device_job_benchmark(self, *parts: str) -> str:
        """A device job's Snakemake `benchmark:` record, per GPU class like its log (two classes never share one)."""
        return "/".join((self.device, "jobs", *parts)) + ".tsv"

    def artifact(self, kind: ArtifactKind, variant: str, model: str, component: str, checkpoint: str = "") -> str:
        """The file a backend reads: the checkpoint, or what its kind's pattern names."""
        if kind.pattern is None:
            return checkpoint
        root = self.engines if kind.root == "engines" else RESULTS
        return f"{root}/{kind.pattern.format(variant=variant, model=model, component=component)}"


def cache_entry(cache_dir: str | os.PathLike, key: str) -> dict[str, Path]:
    """A content-keyed engine cache entry: the plan, its record (written last: it marks a complete entry), its lock."""
    return {kind: Path(cache_dir) / f"{key}.{kind}" for kind in ("engine", "json", "lock")}


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """`x.onnx` -> `x.onnx.json`: the provenance record that travels with an artifact."""
    return Path(f"{artifact}.json")


def sidecar(artifact: str) -> str:
    """The same, as a string (what rules declare)."""
    return str(sidecar_path(artifact))


def manifest_path(bundle: str | os.PathLike) -> Path:
    """A deployment bundle's manifest: what ships and why."""
    return Path(bundle) / "manifest.json"


def bundle_file(device: str, component: str, backend: str, variant: str, suffix: str) -> Path:
    """Where a chosen artifact (or its validation marker: suffix `.validation.json`) lies inside a bundle."""
    return Path(device) / f"{component}.{backend}.{variant}{suffix}"


def samples_path(csv: str | os.PathLike) -> str:
    """Raw timings beside a benchmark CSV: `x.csv` -> `x.samples.parquet`."""
    return str(csv)[: -len(".csv")] + ".samples.parquet"


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report reads, declared once: the rule's inputs are built as one (rules/common.smk), the
    stage reads them back from JSON, and after a failed run the same fields are found by globbing `Paths`."""

    summary: str | None = None
    unavailable: str | None = None
    host: str | None = None
    bench: tuple[str, ...] = ()  # component and chain benchmark CSVs
    markers: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()  # sidecars of what is made from graphs (IR, engines)
    bundles: tuple[str, ...] = ()  # deployment directories
    graphs: tuple[str, ...] = ()  # graph variant sidecars
    calibrations: tuple[str, ...] = ()  # sample set sidecars
    references: tuple[str, ...] = ()  # chain reference sidecars
    comparison: tuple[str, ...] = ()  # this run against the baseline (CSV), when configured
    live: tuple[str, ...] = ()  # live records
    media: tuple[str, ...] = ()  # what a person judges (chain plug-ins' media)
    failures: str = ""  # the run's failure records (a directory; not a rule input: records are side files)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReportInputs:
        d = json.loads(text)
        return cls(
            **{
                f.name: tuple(d[f.name]) if isinstance(d.get(f.name), list) else d.get(f.name)
                for f in fields(cls)
                if f.name in d
            }
        )

    def files(self) -> dict[str, Any]:
        """The rule's inputs (named lists; the failure records are not among them)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "failures" and getattr(self, f.name)}

    @classmethod
    def discover(cls, paths: Paths, made: list[ArtifactKind]) -> ReportInputs:
        """Whatever exists under a run's roots (the partial report after a failed run); `made`: the artifact kinds
        made from graphs (the backend registry's)."""

        def found(pattern: str) -> tuple[str, ...]:
            return tuple(sorted(glob(pattern)))

        def one(path: str) -> str | None:
            return path if Path(path).is_file() else None

        csvs = [
            p
            for p in found(paths.bench_csv("*", "*", "*", "*"))
            + found(paths.shipped_csv("*", "*"))
            + found(paths.chain_csv("*", "*"))
            if sidecar_path(p).is_file()
        ]
        return cls(
            summary=one(paths.summary),
            unavailable=one(paths.unavailable),
            host=one(paths.host),
            bench=tuple(csvs),
            markers=found(paths.marker("*", "*", "*", "*")),
            artifacts=tuple(p for kind in made for p in found(sidecar(paths.artifact(kind, "*", "*", "*")))),
            bundles=tuple(d for d in found(paths.deploy("*")) if manifest_path(d).is_file()),
            graphs=found(sidecar(paths.graph("*", "*", "*"))),
            calibrations=found(sidecar(paths.calibration("*", "*"))),
            references=found(sidecar(paths.chain_reference("*"))),
            comparison=tuple(p for p in (paths.comparison,) if Path(sidecar(p)).is_file()),
            live=found(paths.live("*")),
            media=found(paths.chain_media("*", "*", ".*"))
            + found(paths.assignment_media("*", "*", ".*"))
            + found(paths.live_media("*", ".*")),
            failures=paths.failures_dir,
        )
