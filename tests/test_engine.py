"""Real TensorRT(-RTX) builds on tiny graphs: cache behaviour, concurrency, parse errors, runtime skips."""

import multiprocessing as mp

import onnx
import pytest
from conftest import has_runnable_gpu, seeded, tiny_byo_component
from onnx import TensorProto, helper
from safetensors.torch import save_file

from workflow_lib.core import paths, variants
from workflow_lib.core.files import read_json
from workflow_lib.core.spec import component_spec
from workflow_lib.runtimes import tensorrt_engines as trt
from workflow_lib.stages import engine, export, validate

TRT_CFG = {"flavour": "auto", "workspace_mb": 256, "optimization_level": 0, "compute_capabilities": ["SM86"]}


def _write_weights(path, seed):
    seeded(seed)
    from tinymodels import TinyConv

    save_file(TinyConv().state_dict(), str(path))


@pytest.fixture
def exported(tmp_path):
    _write_weights(tmp_path / "w.safetensors", 0)
    spec = component_spec("mine", "net", tiny_byo_component(str(tmp_path / "w.safetensors")))
    export.export(spec, tmp_path / "net.onnx")
    return spec, tmp_path, {**TRT_CFG, "cache_dir": str(tmp_path / "cache")}


def test_build_records_what_made_the_engine(exported):
    spec, d, cfg = exported
    meta = engine.build_engine(spec, d / "net.onnx", d / "e" / "net.fp32.engine", "fp32", cfg)
    side = read_json(d / "e" / "net.fp32.engine.json")
    assert side == meta and not meta["cache"]["hit"]
    assert meta["flavour"] in trt.FLAVOURS and meta["flavour_version"]
    assert meta["engine_bytes"] == (d / "e" / "net.fp32.engine").stat().st_size > 0
    assert meta["io"]["inputs"][0]["profile"] == {"min": [1, 8, 4], "opt": [1, 8, 16], "max": [2, 8, 32]}
    assert meta["onnx_sha256"] == read_json(d / "net.onnx.json")["onnx_sha256"]


def test_touched_unchanged_checkpoint_hits_cache_and_changed_weights_miss(exported):
    spec, d, cfg = exported
    first = engine.build_engine(spec, d / "net.onnx", d / "a.engine", "fp32", cfg)
    (d / "w.safetensors").touch()
    export.export(spec, d / "net.onnx")  # re-export of the same weights: same bytes
    again = engine.build_engine(spec, d / "net.onnx", d / "b.engine", "fp32", cfg)
    assert again["cache"]["hit"] and again["cache"]["key"] == first["cache"]["key"]
    assert (d / "a.engine").read_bytes() == (d / "b.engine").read_bytes()
    _write_weights(d / "w.safetensors", 1)
    export.export(spec, d / "net.onnx")
    changed = engine.build_engine(spec, d / "net.onnx", d / "c.engine", "fp32", cfg)
    assert not changed["cache"]["hit"] and changed["cache"]["key"] != first["cache"]["key"]
    other_settings = engine.build_engine(spec, d / "net.onnx", d / "d.engine", "fp32", {**cfg, "workspace_mb": 128})
    assert not other_settings["cache"]["hit"]


def _race(args):
    spec_json, onnx_path, out, cfg = args
    from workflow_lib.core.spec import spec_from_json

    return engine.build_engine(spec_from_json(spec_json), onnx_path, out, "fp32", cfg)["cache"]["hit"]


def test_concurrent_builders_share_one_cache_entry(exported):
    spec, d, cfg = exported
    jobs = [(spec.to_json(), str(d / "net.onnx"), str(d / f"race{i}.engine"), cfg) for i in range(3)]
    with mp.get_context("spawn").Pool(3) as pool:
        hits = pool.map(_race, jobs)
    assert sorted(hits) == [False, True, True]  # one built, the others waited and reused it
    plans = {(d / f"race{i}.engine").read_bytes() for i in range(3)}
    assert len(plans) == 1
    entries = sorted(p.name.split(".", 1)[1] for p in (d / "cache").iterdir())
    assert entries == ["engine", "json", "lock"]  # no temp files left behind


