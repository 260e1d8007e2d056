"""ONNX Runtime on the CPU execution provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.spec import ComponentSpec
from .runner import Feeds, Runner, step_at

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def session(path: str, threads: int = 0, device: str = "cpu"):
    """A session without spinning worker threads (they slow any other work in the process)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=[PROVIDERS[device]])


class OrtRunner(Runner):
    """Numpy feeds straight into `session.run`; on CUDA that includes the host<->device copies."""

    def __init__(self, path: str, threads: int, device: str):
        super().__init__()
        self.device = device
        self.session = session(path, threads, device)
        self.info["providers"] = self.session.get_providers()

    def __call__(self, feeds: Feeds) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in self.session.run(None, feeds)]


def devices(variant: str, artifact: str | None = None) -> list[str]:
    return ["cpu"]


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> OrtRunner:
    return OrtRunner(str(artifact), threads, device)


def graph_step(path: str, spec: str, threads: int, point: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    """A graph on the CPU at a shape point, warm, as (step, sync): what paired timing runs."""
    return step_at(OrtRunner(path, threads, "cpu"), spec, point)
