"""The graph-variant table drives paths, rules, validation, benchmarks and deployment: a new variant is
one table entry and one stage module, and the workflow plans, makes, validates and times it."""

import json
import textwrap

import pytest
from conftest import planned_jobs, probed, repo_copy, snakemake, tiny_byo_component, write_config

from workflow_lib.core import variants
from workflow_lib.core.paths import Paths
from workflow_lib.runtimes import registry


def test_every_variant_is_made_from_a_known_parent_by_a_stage_and_run_by_known_backends():
    import importlib.util

    for v in variants.VARIANTS.values():
        assert v.parent is None or v.parent in variants.VARIANTS, v.name
        assert importlib.util.find_spec(f"workflow_lib.stages.{v.stage}") is not None, v.stage
    assert variants.DERIVED == ("fp32", "fp16", "bf16", "int8")
    assert registry.get("openvino").variants == ["fp32", "bf16", "int8"]  # by precision: OpenVINO runs no fp16 graph
    assert registry.get("pytorch").variants == ["fp32", "fp16", "bf16"]  # the model cast, never a rewritten graph
    assert "bf16" not in registry.get("onnxruntime").variants  # its CPU kernels have no bf16 Conv/MatMul
    assert ("tensorrt", "int8") in registry.series() and ("pytorch", "int8") not in registry.series()


def test_paths_and_series_come_from_the_tables():
    p = Paths("results/gpu_a100", "results/engines/gpu_a100")
    kind = {b.artifact.name: b.artifact for b in registry.REGISTRY.values()}
    assert p.artifact(kind["engine"], "int8", "m", "c", "ck.pt") == "results/engines/gpu_a100/int8/m/c.engine"
    assert p.artifact(kind["onnx"], "fp16", "m", "c", "ck.pt") == "results/onnx/fp16/m/c.onnx"
    assert p.artifact(kind["openvino"], "int8", "m", "c", "ck.pt") == "results/openvino/int8/m/c.xml"
    assert [f.name for f in kind["openvino"].files("x/c.xml")] == ["c.xml", "c.bin"]
    assert p.artifact(kind["checkpoint"], "fp16", "m", "c", "ck.pt") == "ck.pt"
    assert p.marker("m", "c", "openvino", "int8") == "results/gpu_a100/validation/m/c.openvino.int8.json"
    assert registry.parse_series("tensorrt.int8@cuda") == ("tensorrt", "int8", "cuda")
    with pytest.raises(ValueError, match="pytorch does not run a 'int8' graph variant"):
        registry.parse_series("pytorch.int8")


def test_pytorch_takes_its_dtype_from_the_variants_precision():
    import torch

    from workflow_lib.runtimes import torch_eager

    assert torch_eager.dtype("fp16") == torch.float16 and torch_eager.dtype("fp32") == torch.float32
    with pytest.raises(registry.Unavailable, match="no cast for the int8 precision"):
        torch_eager.dtype("int8")


def test_a_component_gate_replaces_the_variant_default():
    from workflow_lib.core.spec import component_spec

    cfg = tiny_byo_component("w.safetensors")
    cfg["gates"]["int8"] = {"min_snr_db": 12.0}
    spec = component_spec("m", "c", cfg)
    assert spec.gate("int8") == {"min_snr_db": 12.0}
    assert spec.gate("fp16") == {"atol": 2e-2, "rtol": 2e-2}  # the component's own fp16 entry
    assert (
        component_spec("m", "c", {**tiny_byo_component("w.safetensors"), "gates": {}}).gate("fp16")
        == variants.VARIANTS["fp16"].default_gate
    )


