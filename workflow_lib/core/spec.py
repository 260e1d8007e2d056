"""Component specs: the config slice every stage receives, checked beyond the JSON schema.

The schema catches wrong keys and types; this module catches what a schema cannot
(inconsistent dim ranges, shapes naming unknown dims, profiles too large to build, a
package checkpoint that is not installed), so a bad config fails before any job runs, with
the key named. Each stage receives only the keys it reads (`ComponentSpec.slice`), so a
change to one key reruns only the stages that read it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import declarations, variants
from .errors import ConfigError
from .paths import Paths

NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
POINTS = ("min", "opt", "max")
DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}
# The checkpoint formats the loader reads: safetensors (no code at all) and torch pickles
# (Lightning .ckpt and Hugging Face pytorch_model.bin are torch pickles too).
# `.pth.tar` (the original HiFi-GAN's) is a torch pickle with another name.
CHECKPOINT_SUFFIXES = {
    ".safetensors": "safetensors",
    ".pt": "torch",
    ".pth": "torch",
    ".ckpt": "torch",
    ".bin": "torch",
    ".tar": "torch",
}
# `checkpoint: pkg:<package>/<path>` names a file shipped inside an installed package.
PACKAGE_PREFIX = "pkg:"
# What a stage reads of a component's entry (besides its name), declared in the stage module as
# SPEC_KEYS (core/declarations.py): key names, or these groups. `gate` is the gate of the one
# variant the stage works on, defaults filled in. A stage declaring nothing reads GRAPH_STAGE_KEYS.
LOAD_KEYS = (
    "class",
    "kwargs",
    "checkpoint",
    "state_dict_key",
    "select_prefix",
    "strip_prefix",
    "strict",
    "method",
    "allow_unsafe_pickle",
)
IO_KEYS = ("inputs", "outputs", "dims", "output_kind", "sample_rate")
KEY_GROUPS = {"load": LOAD_KEYS, "io": IO_KEYS, "gate": ("gates", "gating")}
GRAPH_STAGE_KEYS = ("load", "io", "gate")
# Inputs above this many bytes at the max point are refused: TensorRT sizes its
# activation memory from the max profile, and such a profile cannot be built or run.
DEFAULT_MAX_INPUT_BYTES = 1 << 30


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]
    generator: dict[str, Any]

    def concrete_shape(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else dims[d] for d in self.shape)


@dataclass(frozen=True)
class ComponentSpec:
    model: str
    component: str
    cls: str
    checkpoint: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    dims: dict[str, dict[str, int]]
    gates: dict[str, dict[str, float]]  # per variant; absent ones take the variant table's default gate
    kwargs: dict[str, Any] = field(default_factory=dict)
    state_dict_key: str | None = None
    select_prefix: str = ""
    strip_prefix: str = ""
    strict: bool = True
    method: str = "forward"
    exporter: str = "dynamo"
    opset: int = 20
    fp32_ops: tuple[str, ...] = ()
    output_kind: str = "tensor"  # the metrics its outputs are scored by (analysis/metrics.py KINDS)
    sample_rate: int = 22050
    allow_unsafe_pickle: bool = False
    variants: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """model/component: how logs and errors name it."""
        return f"{self.model}/{self.component}"

    def point(self, which: str) -> dict[str, int]:
        """Concrete value of every symbolic dim at the min, opt or max point."""
        return {dim: rng[which] for dim, rng in self.dims.items()}

    def shapes(self, which: str) -> dict[str, tuple[int, ...]]:
        dims = self.point(which)
        return {i.name: i.concrete_shape(dims) for i in self.inputs}

    def make_inputs(self, dims: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic example inputs, so every backend sees the same numbers."""
        rng = np.random.default_rng(seed)
        return {i.name: _generate(i, i.concrete_shape(dims), rng) for i in self.inputs}

    def gate(self, variant: str) -> dict[str, float]:
        return variants.gate_for(variant, self.gates)

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    def slice(self, stage: str, variant: str | None = None) -> str:
        """The spec as JSON with only what `stage` reads (its SPEC_KEYS): a rule's param, so other keys never
        rerun it."""
        keys = stage_keys(stage)
        keep = {k: self.raw[k] for k in ("model", "component", *keys) if k in self.raw}
        if "gates" in keys:  # the gate of the one variant the stage works on (else of each), defaults filled in
            keep["gates"] = {
                v: self.gate(v) for v in ([variant] if variant else dict.fromkeys(("fp32", *self.variants)))
            }
        return json.dumps(keep, sort_keys=True)


