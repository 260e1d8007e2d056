import importlib.util
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from workflow_lib.backends import registry as backends
from workflow_lib.codehash import code_hash
from workflow_lib.runconfig import specs_from_config
from workflow_lib.errors import ConfigError
from workflow_lib.io import sha256_json
from workflow_lib.paths import DEVICE_RESULTS_ENV, Layout, artifact, samples_path
from workflow_lib.plots import PLOTS


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
LAYOUT = Layout.from_config(config)
DEVICE_RESULTS = LAYOUT.device
ENGINE_DIR = LAYOUT.engines
os.environ[DEVICE_RESULTS_ENV] = DEVICE_RESULTS  # failure records of every job go there
GPU_RESOURCES = {"gpu": 1} | {
    key: config["cluster"][name]
    for name, key in (("gpu_model", "gpu_model"), ("partition", "slurm_partition"), ("constraint", "constraint"))
    if config["cluster"][name]
}
PRECISIONS = config["precisions"]
BACKENDS = config["backends"] or list(backends.REGISTRY)
CONFIG_HASH = sha256_json(config)[:16]
SEEDED = {m: c["seed_checkpoints"] for m, c in config["models"].items() if "seed_checkpoints" in c}
# Only what the timing jobs use: bench.bootstrap (the summary's) must not rerun them.
BENCH_TIMING = {k: config["bench"][k] for k in ("warmup", "min_iterations", "max_iterations", "target_rel_ci", "max_seconds", "threads", "points")}
# Datacenter TensorRT builds on the GPU it targets; TensorRT-RTX builds ahead of time on CPU.
_FLAVOUR = config["tensorrt"]["flavour"]
BUILD_NEEDS_GPU = _FLAVOUR == "tensorrt" or (
    _FLAVOUR == "auto" and importlib.util.find_spec("tensorrt") is not None
)
BEST = "best"  # the e2e assignment that runs the deployment manifest's choices

for (_m, _c), _spec in SPECS.items():
    _seeded_path = Layout.checkpoint(_m, _c)
    if _m in SEEDED and _spec.checkpoint != _seeded_path:
        raise WorkflowError(
            f"invalid config: models.{_m} has seed_checkpoints, so models.{_m}.components.{_c}.checkpoint "
            f"must be {_seeded_path} (or remove seed_checkpoints to use your own file)"
        )


wildcard_constraints:
    model="[A-Za-z0-9_]+",
    component="[A-Za-z0-9_]+",
    precision="|".join(backends.PRECISIONS),
    backend="|".join(backends.REGISTRY),
    assignment="[A-Za-z0-9_]+",


def get_code(stage, *extra):
    """Hash of the stage module and every workflow_lib module it imports: a param, so any fix reruns it."""
    return code_hash(f"workflow_lib.{stage}", *extra)


def get_spec_json(wildcards):
    return SPECS[(wildcards.model, wildcards.component)].to_json()


def get_checkpoint(wildcards):
    return SPECS[(wildcards.model, wildcards.component)].checkpoint


def get_onnx(wildcards):
    return Layout.onnx_for(wildcards.model, wildcards.component, wildcards.precision)


def seeded_models_pattern():
    return "|".join(SEEDED) or "(?!)"


def components(model):
    return [c for (m, c) in SPECS if m == model]


def combos():
    """(backend, precision) pairs this config measures: the registry's, limited to `backends` and `precisions`."""
    return [(b, p) for (b, p) in backends.combos() if b in BACKENDS and p in PRECISIONS]


def backend_pattern(gpu_job, validation=None):
    names = [b.name for b in backends.REGISTRY.values()
             if b.gpu_job == gpu_job and (validation is None or b.validation == validation)]
    return "|".join(names) or "(?!)"


def get_artifact(model, component, backend, precision):
    kind = backends.get(backend).artifact
    return artifact(LAYOUT, kind, model, component, precision, SPECS[(model, component)].checkpoint)


def get_validation_artifact(wildcards):
    return get_artifact(wildcards.model, wildcards.component, wildcards.backend, wildcards.precision)