# A graph variant with settings of its own: ONNX Runtime's graph optimizer at a configured level, its
# schema declared by its stage. The one module and the one table entry below are all it takes.
NEW_STAGE = '''
"""Stage: the `ort_opt` variant: the fp32 graph as ONNX Runtime's optimizer rewrites it (a test's new variant)."""
import onnxruntime as ort

from ..jobs import cli
from ..core.files import sha256_file, write_json
from ..core.paths import sidecar_path

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "properties": {"level": {"enum": ["basic", "extended"], "default": "basic"}},
}
LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}


def make(spec, variant, src, out, settings, calibration=None, reference=None, threads=0):
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[settings["level"]]
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    meta = {**cli.made_from("ort_opt", variant.name, spec, src), "level": settings["level"]}
    meta["onnx_sha256"] = sha256_file(out)
    write_json(sidecar_path(out), meta)
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "ort_opt", make)
'''

NEW_ENTRY = """
VARIANTS["ort_opt"] = Variant("ort_opt", "fp32", "fp32", "ort_opt", "allclose", {"atol": 1e-4, "rtol": 1e-3},
                              "the fp32 graph optimized by ONNX Runtime (test)", settings="ort_opt")
DERIVED = tuple(n for n, v in VARIANTS.items() if v.parent is not None)
"""


@pytest.mark.slow
def test_a_new_variant_with_settings_is_one_table_entry_and_one_stage_module(workdir, tmp_path):
    """No rule, path, schema or registry edit: the copied package gets the entry and the module; the config's
    section for it is checked against the stage's schema, reaches the stage, and the workflow plans and runs
    the new variant's graph, its marker and its benchmark."""
    copy = repo_copy(tmp_path)
    (copy / "workflow_lib" / "stages" / "ort_opt.py").write_text(textwrap.dedent(NEW_STAGE))
    with open(copy / "workflow_lib" / "core" / "variants.py", "a") as f:
        f.write(NEW_ENTRY)
    snakefile = copy / "Snakefile"
    from conftest import seeded
    from safetensors.torch import save_file
    from tinymodels import TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(workdir / "w.safetensors"))
    cfg = {
        "variants": ["fp32", "ort_opt"],
        "backends": ["pytorch", "onnxruntime"],
        "bench": {"warmup": 1, "min_iterations": 3, "max_seconds": 0.0},
        "ort_opt": {"level": "fastest"},
        "models": {"mine": {"components": {"net": tiny_byo_component(str(workdir / "w.safetensors"))}}},
    }
    write_config(workdir, cfg)
    bad = snakemake(workdir, "-n", snakefile=snakefile, check=False)
    assert bad.returncode != 0 and "invalid config: ort_opt.level: 'fastest' is not one of" in bad.stdout + bad.stderr
    cfg["ort_opt"] = {"level": "extended"}
    write_config(workdir, cfg)
    probed(workdir, snakefile=snakefile)
    jobs = planned_jobs(workdir, snakefile=snakefile)
    assert jobs["graph_variant"] == 2  # fp32 and ort_opt
    assert jobs["validate_cpu"] == 2 and jobs["bench_component"] == 3  # ORT fp32 + ort_opt; PyTorch fp32
    target = "results/bench/mine/net.onnxruntime.ort_opt.csv"
    snakemake(workdir, target, snakefile=snakefile)
    assert json.loads((workdir / "results/onnx/ort_opt/mine/net.onnx.json").read_text())["level"] == "extended"
    assert '"status": "passed"' in (workdir / "results/validation/mine/net.onnxruntime.ort_opt.json").read_text()
    assert "onnxruntime.ort_opt@cpu" in (workdir / target).read_text()


# A backend reading an artifact kind the workflow did not have: ONNX Runtime's own file format (.ort, what
# ONNX Runtime Mobile loads). Its module, its registry entry with the kind's path pattern, the stage that makes
# the file and that stage's rule file: nothing else changes.
NEW_BACKEND = '''
"""ONNX Runtime on the CPU from its own .ort format (a test's new backend)."""
from .ort import OrtRunner


def devices(variant, artifact=None):
    return ["cpu"]


def open_runner(spec, variant, artifact, threads, device):
    return OrtRunner(str(artifact), threads, device)
'''

