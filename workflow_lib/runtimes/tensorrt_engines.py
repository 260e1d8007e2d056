"""The two TensorRT flavours behind one small surface: build a plan, say whether it can run, run it.

`tensorrt` (datacenter, >= 10) and `tensorrt_rtx` (TensorRT for RTX) share the builder
and runtime API. Both build strongly typed networks: precision comes from the ONNX graph
(fp16 graphs are converted beforehand), never from a builder flag. TensorRT-RTX builds
ahead of time for listed compute capabilities without a GPU, but runs only on 7.5, 8.x
and 12.x devices.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..core.errors import TrtError

FLAVOURS = ("tensorrt", "tensorrt_rtx")
PACKAGES = {
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "tensorrt_rtx": ("tensorrt_rtx", "tensorrt-rtx-cu13", "tensorrt-rtx-cu12"),
}
RTX_RUNS_ON = ((7, 5), (8, 0), (8, 6), (8, 7), (8, 9), (12, 0), (12, 1))


@dataclass
class Flavour:
    name: str
    module: ModuleType = field(repr=False)
    version: str

    @property
    def trt(self) -> ModuleType:
        return self.module


def _version(name: str, module: ModuleType) -> str:
    for dist in PACKAGES[name]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))


# Layer types TensorRT-RTX 1.7 cannot build in bf16 (no tactic for a bf16 ConvTranspose, 1-D or 2-D, on any target:
# NVIDIA/TensorRT#4829); a bf16 graph keeps them f32, with casts around them.
BF16_UNBUILDABLE = ("ConvTranspose",)


def load(flavour: str = "auto") -> Flavour:
    """Import the requested flavour; auto prefers datacenter TensorRT."""
    names = FLAVOURS if flavour == "auto" else (flavour,)
    errors = []
    for name in names:
        if name not in FLAVOURS:
            raise TrtError(f"unknown TensorRT flavour '{name}' (auto, {', '.join(FLAVOURS)})")
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        return Flavour(name, module, _version(name, module))
    raise TrtError(
        "no TensorRT flavour importable (" + "; ".join(errors) + "); install tensorrt-rtx-cu13 or the 'tensorrt' extra"
    )


def _collecting_logger(trt: ModuleType):
    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.WARNING:
                self.messages.append(f"{severity.name}: {msg}")

    return Logger()


def build(
    fl: Flavour,
    onnx_path: str,
    profile: dict[str, list[tuple[int, ...]]],
    workspace_mb: int,
    optimization_level: int,
    compute_capabilities: list[str],
) -> tuple[bytes, dict[str, Any]]:
    """Serialized plan plus a description of its I/O tensors. Raises TrtError with the parser's errors."""
    trt = fl.trt
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # TensorRT 10; RTX and TensorRT 11 are strongly typed already
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TrtError(f"{fl.name} {fl.version} could not parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.builder_optimization_level = optimization_level
    if fl.name == "tensorrt_rtx" and compute_capabilities:
        config.num_compute_capabilities = len(compute_capabilities)
        for i, cc in enumerate(compute_capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, cc), i)
    opt_profile = builder.create_optimization_profile()
    io = {"inputs": [], "outputs": []}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        if t.name not in profile:
            raise TrtError(
                f"{onnx_path}: network input '{t.name}' has no profile (inputs in config: {sorted(profile)})"
            )
        lo, opt, hi = profile[t.name]
        opt_profile.set_shape(t.name, lo, opt, hi)
        io["inputs"].append(
            {
                "name": t.name,
                "dtype": t.dtype.name,
                "shape": list(t.shape),
                "profile": {"min": list(lo), "opt": list(opt), "max": list(hi)},
            }
        )
    for i in range(network.num_outputs):
        t = network.get_output(i)
        io["outputs"].append({"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape)})
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TrtError(f"{fl.name} {fl.version} failed to build {onnx_path}: " + " | ".join(logger.messages[-5:]))
    return bytes(plan), io


def _parser_error(err) -> str:
    node = err.node_name() if hasattr(err, "node_name") else ""
    op = err.node_operator() if hasattr(err, "node_operator") else ""
    where = f"op {op} (node '{node}'): " if node or op else ""
    return f"{where}{err.desc()}"


def runnable(fl: Flavour, compute_capabilities: list[str]) -> tuple[bool, str]:
    """Whether an engine of this flavour can execute here, and if not, exactly why."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False, "torch is not installed (needed for CUDA buffers)"
    if not torch.cuda.is_available():
        return False, "no CUDA device visible to this process (torch.cuda.is_available() is False)"
    major, minor = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    if fl.name == "tensorrt_rtx":
        if (major, minor) not in RTX_RUNS_ON:
            return False, (
                f"{name} has compute capability {major}.{minor}, which tensorrt_rtx {fl.version} does "
                f"not support (it runs on 7.5, 8.x and 12.x)"
            )
        if compute_capabilities and f"SM{major}{minor}" not in compute_capabilities:
            return False, (
                f"engine was built for {', '.join(compute_capabilities)}, not for this "
                f"{name} (SM{major}{minor}); add it to tensorrt.compute_capabilities"
            )
    return True, f"{name} (compute capability {major}.{minor})"


class Engine:
    """Deserialize a plan and run it on CUDA tensors; numpy in, numpy out."""

    def __init__(self, fl: Flavour, plan: bytes):
        import torch

        trt = fl.trt
        self.torch, self.trt = torch, trt
        self.logger = _collecting_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise TrtError(
                f"{fl.name} {fl.version} could not deserialize the engine: " + " | ".join(self.logger.messages[-3:])
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()

    def _dtype(self, name: str):
        t, d = self.torch, self.trt.DataType
        return {
            d.FLOAT: t.float32,
            d.HALF: t.float16,
            d.INT32: t.int32,
            d.INT64: t.int64,
            d.BOOL: t.bool,
            d.BF16: t.bfloat16,
        }[self.engine.get_tensor_dtype(name)]

    def bind(self, feeds: dict[str, Any]) -> list[Any]:
        """Bind device tensors (torch CUDA tensors or numpy), allocate outputs; returns outputs."""
        torch = self.torch
        self._keep = []
        for name in self.inputs:
            x = feeds[name]
            x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
            x = x.to(device="cuda", dtype=self._dtype(name)).contiguous()
            self._keep.append(x)
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
        outs = []
        for name in self.outputs:
            y = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtype(name), device="cuda")
            self.context.set_tensor_address(name, y.data_ptr())
            outs.append(y)
        return outs

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TrtError("execute_async_v3 returned False")

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self.bind(feeds)
        self.execute()
        self.stream.synchronize()
        return [o.float().cpu().numpy() for o in outs]