def get_marker(model, component, backend, precision):
    """The validation marker gating a backend's artifact, or None for backends not validated by one."""
    if backends.get(backend).validation != "marker":
        return None
    return LAYOUT.marker(model, component, backend, precision)


def get_bench_inputs(wildcards):
    """The artifact the backend consumes, and its validation marker when it is validated by one."""
    w = wildcards
    inputs = {"artifact": get_artifact(w.model, w.component, w.backend, w.precision),
              "marker": get_marker(w.model, w.component, w.backend, w.precision)}
    return {k: v for k, v in inputs.items() if v}


def e2e_assignments(model):
    e2e = config["models"][model].get("e2e")
    return [*e2e.get("assignments", {}), BEST] if e2e else []


def get_e2e_choices(model, assignment):
    """Per component, the backend.precision choices an assignment names, in preference order."""
    spec = config["models"][model]["e2e"]["assignments"][assignment]
    out = {}
    for comp in components(model):
        prefs = spec.get(comp, spec.get("default", "pytorch.fp32"))
        out[comp] = [prefs] if isinstance(prefs, str) else list(prefs)
    return out


def get_e2e_artifacts(model, assignment):
    """Per component and choice, the artifact and marker the chain may use: only those it names."""
    out = {}
    for comp, choices in get_e2e_choices(model, assignment).items():
        for choice in choices:
            backend, precision, _ = backends.parse_choice(choice)
            out.setdefault(comp, {})[choice] = {"artifact": get_artifact(model, comp, backend, precision),
                                                "marker": get_marker(model, comp, backend, precision)}
    return out


def get_e2e_inputs(wildcards):
    if wildcards.assignment == BEST:
        return {"bundle": LAYOUT.deploy(wildcards.model)}
    entries = get_e2e_artifacts(wildcards.model, wildcards.assignment).values()
    return {"artifacts": sorted({p for per in entries for e in per.values() for p in e.values() if p})}


def get_e2e_args(wildcards, input):
    if wildcards.assignment == BEST:
        return f"--manifest {input.bundle}/manifest.json"
    return "--choices {} --artifacts {}".format(
        shlex.quote(json.dumps(get_e2e_choices(wildcards.model, wildcards.assignment), sort_keys=True)),
        shlex.quote(json.dumps(get_e2e_artifacts(wildcards.model, wildcards.assignment), sort_keys=True)))


def get_chain_settings(wildcards):
    """The model's chain settings, without the assignments (each job gets only its own)."""
    e2e = config["models"][wildcards.model]["e2e"]
    return json.dumps({k: v for k, v in e2e.items() if k != "assignments"}, sort_keys=True)


def get_model_specs(wildcards):
    return json.dumps({c: SPECS[(wildcards.model, c)].to_json() for c in components(wildcards.model)}, sort_keys=True)


def bench_csvs(model=None):
    return [LAYOUT.bench_csv(m, c, b, p) for (m, c) in SPECS if model in (None, m) for (b, p) in combos()]


def e2e_csvs():
    return [LAYOUT.e2e_csv(m, a) for m in config["models"] for a in e2e_assignments(m)]


def engine_paths():
    return [LAYOUT.engine(m, c, p) for (m, c) in SPECS for p in PRECISIONS if "tensorrt" in BACKENDS]


def validation_markers(model=None):
    markers = [get_marker(m, c, b, p) for (m, c) in SPECS if model in (None, m) for (b, p) in combos()]
    return [path for path in markers if path]


def deploy_dirs():
    return [LAYOUT.deploy(m) for m in config["models"]]


def all_targets():
    """Every artifact of every component, the deployment bundles, then the report that reads them."""
    onnx = [Layout.graph(m, c) for (m, c) in SPECS]
    onnx += [Layout.onnx_for(m, c, p) for (m, c) in SPECS for p in PRECISIONS]
    return onnx + engine_paths() + validation_markers() + deploy_dirs() + [f"{LAYOUT.report_dir}/index.html"]
