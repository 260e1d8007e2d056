import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tinymodels importable in-process and, via PYTHONPATH, in jobs

TOL = {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"atol": 2e-2, "rtol": 2e-2}}


def tiny_svc_config() -> dict:
    """The demo model's own config with tiny kwargs and dims: same code paths, seconds per job."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    comps = cfg["models"]["svc_demo"]["components"]
    comps["content_encoder"]["kwargs"] = {"n_mels": 80, "channels": 32, "out_channels": 256, "layers": 1, "heads": 2, "ffn": 64}
    comps["flow_decoder"]["kwargs"] = {"channels": 192, "hidden": 16, "kernel": 3, "layers": 2, "flows": 2, "cond_channels": 704}
    comps["vocoder"]["kwargs"] = {"n_mels": 80, "channels": 16, "upsample_rates": [8, 8, 2, 2], "upsample_kernels": [16, 16, 4, 4]}
    for c in comps.values():
        c["dims"] = {"batch": {"min": 1, "opt": 1, "max": 2}, "time": {"min": 8, "opt": 24, "max": 48}}
    cfg["tensorrt"]["compute_capabilities"] = ["SM86"]
    cfg["tensorrt"]["optimization_level"] = 0
    # torch.compile costs 10-30 s of compilation per component; tests/test_backends.py covers it
    cfg["backends"] = ["pytorch", "onnxruntime", "onnxruntime_cuda", "openvino", "tensorrt"]
    return cfg


def tiny_byo_component(checkpoint: str, **extra) -> dict:
    return {"class": "tinymodels.TinyConv", "kwargs": {"channels": 8, "hidden": 16}, "checkpoint": checkpoint,
            "inputs": [{"name": "x", "shape": ["batch", 8, "time"]}], "outputs": ["y"],
            "dims": {"batch": {"min": 1, "opt": 1, "max": 2}, "time": {"min": 4, "opt": 16, "max": 32}},
            "tolerance": copy.deepcopy(TOL), **extra}


@pytest.fixture
def workdir(tmp_path):
    """A temp working directory for the real snakemake CLI; the repo's Snakefile, a tiny config."""
    (tmp_path / "config").mkdir()
    return tmp_path


def write_config(workdir: Path, cfg: dict) -> Path:
    path = workdir / "config" / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config" / "config.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count that a dry run would execute."""
    out = snakemake(workdir, *args, "-n", "--quiet", "rules").stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


def export_tiny_conv(d: Path, **extra):
    """TinyConv with seeded weights, exported to d/net.onnx: the small real model most tests start from."""
    import torch
    from safetensors.torch import save_file
    from tinymodels import TinyConv
    from workflow_lib import export
    from workflow_lib.config import component_spec

    torch.manual_seed(0)
    save_file(TinyConv().state_dict(), str(d / "w.safetensors"))
    spec = component_spec("mine", "net", tiny_byo_component(str(d / "w.safetensors"), **extra))
    export.export(spec, d / "net.onnx")
    return spec


def has_runnable_gpu() -> tuple[bool, str]:
    from workflow_lib import trt
    try:
        fl = trt.load("auto")
    except trt.TrtError as e:
        return False, str(e)
    return trt.runnable(fl, [])