def stage_keys(stage: str) -> tuple[str, ...]:
    """The component keys a stage declares it reads, groups expanded."""
    declared_keys = declarations.declared(stage, "SPEC_KEYS", GRAPH_STAGE_KEYS)
    return tuple(k for key in declared_keys for k in KEY_GROUPS.get(key, (key,)))


def _generate(spec: InputSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    g = spec.generator
    kind = g.get("kind", "normal")
    dtype = DTYPES[spec.dtype]
    if kind == "normal":
        arr = rng.normal(g.get("mean", 0.0), g.get("std", 1.0), size=shape)
    elif kind == "uniform":
        arr = rng.uniform(g.get("low", 0.0), g.get("high", 1.0), size=shape)
    elif kind == "randint":
        arr = rng.integers(int(g.get("low", 0)), int(g.get("high", 2)), size=shape)
    elif kind == "ones":
        arr = np.ones(shape)
    elif kind == "zeros":
        arr = np.zeros(shape)
    else:
        raise ConfigError(f"input '{spec.name}': unknown generator kind '{kind}'")
    return np.ascontiguousarray(arr.astype(dtype))


def checkpoint_path(model: str, component: str, source: str) -> str:
    """Where a component's checkpoint is read from: the file itself, or for a package file the copy
    the `package_checkpoint` rule places under results/ (so provenance never names a site-packages path)."""
    if not source.startswith(PACKAGE_PREFIX):
        return source
    name = Path(source).name
    suffix = name[name.index(".") :] if "." in name else ""
    return Paths.package_checkpoint(model, component, suffix)


def package_file(source: str) -> Path:
    """The file `pkg:<package>/<path>` names, found without importing the package.

    Packages that ship pretrained weights often import heavy audio libraries at module level;
    `find_spec` of a top-level package locates it without running its `__init__`.
    """
    package, _, member = source[len(PACKAGE_PREFIX) :].partition("/")
    if not package or not member:
        raise ConfigError(f"'{source}': expected {PACKAGE_PREFIX}<package>/<path inside the package>")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"'{source}': cannot look up package '{package}': {e}") from None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"'{source}': package '{package}' is not installed in this Python ({sys.executable}); "
            f"install it (scripts/setup.sh installs the demo's)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / member
        if path.is_file():
            return path
    raise ConfigError(
        f"'{source}': package '{package}' has no file '{member}' "
        f"(looked in {', '.join(spec.submodule_search_locations)})"
    )


def package_distributions(source: str) -> dict[str, str]:
    """The distributions (name -> version) that install the package `pkg:<package>/...` names: what a
    package checkpoint's identity follows. Looked up by the import name first (cheap, and right
    for most packages); only otherwise through the map of every installed distribution."""
    package = source[len(PACKAGE_PREFIX) :].partition("/")[0]
    try:
        dist = importlib.metadata.distribution(package)
        return {dist.metadata["Name"]: dist.version}
    except importlib.metadata.PackageNotFoundError:
        dists = importlib.metadata.packages_distributions().get(package, [])
        return {d: importlib.metadata.version(d) for d in sorted(dists)}