NEW_REGISTRY_ENTRY = """
ORT_FORMAT = ArtifactKind("ort_format", "ort/{variant}/{model}/{component}.ort")
REGISTRY["onnxruntime_ort"] = Backend("onnxruntime_ort", ORT_FORMAT, ("fp32",), "marker", False,
                                      "workflow_lib.runtimes.ort_format", "ONNX Runtime from an .ort file (test)")
"""

NEW_MAKER = '''
"""Stage: a graph saved in ONNX Runtime's own format."""
import onnxruntime as ort

from ..jobs import cli
from ..core.files import sha256_file, write_json
from ..core.paths import sidecar_path

SPEC_KEYS = ()


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--onnx", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--out", required=True)

    def run(a):
        options = ort.SessionOptions()
        options.optimized_model_filepath = a.out
        options.add_session_config_entry("session.save_model_format", "ORT")
        ort.InferenceSession(a.onnx, options, providers=["CPUExecutionProvider"])
        meta = {**cli.made_from("ort_format", a.variant, a.spec, a.onnx), "sha256": sha256_file(a.out)}
        write_json(sidecar_path(a.out), meta)

    cli.run("ort_format", run, p, argv)


if __name__ == "__main__":
    main()
'''

NEW_RULE = """
rule ort_format:
    input:
        onnx=lambda wc: PATHS.graph(wc.variant, wc.model, wc.component),
    output:
        ort=PATHS.artifact(backends.get("onnxruntime_ort").artifact, "{variant}", "{model}", "{component}"),
        meta=sidecar(PATHS.artifact(backends.get("onnxruntime_ort").artifact, "{variant}", "{model}", "{component}")),
    params:
        spec=get_spec("ort_format"),
        code=get_code("ort_format"),
    log:
        PATHS.log("ort_format", "{model}", "{component}.{variant}"),
    threads: 1
    shell:
        "python -m workflow_lib.stages.ort_format --spec {params.spec:q} --variant {wildcards.variant} "
        "--onnx {input.onnx} --out {output.ort} > {log} 2>&1"
"""


@pytest.mark.slow
def test_a_backend_with_a_new_artifact_kind_is_a_module_an_entry_a_maker_and_its_rule(workdir, tmp_path):
    copy = repo_copy(tmp_path)
    (copy / "workflow_lib" / "runtimes" / "ort_format.py").write_text(textwrap.dedent(NEW_BACKEND))
    with open(copy / "workflow_lib" / "runtimes" / "registry.py", "a") as f:
        f.write(NEW_REGISTRY_ENTRY)
    (copy / "workflow_lib" / "stages" / "ort_format.py").write_text(textwrap.dedent(NEW_MAKER))
    (copy / "rules" / "ort_format.smk").write_text(textwrap.dedent(NEW_RULE))
    snakefile = copy / "Snakefile"
    from conftest import seeded
    from safetensors.torch import save_file
    from tinymodels import TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(workdir / "w.safetensors"))
    write_config(
        workdir,
        {
            "variants": ["fp32"],
            "backends": ["pytorch", "onnxruntime_ort"],
            "bench": {"warmup": 1, "min_iterations": 3, "max_seconds": 0.0},
            "models": {"mine": {"components": {"net": tiny_byo_component(str(workdir / "w.safetensors"))}}},
        },
    )
    probed(workdir, snakefile=snakefile)
    jobs = planned_jobs(workdir, snakefile=snakefile)
    assert jobs["ort_format"] == 1 and jobs["validate_cpu"] == 1 and jobs["bench_component"] == 2, jobs
    snakemake(workdir, snakefile=snakefile)
    assert (workdir / "results/ort/fp32/mine/net.ort").stat().st_size > 0
    marker = json.loads((workdir / "results/validation/mine/net.onnxruntime_ort.fp32.json").read_text())
    assert marker["status"] == "passed" and marker["artifact"].endswith("net.ort")
    manifest = json.loads((workdir / "results/deploy/mine/manifest.json").read_text())
    assert {"onnxruntime_ort.fp32", "pytorch.fp32"} >= {manifest["components"]["net"]["cpu"]["series"]}
