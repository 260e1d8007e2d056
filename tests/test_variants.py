"""The graph-variant table drives paths, rules, validation, benchmarks and deployment: a new variant is
one table entry and one stage module, and the workflow plans, makes, validates and times it."""

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
        assert set(v.consumers) <= set(registry.REGISTRY), v.name
    assert variants.DERIVED == ("fp32", "fp16", "int8")
    assert registry.get("openvino").variants == ["fp32", "int8"]
    assert ("tensorrt", "int8") in registry.combos() and ("pytorch", "int8") not in registry.combos()


def test_paths_and_choices_come_from_the_tables():
    p = Paths("results/gpu_a100", "results/engines/gpu_a100")
    assert p.artifact("engine", "int8", "m", "c", "ck.pt") == "results/engines/gpu_a100/int8/m/c.engine"
    assert p.artifact("onnx", "fp16", "m", "c", "ck.pt") == "results/onnx/fp16/m/c.onnx"
    assert p.artifact("openvino", "int8", "m", "c", "ck.pt") == "results/openvino/int8/m/c.xml"
    assert p.artifact("checkpoint", "fp16", "m", "c", "ck.pt") == "ck.pt"
    assert p.marker("m", "c", "openvino", "int8") == "results/gpu_a100/validation/m/c.openvino.int8.json"
    assert registry.parse_choice("tensorrt.int8@cuda") == ("tensorrt", "int8", "cuda")
    with pytest.raises(ValueError, match="pytorch does not run a 'int8' graph variant"):
        registry.parse_choice("pytorch.int8")


def test_a_component_gate_replaces_the_variant_default():
    from workflow_lib.core.spec import component_spec

    cfg = tiny_byo_component("w.safetensors")
    cfg["tolerance"]["int8"] = {"min_snr_db": 12.0}
    spec = component_spec("m", "c", cfg)
    assert spec.gate("int8") == {"min_snr_db": 12.0}
    assert spec.gate("fp16") == {"atol": 2e-2, "rtol": 2e-2}  # the component's own fp16 entry
    assert (
        component_spec("m", "c", {**tiny_byo_component("w.safetensors"), "tolerance": {}}).gate("fp16")
        == variants.VARIANTS["fp16"].default_gate
    )


NEW_STAGE = '''
"""Stage: the `copy` variant: the fp32 graph, byte for byte (a test's stand-in for a new variant)."""
import shutil
from pathlib import Path

from ..core import cli
from ..core.files import now, sha256_file, write_json
from ..core.paths import sidecar_path


def make(spec, src, out, settings, calibration=None, reference=None):
    shutil.copyfile(src, out)
    meta = {"stage": "copy_variant", "variant": "copy", "model": spec.model, "component": spec.component,
            "created": now(), "onnx_sha256": sha256_file(out)}
    write_json(sidecar_path(out), meta)
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "copy_variant", make)
'''

NEW_ENTRY = """
VARIANTS["copy"] = Variant("copy", "fp32", "fp32", "copy_variant", "allclose", {"atol": 1e-4, "rtol": 1e-3},
                           ("onnxruntime",), "the fp32 graph copied (test)")
DERIVED = tuple(n for n, v in VARIANTS.items() if v.parent is not None)
"""


@pytest.mark.slow
def test_a_new_variant_is_one_table_entry_and_one_stage_module(workdir, tmp_path):
    """No rule, path, schema or registry edit: the copied package gets the entry and the module, and the
    workflow plans and runs the new variant's graph, its marker and its benchmark."""
    copy = repo_copy(tmp_path)
    (copy / "workflow_lib" / "stages" / "copy_variant.py").write_text(textwrap.dedent(NEW_STAGE))
    with open(copy / "workflow_lib" / "core" / "variants.py", "a") as f:
        f.write(NEW_ENTRY)
    snakefile = copy / "Snakefile"
    from conftest import seeded
    from safetensors.torch import save_file
    from tinymodels import TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(workdir / "w.safetensors"))
    write_config(
        workdir,
        {
            "variants": ["fp32", "copy"],
            "backends": ["pytorch", "onnxruntime"],
            "bench": {"warmup": 1, "min_iterations": 3, "max_seconds": 0.0, "threads": 1},
            "models": {"mine": {"components": {"net": tiny_byo_component(str(workdir / "w.safetensors"))}}},
        },
    )
    probed(workdir, snakefile=snakefile)
    jobs = planned_jobs(workdir, snakefile=snakefile)
    assert jobs["graph_variant"] == 2  # fp32 and copy
    assert jobs["validate_cpu"] == 2 and jobs["bench_component"] == 3  # ORT fp32 + copy; PyTorch fp32
    target = "results/bench/mine/net.onnxruntime.copy.csv"
    snakemake(workdir, target, snakefile=snakefile)
    assert (workdir / "results/onnx/copy/mine/net.onnx").read_bytes() == (
        workdir / "results/onnx/fp32/mine/net.onnx"
    ).read_bytes()
    assert '"status": "passed"' in (workdir / "results/validation/mine/net.onnxruntime.copy.json").read_text()
    assert "onnxruntime.copy@cpu" in (workdir / target).read_text()
