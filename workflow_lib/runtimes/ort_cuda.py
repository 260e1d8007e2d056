"""ONNX Runtime on the CUDA execution provider (the optional onnxruntime-gpu package)."""

from __future__ import annotations

from ..core.errors import Unavailable
from ..core.spec import ComponentSpec
from .ort import OrtRunner


def devices(variant: str, artifact: str | None = None) -> list[str]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Unavailable(
            "ONNX Runtime has no CUDAExecutionProvider here: install the onnxruntime-gpu "
            "package in place of onnxruntime (pip install -e '.[cuda]') on a CUDA host"
        )
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("no CUDA device visible to this process (torch.cuda.is_available() is False)")
    return ["cuda"]


def open_runner(spec: ComponentSpec, variant: str, artifact: str | None, threads: int, device: str) -> OrtRunner:
    return OrtRunner(str(artifact), threads, "cuda")
