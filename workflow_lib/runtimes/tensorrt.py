"""TensorRT engines (either flavour), run on CUDA tensors on the engine's own stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import Unavailable
from ..core.files import read_json
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec
from . import tensorrt_engines as trt
from .runner import Feeds, Runner


def _flavour(engine: str | None) -> tuple[trt.Flavour, dict[str, Any]]:
    if not engine or not sidecar_path(engine).is_file():
        raise Unavailable(f"no engine sidecar for {engine}: build the engine first")
    meta = read_json(sidecar_path(engine))
    try:
        return trt.load(meta["flavour"]), meta
    except trt.TrtError as e:
        raise Unavailable(str(e)) from e


def devices(variant: str, artifact: str | None = None) -> list[str]:
    fl, meta = _flavour(artifact)
    if not meta.get("built", True):
        raise Unavailable(f"the {variant} engine was not built: {meta.get('reason')}")
    ok, why = trt.runnable(fl, meta["settings"]["compute_capabilities"])
    if not ok:
        raise Unavailable(why)
    return ["cuda"]


def probe(variant: str, config: dict) -> list[str]:
    """Whether engines built with the configured flavour and targets could run on this host."""
    trt_cfg = config.get("tensorrt", {})
    try:
        fl = trt.load(trt_cfg.get("flavour", "auto"))
    except trt.TrtError as e:
        raise Unavailable(str(e)) from e
    ok, why = trt.runnable(fl, trt_cfg.get("compute_capabilities", []) if fl.name == "tensorrt_rtx" else [])
    if not ok:
        raise Unavailable(why)
    return ["cuda"]


class TensorRTRunner(Runner):
    device, timer = "cuda", "cuda_event"

    def __init__(self, engine: str):
        super().__init__()
        import torch

        fl, meta = _flavour(engine)
        self.engine = trt.Engine(fl, Path(engine).read_bytes())
        torch.cuda.set_stream(self.engine.stream)  # CUDA events of the timer record on the engine's stream
        self.info.update(flavour=fl.name, flavour_version=fl.version)

    def __call__(self, feeds: Feeds) -> list[np.ndarray]:
        return self.engine(feeds)

    def prepare(self, feeds: Feeds) -> Callable[[], Any]:
        self.engine.bind(feeds)
        return self.engine.execute

    def sync(self) -> None:
        self.engine.stream.synchronize()


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> TensorRTRunner:
    return TensorRTRunner(str(artifact))
