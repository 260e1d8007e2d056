"""Component specs: the config slice every stage receives, checked beyond the JSON schema.

The schema catches wrong keys and types; this module catches what a schema cannot
(inconsistent dim ranges, shapes naming unknown dims, profiles too large to build),
so a bad config fails before any job runs, with the key named.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
POINTS = ("min", "opt", "max")
DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}
# The checkpoint formats the loader reads: safetensors (no code at all) and torch pickles
# (Lightning .ckpt and Hugging Face pytorch_model.bin are torch pickles too).
CHECKPOINT_SUFFIXES = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".bin": "torch"}
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
    tolerance: dict[str, dict[str, float]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    state_dict_key: str | None = None
    select_prefix: str = ""
    strip_prefix: str = ""
    strict: bool = True
    method: str = "forward"
    exporter: str = "dynamo"
    opset: int = 20
    fp32_ops: tuple[str, ...] = ()
    output_kind: str = "tensor"  # "audio": parity adds SNR / log-spectral distance
    sample_rate: int = 22050
    allow_unsafe_pickle: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
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

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)


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


def component_spec(model: str, component: str, cfg: dict[str, Any], defaults: dict[str, Any] | None = None) -> ComponentSpec:
    """Build and check one component's spec from its config entry."""
    where = f"models.{model}.components.{component}"
    for name, what in ((model, "model"), (component, "component")):
        if not NAME_RE.match(name):
            raise ConfigError(f"{what} name '{name}' must match {NAME_RE.pattern} (it becomes a path under results/)")
    defaults = defaults or {}
    raw = {**cfg, "model": model, "component": component, "opset": cfg.get("opset", defaults.get("opset", 20))}
    try:
        inputs = tuple(
            InputSpec(i["name"], i.get("dtype", "float32"), tuple(i["shape"]), dict(i.get("generator", {})))
            for i in cfg["inputs"]
        )
        spec = ComponentSpec(
            model=model,
            component=component,
            cls=cfg["class"],
            checkpoint=str(cfg["checkpoint"]),
            inputs=inputs,
            outputs=tuple(cfg.get("outputs", ["output"])),
            dims={d: {p: int(r[p]) for p in POINTS} for d, r in cfg.get("dims", {}).items()},
            tolerance={p: {"atol": float(t["atol"]), "rtol": float(t["rtol"])} for p, t in cfg["tolerance"].items()},
            kwargs=dict(cfg.get("kwargs", {})),
            state_dict_key=cfg.get("state_dict_key"),
            select_prefix=cfg.get("select_prefix", ""),
            strip_prefix=cfg.get("strip_prefix", ""),
            strict=bool(cfg.get("strict", True)),
            method=cfg.get("method", "forward"),
            exporter=cfg.get("exporter", "dynamo"),
            opset=int(raw["opset"]),
            fp32_ops=tuple(cfg.get("fp32_ops", [])),
            output_kind=cfg.get("output_kind", "tensor"),
            sample_rate=int(cfg.get("sample_rate", 22050)),
            allow_unsafe_pickle=bool(cfg.get("allow_unsafe_pickle", False)),
            raw=raw,
        )
    except KeyError as e:
        raise ConfigError(f"{where}: missing key {e}") from None
    _check(spec, where, int(defaults.get("max_input_bytes", DEFAULT_MAX_INPUT_BYTES)))
    return spec


def _check(spec: ComponentSpec, where: str, max_input_bytes: int) -> None:
    suffix = "." + spec.checkpoint.rpartition(".")[2] if "." in spec.checkpoint else ""
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ConfigError(f"{where}.checkpoint: '{spec.checkpoint}' is not one of {', '.join(CHECKPOINT_SUFFIXES)} "
                          f"(convert other formats: python -m workflow_lib.convert --help)")
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
    for precision in ("fp32", "fp16"):
        if precision not in spec.tolerance:
            raise ConfigError(f"{where}.tolerance: missing '{precision}' (atol/rtol)")
    total = sum(
        int(np.prod(shape)) * np.dtype(DTYPES[i.dtype]).itemsize
        for i, shape in zip(spec.inputs, spec.shapes("max").values())
    )
    if total > max_input_bytes:
        raise ConfigError(
            f"{where}.dims: the max profile needs {total / 2**20:,.0f} MiB of input tensors alone "
            f"(limit {max_input_bytes / 2**20:,.0f} MiB, limits.max_input_mb); lower the max values"
        )


def spec_from_json(text: str) -> ComponentSpec:
    """The spec a rule passed on its command line; the size limit was checked at config time."""
    raw = json.loads(text)
    return component_spec(raw["model"], raw["component"], raw, {"opset": raw["opset"], "max_input_bytes": sys.maxsize})
