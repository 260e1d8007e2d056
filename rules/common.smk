import importlib.util
import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from workflow_lib.config import ConfigError, specs_from_config
from workflow_lib.engine import engine_dir
from workflow_lib.io import sha256_json


validate(config, "../config/schema.yaml")

try:
    SPECS = specs_from_config(config)
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None

envvars:
    "PATH",


# Jobs' `python` is the interpreter running Snakemake (same venv, locally and in cluster
# jobs), also when snakemake was started as .venv/bin/snakemake without activating the venv.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
# GPU-dependent results live per GPU class, so two classes never overwrite each other.
GPU_CLASS = config["cluster"]["gpu_class"]
DEVICE_RESULTS = f"results/gpu_{GPU_CLASS}" if GPU_CLASS else "results"
ENGINE_DIR = os.path.join(engine_dir(config), f"gpu_{GPU_CLASS}") if GPU_CLASS else engine_dir(config)
GPU_RESOURCES = {"gpu": 1} | {
    key: config["cluster"][name]
    for name, key in (("gpu_model", "gpu_model"), ("partition", "slurm_partition"), ("constraint", "constraint"))
    if config["cluster"][name]
}
PRECISIONS = config["precisions"]
CONFIG_HASH = sha256_json(config)[:16]
SEEDED = {m: c["seed_checkpoints"] for m, c in config["models"].items() if "seed_checkpoints" in c}
# Datacenter TensorRT builds on the GPU it targets; TensorRT-RTX builds ahead of time on CPU.
_FLAVOUR = config["tensorrt"]["flavour"]
BUILD_NEEDS_GPU = _FLAVOUR == "tensorrt" or (
    _FLAVOUR == "auto" and importlib.util.find_spec("tensorrt") is not None
)

for (_m, _c), _spec in SPECS.items():
    _seeded_path = f"results/checkpoints/{_m}/{_c}.safetensors"
    if _m in SEEDED and _spec.checkpoint != _seeded_path:
        raise WorkflowError(
            f"invalid config: models.{_m} has seed_checkpoints, so models.{_m}.components.{_c}.checkpoint "
            f"must be {_seeded_path} (or remove seed_checkpoints to use your own file)"
        )


wildcard_constraints:
    model="[A-Za-z0-9_]+",
    component="[A-Za-z0-9_]+",
    precision="fp32|fp16",
    backend="pytorch|onnxruntime|tensorrt",
    assignment="[A-Za-z0-9_]+",


def code(stage):
    """The stage module as an input: editing it reruns that stage's jobs."""
    return os.path.join(workflow.basedir, "workflow_lib", f"{stage}.py")


def spec_json(wildcards):
    return SPECS[(wildcards.model, wildcards.component)].to_json()


def checkpoint_file(wildcards):
    return SPECS[(wildcards.model, wildcards.component)].checkpoint


def onnx_path(model, component, precision):
    """fp32 engines and markers use the simplified graph; fp16 ones the converted graph."""
    stage = "onnx_sim" if precision == "fp32" else "onnx_fp16"
    return f"results/{stage}/{model}/{component}.onnx"


def onnx_for(wildcards):
    return onnx_path(wildcards.model, wildcards.component, wildcards.precision)


def engine_path(model, component, precision):
    return f"{ENGINE_DIR}/{model}/{component}.{precision}.engine"


def validation_artifact(wildcards):
    if wildcards.backend == "tensorrt":
        return engine_path(wildcards.model, wildcards.component, wildcards.precision)
    return onnx_for(wildcards)


def seeded_models_pattern():
    return "|".join(SEEDED) or "(?!)"


BENCH_BACKENDS = ("pytorch", "onnxruntime", "tensorrt")


def bench_inputs(wildcards):
    """PyTorch needs the checkpoint; ORT and TensorRT also their artifact and its validation marker."""
    inputs = {"ckpt": checkpoint_file(wildcards), "code": code("bench")}
    if wildcards.backend != "pytorch":
        inputs["artifact"] = validation_artifact(wildcards)
        inputs["marker"] = (
            f"{DEVICE_RESULTS}/validation/{wildcards.model}/{wildcards.component}."
            f"{wildcards.backend}.{wildcards.precision}.json"
        )
    return inputs


def e2e_artifacts(model):
    """Per component, every artifact an assignment may pick, and the markers that gate them."""
    out = {}
    for (m, c) in SPECS:
        if m != model:
            continue
        out[c] = {"checkpoint": SPECS[(m, c)].checkpoint}
        for p in PRECISIONS:
            out[c][f"onnx_{p}"] = onnx_path(m, c, p)
            out[c][f"engine_{p}"] = engine_path(m, c, p)
            for b in ("onnxruntime", "tensorrt"):
                out[c][f"marker_{b}_{p}"] = f"{DEVICE_RESULTS}/validation/{m}/{c}.{b}.{p}.json"
    return out


def e2e_inputs(wildcards):
    files = [path for paths in e2e_artifacts(wildcards.model).values() for path in paths.values()]
    return {"artifacts": files, "code": code("e2e")}


def e2e_assignments(model):
    return list(config["models"][model].get("e2e", {}).get("assignments", {}))


def bench_csvs():
    csvs = [
        f"{DEVICE_RESULTS}/bench/{m}/{c}.{b}.{p}.csv"
        for (m, c) in SPECS
        for b in BENCH_BACKENDS
        for p in PRECISIONS
    ]
    csvs += [f"{DEVICE_RESULTS}/bench/{m}/e2e/{a}.csv" for m in config["models"] for a in e2e_assignments(m)]
    return csvs


def engine_paths():
    return [engine_path(m, c, p) for (m, c) in SPECS for p in PRECISIONS]


def validation_markers():
    return [
        f"{DEVICE_RESULTS}/validation/{m}/{c}.{b}.{p}.json"
        for (m, c) in SPECS
        for b in ("onnxruntime", "tensorrt")
        for p in PRECISIONS
    ]


def all_targets():
    """Every artifact of every component, then the report that reads them."""
    onnx = [f"results/onnx/{m}/{c}.onnx" for (m, c) in SPECS]
    onnx += [onnx_path(m, c, p) for (m, c) in SPECS for p in PRECISIONS]
    return onnx + engine_paths() + validation_markers() + [f"{DEVICE_RESULTS}/report/index.html"]