def component_spec(
    model: str, component: str, cfg: dict[str, Any], defaults: dict[str, Any] | None = None, check: bool = True
) -> ComponentSpec:
    """Build (and unless told otherwise, check) one component's spec from its config entry or a slice of it."""
    where = f"models.{model}.components.{component}"
    for name, what in ((model, "model"), (component, "component")):
        if not NAME_RE.match(name):
            raise ConfigError(f"{what} name '{name}' must match {NAME_RE.pattern} (it becomes a path under results/)")
    defaults = defaults or {}
    raw = {**cfg, "model": model, "component": component}
    if check:
        raw["opset"] = cfg.get("opset", defaults.get("opset", 20))
        raw["gating"] = {**(defaults.get("gating") or {}), **(cfg.get("gating") or {})}
        raw["checkpoint"] = checkpoint_path(model, component, str(cfg.get("checkpoint", "")))
        raw["checkpoint_source"] = str(cfg.get("checkpoint", ""))
        raw["variants"] = list(cfg.get("variants") or defaults.get("variants") or variants.DERIVED)
    try:
        inputs = tuple(
            InputSpec(i["name"], i.get("dtype", "float32"), tuple(i["shape"]), dict(i.get("generator", {})))
            for i in cfg.get("inputs", [])
        )
        spec = ComponentSpec(
            model=model,
            component=component,
            cls=cfg["class"] if check else cfg.get("class", ""),
            checkpoint=raw.get("checkpoint", ""),
            inputs=inputs,
            outputs=tuple(cfg.get("outputs", ["output"])),
            dims={d: {p: int(r[p]) for p in POINTS} for d, r in cfg.get("dims", {}).items()},
            gates={v: {k: float(x) for k, x in g.items()} for v, g in (cfg.get("gates") or {}).items()},
            kwargs=dict(cfg.get("kwargs", {})),
            state_dict_key=cfg.get("state_dict_key"),
            select_prefix=cfg.get("select_prefix", ""),
            strip_prefix=cfg.get("strip_prefix", ""),
            strict=bool(cfg.get("strict", True)),
            method=cfg.get("method", "forward"),
            exporter=cfg.get("exporter", "dynamo"),
            opset=int(raw.get("opset", 20)),
            fp32_ops=tuple(cfg.get("fp32_ops", [])),
            output_kind=cfg.get("output_kind", "tensor"),
            sample_rate=int(cfg.get("sample_rate", 22050)),
            allow_unsafe_pickle=bool(cfg.get("allow_unsafe_pickle", False)),
            variants=tuple(raw.get("variants", ())),
            raw=raw,
        )
    except KeyError as e:
        raise ConfigError(f"{where}: missing key {e}") from None
    if check:
        _check(spec, where, int(defaults.get("max_input_bytes", DEFAULT_MAX_INPUT_BYTES)))
    return spec


def _check(spec: ComponentSpec, where: str, max_input_bytes: int) -> None:
    source = spec.raw["checkpoint_source"]
    suffix = "." + source.rpartition(".")[2] if "." in Path(source).name else ""
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ConfigError(
            f"{where}.checkpoint: '{source}' is not one of {', '.join(CHECKPOINT_SUFFIXES)} "
            f"(convert other formats: python -m workflow_lib.convert --help)"
        )
    if source.startswith(PACKAGE_PREFIX):
        try:
            package_file(source)
        except ConfigError as e:
            raise ConfigError(f"{where}.checkpoint: {e}") from None
    for name in spec.variants:
        if name not in variants.VARIANTS or name == "export":
            raise ConfigError(
                f"{where}.variants: '{name}' is not a graph variant one can run (one of {', '.join(variants.DERIVED)})"
            )
    for name in spec.gates:
        if name not in variants.VARIANTS:
            raise ConfigError(f"{where}.gates.{name}: no such graph variant (one of {', '.join(variants.VARIANTS)})")
    for dim, rng in spec.dims.items():
        if not 1 <= rng["min"] <= rng["opt"] <= rng["max"]:
            raise ConfigError(
                f"{where}.dims.{dim}: need 1 <= min <= opt <= max, got "
                f"min={rng['min']} opt={rng['opt']} max={rng['max']}"
            )
    names = [i.name for i in spec.inputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.inputs: duplicate input names {names}")
    for i in spec.inputs:
        if i.dtype not in DTYPES:
            raise ConfigError(f"{where}.inputs.{i.name}.dtype: '{i.dtype}' is not one of {sorted(DTYPES)}")
        for d in i.shape:
            if isinstance(d, str) and d not in spec.dims:
                raise ConfigError(f"{where}.inputs.{i.name}.shape: symbolic dim '{d}' has no entry under dims")
    for name in spec.gates:
        kind = variants.get(name).gate
        keys = set(spec.gates[name])
        if kind == "allclose" and keys != {"atol", "rtol"}:
            raise ConfigError(
                f"{where}.gates.{name}: an elementwise gate needs exactly atol and rtol, got {sorted(keys)}"
            )
        if kind == "fidelity" and not keys:
            raise ConfigError(
                f"{where}.gates.{name}: a fidelity gate needs at least one min_<metric> / max_<metric> key"
            )
    total = sum(
        int(np.prod(shape)) * np.dtype(DTYPES[i.dtype]).itemsize
        for i, shape in zip(spec.inputs, spec.shapes("max").values(), strict=True)
    )
    if total > max_input_bytes:
        raise ConfigError(
            f"{where}.dims: the max profile needs {total / 2**20:,.0f} MiB of input tensors alone "
            f"(limit {max_input_bytes / 2**20:,.0f} MiB, limits.max_input_mb); lower the max values"
        )


def spec_from_json(text: str) -> ComponentSpec:
    """The spec (or the slice of it) a rule passed on its command line; checked at config time already."""
    raw = json.loads(text)
    return component_spec(raw["model"], raw["component"], raw, check=False)