def test_parse_failure_names_the_op(tmp_path):
    node = helper.make_node("Frobnicate", ["x"], ["y"], name="frob_1", domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    spec = component_spec(
        "mine", "bad", {**tiny_byo_component("w.safetensors"), "inputs": [{"name": "x", "shape": ["batch", 4]}]}
    )
    with pytest.raises(trt.TrtError, match=r"could not parse .*bad.onnx: .*Frobnicate.*frob_1"):
        trt.build(trt.load("auto"), str(tmp_path / "bad.onnx"), {"x": [(1, 4), (1, 4), (2, 4)]}, 256, 0, ["SM86"])
    # the stage records a refused graph as a result, with the parser's words, instead of failing the run
    meta = engine.build_engine(
        spec, tmp_path / "bad.onnx", tmp_path / "bad.engine", "fp32", {**TRT_CFG, "cache_dir": str(tmp_path / "cache")}
    )
    assert meta["built"] is False and "Frobnicate" in meta["reason"] and "frob_1" in meta["reason"]
    assert read_json(tmp_path / "bad.engine.json")["reason"] == meta["reason"]


@pytest.mark.parametrize(
    "cfg, expected",
    [
        ({"tensorrt": {"engine_dir": "/fast/engines"}, "paths": {"engines": "/slow"}}, "/fast/engines"),
        ({"tensorrt": {"engine_dir": None}, "paths": {"engines": "/slow"}}, "/slow"),
        ({"tensorrt": {}, "paths": {"engines": None}}, "results/engines"),
        ({}, "results/engines"),
    ],
)
def test_engine_dir_fallback_chain(cfg, expected):
    assert paths.engine_dir(cfg) == expected


def test_tensorrt_marker_is_skipped_with_reason_where_engines_cannot_run(exported):
    spec, d, cfg = exported
    engine.build_engine(spec, d / "net.onnx", d / "net.fp32.engine", "fp32", cfg)
    can_run, why = has_runnable_gpu()
    if can_run:
        pytest.skip(f"this host can run engines ({why}); covered by the GPU test")
    marker = validate.validate(spec, "tensorrt", "fp32", d / "net.fp32.engine")
    assert marker["status"] == "skipped" and marker["reason"] == why and "parity" not in marker


@pytest.mark.gpu
def test_engine_matches_pytorch_on_gpu(exported):
    can_run, why = has_runnable_gpu()
    if not can_run:
        pytest.skip(f"engines cannot run here: {why}")
    spec, d, cfg = exported
    import torch as _t

    major, minor = _t.cuda.get_device_capability()
    cfg = {**cfg, "compute_capabilities": [f"SM{major}{minor}"]}
    engine.build_engine(spec, d / "net.onnx", d / "net.fp32.engine", "fp32", cfg)
    marker = validate.validate(spec, "tensorrt", "fp32", d / "net.fp32.engine")
    assert marker["status"] == "passed", marker.get("reason")


def test_an_int8_graph_the_builder_refuses_is_recorded_not_crashed(exported):
    """ONNX Runtime's default QDQ graph (u8 asymmetric activations, int32 biases) is not what TensorRT's explicit
    quantization takes: the engine is not built, its sidecar says why in the parser's words, and the backend
    gives that as the reason it cannot run."""
    import numpy as np

    from workflow_lib.core import samples
    from workflow_lib.runtimes import registry
    from workflow_lib.stages import quantize

    spec, d, cfg = exported
    rng = np.random.default_rng(0)
    samples.write_samples(d / "cal.npz", [{"x": rng.normal(size=(1, 8, 16)).astype(np.float32)} for _ in range(2)])
    quantize.make(spec, variants.get("int8"), d / "net.onnx", d / "q.onnx", {"max_candidates": 1}, str(d / "cal.npz"))
    meta = engine.build_engine(spec, d / "q.onnx", d / "net.int8.engine", "int8", cfg)
    assert meta["built"] is False and meta["settings"]["precision"] == "int8"
    assert "could not parse" in meta["reason"] and "DequantizeLinear" in meta["reason"]
    assert (d / "net.int8.engine").stat().st_size == 0
    ok, why = registry.get("tensorrt").available("int8", str(d / "net.int8.engine"))
    assert not ok and why.startswith("the int8 engine was not built") and "DequantizeLinear" in why


def test_a_symmetric_int8_graph_builds_an_int8_engine(exported):
    """With `quantize.activation: int8` (symmetric activations, float biases) the QDQ graph is what explicit
    quantization takes: the builder makes an engine from it, on this CPU-only host for TensorRT-RTX."""
    import numpy as np

    from workflow_lib.core import samples
    from workflow_lib.stages import quantize

    spec, d, cfg = exported
    rng = np.random.default_rng(0)
    samples.write_samples(d / "cal.npz", [{"x": rng.normal(size=(1, 8, 16)).astype(np.float32)} for _ in range(2)])
    quantize.make(
        spec,
        variants.get("int8"),
        d / "net.onnx",
        d / "q.onnx",
        {"max_candidates": 1, "activation": "int8"},
        str(d / "cal.npz"),
    )
    q = onnx.load(str(d / "q.onnx"))
    assert {n.op_type for n in q.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    meta = engine.build_engine(spec, d / "q.onnx", d / "net.int8.engine", "int8", cfg)
    assert meta["built"] is True, meta.get("reason")
    assert meta["settings"]["precision"] == "int8" and (d / "net.int8.engine").stat().st_size > 0
