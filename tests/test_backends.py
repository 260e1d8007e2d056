"""The backend registry on a tiny real model: every backend runs or says why, OpenVINO parity,
torch.compile compiles once for every shape point and keeps that time out of the samples."""

import os

import numpy as np
import pytest
from conftest import FIVE_RUNS, export_tiny_conv

from workflow_lib.core import variants
from workflow_lib.core.errors import ConfigError
from workflow_lib.plan import config as plan
from workflow_lib.runtimes import registry
from workflow_lib.stages import bench, fp16, openvino_ir, validate


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny conv model exported, simplified (none), converted to fp16 and to OpenVINO IR."""
    d = tmp_path_factory.mktemp("backends")
    spec = export_tiny_conv(d)
    fp16.make(spec, variants.get("fp16"), d / "net.onnx", d / "net16.onnx")
    openvino_ir.convert(spec, d / "net.onnx", d / "net.fp32.xml", "fp32")
    files = {
        ("checkpoint", "fp32"): str(d / "w.safetensors"),
        ("checkpoint", "fp16"): str(d / "w.safetensors"),
        ("onnx", "fp32"): str(d / "net.onnx"),
        ("onnx", "fp16"): str(d / "net16.onnx"),
        ("openvino", "fp32"): str(d / "net.fp32.xml"),
        ("openvino", "bf16"): str(d / "net.fp32.xml"),
        ("engine", "fp32"): str(d / "net.fp32.engine"),
        ("engine", "fp16"): str(d / "net.fp16.engine"),
    }
    return spec, d, files


ALLCLOSE = [c for c in registry.series() if variants.get(c[1]).gate == "allclose"]
FIDELITY = [c for c in registry.series() if variants.get(c[1]).precision == "bf16"]


def _backend(artifacts, backend, variant):
    """The spec, the backend, its artifact of `variant`, and whether it can run here (and why not)."""
    spec, _, files = artifacts
    b = registry.get(backend)
    path = files.get((b.artifact.name, variant))
    return spec, b, path, *b.available(variant, path)


def _pytorch_fp32(spec):
    """Inputs at the max point, and PyTorch fp32's outputs on them: what every series is compared with."""
    feeds = spec.make_inputs(spec.point("max"))
    return feeds, registry.get("pytorch").open_runner(spec, "fp32", None, 1, "cpu")(feeds)


@pytest.mark.parametrize("backend, variant", ALLCLOSE)
def test_every_backend_runs_and_matches_pytorch_or_says_why(artifacts, backend, variant):
    """(INT8 and bf16 artifacts are judged by their fidelity gate: tests/test_quantize.py, below.)"""
    spec, b, path, ok, why = _backend(artifacts, backend, variant)
    if not ok:
        assert why and isinstance(why, str)
        meta_marker = {"status": "passed"}  # even a passed marker cannot make it run here
        with pytest.raises(registry.Unavailable):
            bench.benchmark(spec, backend, variant, FIVE_RUNS, path, meta_marker)
        return
    runner = b.open_runner(spec, variant, path, 1)
    feeds, ref = _pytorch_fp32(spec)
    got = runner(feeds)
    tol = spec.gate(variant)
    assert got[0].shape == ref[0].shape
    assert np.allclose(got[0], ref[0], atol=tol["atol"], rtol=tol["rtol"])


@pytest.mark.parametrize("backend, variant", FIDELITY)
def test_bf16_runs_where_the_cpu_has_it_natively_or_says_why(artifacts, backend, variant):
    """bf16 keeps ~8 bits of mantissa: the outputs stay within 30 dB SQNR of fp32 where it runs;
    on a CPU without AVX512-BF16 or AMX the backend refuses it with the missing flag named."""
    spec, b, path, ok, why = _backend(artifacts, backend, variant)
    if not ok:
        assert why and isinstance(why, str)
        return
    feeds, refs = _pytorch_fp32(spec)
    ref = refs[0]
    try:
        got = b.open_runner(spec, variant, path, 1)(feeds)[0]
    except registry.Unavailable as e:
        assert "bf16" in str(e) or "avx512" in str(e).lower()
        return
    sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((got - ref).astype(np.float64) ** 2))
    assert got.shape == ref.shape and sqnr > 30, sqnr


def test_bench_writes_no_rows_for_an_unvalidated_artifact(artifacts):
    """A marker that failed or was skipped keeps the backend out of the CSV, with its reason."""
    spec, d, files = artifacts
    for marker in ({"status": "failed", "reason": "max_abs 0.3"}, {"status": "skipped", "reason": "no GPU"}, None):
        with pytest.raises(registry.Unavailable, match="not validated here"):
            bench.benchmark(spec, "onnxruntime", "fp32", FIVE_RUNS, files[("onnx", "fp32")], marker)


def test_openvino_ir_matches_pytorch_at_three_shapes(artifacts):
    spec, d, files = artifacts
    marker = validate.validate(spec, "openvino", "fp32", files[("openvino", "fp32")])
    assert marker["status"] == "passed", marker.get("reason")
    shapes = {p: v["shapes"]["x"] for p, v in marker["parity"]["points"].items()}
    assert shapes == {"min": [1, 8, 4], "opt": [1, 8, 16], "max": [2, 8, 32]}
    assert marker["runner"]["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert (d / "net.fp32.bin").stat().st_size > 0 and (d / "net.fp32.xml.json").is_file()


def test_torch_compile_samples_exclude_compile_time(artifacts):
    spec, d, files = artifacts
    rows, samples, runners = bench.benchmark(spec, "torch_compile", "fp32", FIVE_RUNS, files[("checkpoint", "fp32")])
    record = runners["cpu"]
    assert record["parity"]["ok"] and set(record["parity"]["points"]) == {"min", "opt", "max"}
    compiles = record["runner"]["compiles"]
    assert compiles and record["runner"]["graphs"] >= 1 and record["runner"]["dynamic"]  # recompiles are counted
    assert record["runner"]["cache_dir"] == os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    assert set(record["runner"]["cache"]) == {"fxgraph_hit", "fxgraph_miss", "autograd_hit", "autograd_miss"}
    slowest_sample = max(max(v) for v in samples.values())
    assert slowest_sample < min(c["seconds"] for c in compiles) * 1e3 / 10  # compile is 10x+ any timed call
    assert [r["point"] for r in rows] == ["min", "opt", "max"] and all(r["iterations"] == 5 for r in rows)


def test_config_names_backends_from_the_registry():
    import yaml
    from conftest import REPO

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["models"]["svc_demo"]["chain"]["assignments"]["ov"] = {"default": "openvno.fp32"}
    with pytest.raises(ConfigError, match=r"assignments.ov.default: unknown backend 'openvno'"):
        plan.check(cfg, REPO / "config/schema.yaml")
    del cfg["models"]["svc_demo"]["chain"]["assignments"]["ov"]
    cfg["backends"] = ["onnxruntime"]
    with pytest.raises(ConfigError, match="must include pytorch"):
        plan.check(cfg, REPO / "config/schema.yaml")
