import importlib.util
import json
import os
import platform
import shlex
import sys
from argparse import Namespace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from workflow_lib.core import variants as graph_variants
from workflow_lib.core.codehash import code_hash
from workflow_lib.core.errors import ConfigError
from workflow_lib.core.files import read_json, sha256_json
from workflow_lib.core.paths import DEVICE_RESULTS_ENV, GRAPH, Paths, ReportInputs, manifest_path, samples_path, sidecar
from workflow_lib.core.spec import PACKAGE_PREFIX, package_distributions
from workflow_lib.analysis.plots import PLOTS
from workflow_lib.analysis.results import runtime_versions
from workflow_lib.plan import config as plan
from workflow_lib.runtimes import registry as backends


# Older keys renamed (each with its deprecation message), the schema (config/schema.yaml plus what the
# stages and chain plug-ins declare) applied with its defaults, then every check a schema cannot make.
for _message in plan.normalise(config):
    logger.warning(f"config (deprecated): {_message}")
try:
    SPECS, CHAIN_SPECS = plan.check(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None

envvars:
    "PATH",


# Jobs' `python` is the interpreter running Snakemake (same venv, locally and in cluster
# jobs), also when snakemake was started as .venv/bin/snakemake without activating the venv.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
# GPU-dependent results live per GPU class, so two classes never overwrite each other.
PATHS = Paths.from_config(config)
os.environ[DEVICE_RESULTS_ENV] = PATHS.device  # failure records of every job go there
# torch.compile's caches, beside the engine cache: a second checkout or a cluster node reuses them.
# (set, not read: update() keeps `snakemake --lint` from taking it for an undeclared envvar)
os.environ.update(TORCHINDUCTOR_CACHE_DIR=os.path.abspath(config["torch_compile"]["cache_dir"]))
GPU_RESOURCES = {"gpu": 1} | {
    key: config["cluster"][name]
    for name, key in (("gpu_model", "gpu_model"), ("partition", "slurm_partition"), ("constraint", "constraint"))
    if config["cluster"][name]
}
BACKENDS = config["backends"] or list(backends.REGISTRY)
CONFIG_HASH = sha256_json(config)[:16]
SEEDED = {m: c["seed_checkpoints"] for m, c in config["models"].items() if "seed_checkpoints" in c}
CHAINS = list(CHAIN_SPECS)
# Only what the timing jobs use: bench.bootstrap (the summary's) must not rerun them. Their cores come from
# --threads alone (every stage's one source of its thread count).
BENCH_TIMING = {k: config["bench"][k] for k in ("warmup", "warmup_seconds", "min_iterations", "max_iterations",
                                               "target_rel_ci", "max_seconds", "points")}
# bench.prune: a series is timed at deploy.point alone (what the decision reads) and at the other points only
# where it ships (bench_shipped); PyTorch fp32, every speedup's baseline, at every point.
PRUNED_POINTS = [p for p in config["bench"]["points"] if p != config["deploy"]["point"]] if config["bench"]["prune"] else []
# Timing jobs run on bench.threads cores of their own, every other compute job on one of its own
# (workflow_lib/core/slots.py): cores / TIMING_CORES timing jobs run side by side without sharing a core,
# and non-timing jobs fill the cores no timing job holds. Each timing job also takes one unit of
# the `timing` resource: `--resources timing=1` times one job at a time (see BENCHMARKS.md for
# what running side by side costs on a small VM).
TIMING_CORES = config["bench"]["threads"] or workflow.cores
# Datacenter TensorRT builds on the GPU it targets; TensorRT-RTX builds ahead of time on CPU.
_FLAVOUR = config["tensorrt"]["flavour"]
BUILD_NEEDS_GPU = _FLAVOUR == "tensorrt" or (
    _FLAVOUR == "auto" and importlib.util.find_spec("tensorrt") is not None
)
BEST = "best"  # the chain assignment that runs the deployment manifest's choices
PARTIAL_LOG = PATHS.device_log("report_partial")  # the report rendered after a failed run
RUNNER = "workflow_lib.deployment.runner"  # the code a bundle ships to run itself

for (_m, _c), _spec in SPECS.items():
    _source = _spec.raw["checkpoint_source"]
    if _m in SEEDED and not _source.startswith(PACKAGE_PREFIX) and _spec.checkpoint != PATHS.checkpoint(_m, _c):
        raise WorkflowError(
            f"invalid config: models.{_m} has seed_checkpoints, so models.{_m}.components.{_c}.checkpoint "
            f"must be {PATHS.checkpoint(_m, _c)}, a pkg: file, or the model must drop seed_checkpoints"
        )


wildcard_constraints:
    model="[A-Za-z0-9_]+",
    component="[A-Za-z0-9_]+",
    variant="|".join(graph_variants.VARIANTS),
    backend="|".join(backends.REGISTRY),
    assignment="[A-Za-z0-9_]+",


def get_code(stage, *extra, plugins=()):
    """Hash of the stage module, every workflow_lib module it imports and the plug-ins it runs: a param, so
    any fix reruns it."""
    return code_hash(f"workflow_lib.stages.{stage}", *extra, plugins=tuple(plugins))


def components(model):
    return [c for (m, c) in SPECS if m == model]


def spec_of(wildcards):
    return SPECS[(wildcards.model, wildcards.component)]


def get_spec(stage, variant=None):
    """The component's spec with only what `stage` reads (and the gate of `variant`): a param."""
    return lambda wc: spec_of(wc).slice(stage, variant or getattr(wc, "variant", None))


def get_specs(stage, model, names=None):
    """Several components' slices as one JSON param."""
    return json.dumps({c: SPECS[(model, c)].slice(stage) for c in names or components(model)}, sort_keys=True)


def get_checkpoint(wildcards):
    return spec_of(wildcards).checkpoint


def pattern(names):
    return "|".join(names) or "(?!)"


# --- the host probe: what this run's (GPU job) host can run --------------------------------

def host():
    """The probe's record; reading it makes the calling input function wait for the probe."""
    return read_json(checkpoints.probe_host.get().output[0])


def runs_here(backend, variant):
    run = host()["runs"].get(f"{backend}.{variant}")
    return bool(run and run["devices"])


def uses_gpu(backend):
    """Whether a job of this backend takes a GPU: GPU backends, and PyTorch where CUDA is visible."""
    return backends.get(backend).requests_gpu and host()["cuda"]


def gpu_resources_if(predicate):
    """GPU resources (SLURM GPU class included) as callables: given only to jobs for which `predicate` holds."""
    return {k: (lambda wc, v=v: v if predicate(wc) else None) for k, v in GPU_RESOURCES.items()}


# --- graph variants, artifacts and series -------------------------------------------------

def variants_of(model, component):
    return SPECS[(model, component)].variants


def series_of(model, component):
    """(backend, variant) series this config asks for: both tables, limited to `backends` and the component's variants."""
    return [(b, v) for (b, v) in backends.series() if b in BACKENDS and v in variants_of(model, component)]


def series_here(model, component):
    """The series this host can run: the only ones that get validation and benchmark jobs."""
    return [(b, v) for (b, v) in series_of(model, component) if runs_here(b, v)]


def get_artifact(model, component, backend, variant):
    return PATHS.artifact(backends.get(backend).artifact, variant, model, component, SPECS[(model, component)].checkpoint)


def get_marker(model, component, backend, variant):
    """The validation marker gating a backend's artifact, or None for backends not validated by one."""
    if backends.get(backend).validation != "marker":
        return None
    return PATHS.marker(model, component, backend, variant)


def needs_calibration(variant):
    return graph_variants.get(variant).calibration or graph_variants.get(variant).gate == "fidelity"


def get_variant_inputs(wildcards):
    """A derived variant's stage reads its parent's graph, PyTorch's outputs the export stored (the parity
    reference) and, for variants that calibrate, the component's sample set."""
    v = graph_variants.get(wildcards.variant)
    inputs = {"parent": PATHS.graph(v.parent, wildcards.model, wildcards.component),
              "reference": PATHS.reference_outputs(wildcards.model, wildcards.component)}
    if v.calibration:
        inputs["calibration"] = PATHS.calibration(wildcards.model, wildcards.component)
    return inputs


def get_variant_settings(wildcards):
    section = graph_variants.get(wildcards.variant).settings
    return json.dumps(config.get(section) or {} if section else {}, sort_keys=True)


def judged_on(wildcards, input):
    """A fidelity gate's files: the sample set, and the variant's own spread of its search files (search_files of
    the variant's settings: what its stage searched on), so a marker judges as the search did."""
    return " ".join(judged_args(wildcards.variant, input.calibration if "calibration" in input.keys() else None))


def judged_args(variant, calibration):
    if not calibration:
        return []
    section = graph_variants.get(variant).settings
    count = (config.get(section) or {}).get("search_files") if section else None
    return ["--calibration", calibration, *(["--search-files", str(count)] if count else [])]


def get_validation_inputs(wildcards):
    w = wildcards
    inputs = {"artifact": get_artifact(w.model, w.component, w.backend, w.variant),
              "reference": PATHS.reference_outputs(w.model, w.component)}
    if needs_calibration(w.variant):
        inputs["calibration"] = PATHS.calibration(w.model, w.component)
    return inputs


def get_bench_inputs(wildcards):
    """The artifact the backend consumes, its validation marker when it is validated by one, and PyTorch's
    stored outputs when the job checks parity itself."""
    w = wildcards
    inline = backends.get(w.backend).checks_inline(w.variant)
    inputs = {"artifact": get_artifact(w.model, w.component, w.backend, w.variant),
              "marker": get_marker(w.model, w.component, w.backend, w.variant),
              "reference": PATHS.reference_outputs(w.model, w.component) if inline else None,
              "calibration": PATHS.calibration(w.model, w.component) if inline and needs_calibration(w.variant) else None}
    return {k: v for k, v in inputs.items() if v}


def made_artifacts():
    """Every artifact a rule makes from a graph variant (an OpenVINO IR, a TensorRT engine, ...) for the backends
    this config runs: the made kinds of the registry, wherever their backend runs the variant."""
    return sorted({
        get_artifact(m, c, b.name, v)
        for b in backends.REGISTRY.values() if b.name in BACKENDS and b.artifact in backends.made_kinds()
        for (m, c) in SPECS for v in variants_of(m, c) if v in b.variants
    })


# --- the end-to-end chain -----------------------------------------------------------------

def chain_of(model):
    return CHAIN_SPECS[model]


def chain_files(model):
    """The chain's input files (every role): what the reference and the sample sets read."""
    return list(chain_of(model).splits.files)


def get_chain(model, *keys):
    """The slice of the chain's spec a stage reads: a param, so other keys never rerun it."""
    return chain_of(model).slice(*keys)


def chain_code(stage, model, scoring=True):
    """The stage's code, the chain's forward pass and (for stages that judge) its scoring."""
    spec = chain_of(model)
    return get_code(stage, plugins=[spec.plugin, *([spec.scoring] if scoring else [])])


def series_preferences(model, assignment):
    """Per component, the backend.variant series an assignment names that run here, in preference order."""
    spec = chain_of(model).assignments[assignment]
    out = {}
    for comp in components(model):
        prefs = spec.get(comp, spec.get("default", [f"{backends.REFERENCE}.{backends.REFERENCE_VARIANT}"]))
        out[comp] = [s for s in prefs
                     if runs_here(*backends.parse_series(s)[:2]) and backends.parse_series(s)[0] in BACKENDS]
    return out


def chain_assignments(model):
    """The model's assignments that can run here (every component has a series this host runs), and `best`."""
    if model not in CHAINS:
        return []
    runnable = [a for a in chain_of(model).assignments if all(series_preferences(model, a).values())]
    return [*runnable, BEST]


def chain_unrunnable(model):
    """Assignments planned nowhere on this host, with why: shown in the report."""
    out = []
    for a in chain_of(model).assignments if model in CHAINS else {}:
        missing = [c for c, chosen in series_preferences(model, a).items() if not chosen]
        if missing:
            out.append({"model": model, "assignment": a, "reason": f"no series for {', '.join(missing)} runs on this host"})
    return out


def get_choices(model, assignment):
    """Per component, the choices (series, artifact, marker) an assignment names, in order: what the stage opens."""
    out = {}
    for comp, choices in series_preferences(model, assignment).items():
        for series in choices:
            backend, variant, device = backends.parse_series(series)
            out.setdefault(comp, []).append({"series": f"{backend}.{variant}", "device": device,
                                             "artifact": get_artifact(model, comp, backend, variant),
                                             "marker": get_marker(model, comp, backend, variant)})
    return out


def get_chain_bench_inputs(wildcards):
    inputs = {"reference": PATHS.chain_reference(wildcards.model)}
    if wildcards.assignment == BEST:
        return inputs | {"bundle": PATHS.deploy(wildcards.model)}
    entries = get_choices(wildcards.model, wildcards.assignment).values()
    return inputs | {"artifacts": sorted({c[k] for choices in entries for c in choices
                                          for k in ("artifact", "marker") if c[k]})}


def get_chain_bench_args(wildcards, input):
    if wildcards.assignment == BEST:
        return f"--manifest {manifest_path(input.bundle)}"
    choices = json.dumps(get_choices(wildcards.model, wildcards.assignment), sort_keys=True)
    return f"--choices {shlex.quote(choices)}"


def chain_uses_gpu(wildcards):
    if wildcards.assignment == BEST:
        return host()["cuda"]
    return any(uses_gpu(backends.parse_series(s)[0])
               for choices in series_preferences(wildcards.model, wildcards.assignment).values() for s in choices)


# --- what each model produces ----------------------------------------------------------------

def bench_csvs(model=None):
    return [PATHS.bench_csv(m, c, b, v) for (m, c) in SPECS if model in (None, m) for (b, v) in series_here(m, c)]


def bench_args(model, component, backend, variant):
    """What the bench stage is told of one series (not its timing, points or output): its spec, backend, variant,
    artifact and what checks it (get_bench_inputs). bench_component and bench_shipped both pass these."""
    inputs = get_bench_inputs(Namespace(model=model, component=component, backend=backend, variant=variant))
    args = ["--spec", SPECS[(model, component)].slice("bench", variant), "--backend", backend, "--variant", variant]
    args += ["--artifact", inputs["artifact"]]
    for k in ("marker", "reference"):
        args += [f"--{k}", inputs[k]] if k in inputs else []
    return args + judged_args(variant, inputs.get("calibration"))


def shipped_args(model):
    """Per component and series ('backend.variant'), its bench_args: bench_shipped times whichever the decision
    ships. JSON."""
    return json.dumps({c: {f"{b}.{v}": bench_args(model, c, b, v) for (b, v) in series_here(model, c)}
                       for c in components(model)}, sort_keys=True)


def shipped_dirs():
    """Per model, what it ships timed at the points its benchmarks left out (none without bench.prune)."""
    return [PATHS.shipped_dir(m) for m in config["models"]] if PRUNED_POINTS else []


def shipped_csvs():
    return [PATHS.shipped_csv(m, c) for m in config["models"] for c in components(m)] if PRUNED_POINTS else []


def deferred_points(wildcards):
    """The points a series' benchmark leaves to bench_shipped (bench.prune): none for PyTorch fp32."""
    return [] if graph_variants.is_reference(wildcards.backend, wildcards.variant) else PRUNED_POINTS


def bench_timing(wildcards):
    points = [p for p in config["bench"]["points"] if p not in deferred_points(wildcards)]
    return json.dumps({**BENCH_TIMING, "points": points}, sort_keys=True)


def chain_csvs():
    return [PATHS.chain_csv(m, a) for m in CHAINS for a in chain_assignments(m)]


def validation_markers(model=None):
    markers = [get_marker(m, c, b, v) for (m, c) in SPECS if model in (None, m) for (b, v) in series_here(m, c)]
    return [path for path in markers if path]


def sample_sets(model):
    """Component -> its sample set, for the components with a variant that reads one (no other is made)."""
    return {c: PATHS.calibration(model, c) for c in components(model)
            if any(needs_calibration(v) for v in variants_of(model, c))}


def get_samples(model):
    """Per component, its sample set (where a variant reads one) and PyTorch's stored outputs: what the held-out
    verdict of what ships is judged on."""
    sets = sample_sets(model)
    return {c: {"reference": PATHS.reference_outputs(model, c), **({"calibration": sets[c]} if c in sets else {})}
            for c in components(model)}


def sample_files(model):
    return sorted({p for paths in get_samples(model).values() for p in paths.values()})


def candidate_artifacts(model):
    """Every artifact a model's deployment may bundle: those of the series measured here."""
    return sorted({get_artifact(model, c, b, v) for c in components(model) for (b, v) in series_here(model, c)})


def graphs():
    return [PATHS.graph(v, m, c) for (m, c) in SPECS for v in ("export", *variants_of(m, c))]


def deploy_dirs():
    return [PATHS.deploy(m) for m in config["models"]]


def comparison():
    """This run against the baseline run, where one is configured."""
    return [PATHS.comparison] if config["compare"]["baseline"] else []


def all_targets(wildcards):
    """Every artifact of every component, the deployment bundles, then the report that reads them (and the
    check against the baseline run, where asked for)."""
    gate = [PATHS.comparison_checked] if config["compare"]["baseline"] and config["compare"]["fail_on_regression"] else []
    return graphs() + made_artifacts() + validation_markers() + deploy_dirs() + [PATHS.report, PATHS.failures_checked] + gate


def graph_sidecars():
    return [sidecar(PATHS.graph(v, m, c)) for (m, c) in SPECS for v in variants_of(m, c)]


def report_inputs():
    """Everything the report shows (core/paths.py ReportInputs): results, evidence, and the media to judge."""
    return ReportInputs(
        summary=PATHS.summary, unavailable=PATHS.unavailable, host=PATHS.host,
        bench=tuple(bench_csvs() + chain_csvs()), markers=tuple(validation_markers()),
        artifacts=tuple(sidecar(a) for a in made_artifacts()), bundles=tuple(deploy_dirs()),
        graphs=tuple(graph_sidecars()),
        calibrations=tuple(sidecar(path) for m in dict.fromkeys(m for m, _ in SPECS)
                           for path in sample_sets(m).values()),
        references=tuple(sidecar(PATHS.chain_reference(m)) for m in CHAINS),
        comparison=tuple(comparison()),
        live=tuple(PATHS.live(m) for m in CHAINS if chain_of(m).stream),
        media=tuple(media_files()),
        failures=PATHS.failures_dir,
    )


def get_report_inputs(wildcards):
    return report_inputs().files()


def media_files():
    """What a person judges, per chain: the input and PyTorch's run of it, each assignment's, the live stream."""
    out = []
    for m in CHAINS:
        suffix = chain_of(m).chain_class.media_suffix
        out += [PATHS.chain_media(m, which, suffix) for which in ("input", "reference")]
        out += [PATHS.assignment_media(m, a, suffix) for a in chain_assignments(m)]
        out += [PATHS.live_media(m, suffix)] if chain_of(m).stream else []
    return out
