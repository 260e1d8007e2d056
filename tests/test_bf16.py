"""bf16, the host's arithmetic: measured only where the CPU has it natively (said where not), the nodes that
break in it found by measurement and kept f32 by OpenVINO, and a bundle that refuses a CPU without it."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from workflow_lib.deployment.runner import check_cpu
from workflow_lib.graphs import bf16
from workflow_lib.jobs import host
from workflow_lib.runtimes import ov
from workflow_lib.stages import probe

NATIVE, WHY = host.native("bf16")
needs_bf16 = pytest.mark.skipif(not NATIVE, reason=f"this CPU runs no bf16 natively: {WHY}")


@pytest.mark.parametrize(
    "features, runs",
    [(["avx2", "fma"], False), (["avx512f", "avx512_bf16"], True), (["amx_tile", "amx_bf16"], True)],
)
def test_bf16_is_planned_on_the_cpu_only_where_it_is_native(features, runs):
    record = probe.probe({}, ["pytorch", "openvino"], ["fp32", "bf16"], features)
    for backend in ("pytorch", "openvino"):
        bf = record["runs"][f"{backend}.bf16"]
        assert ("cpu" in bf["devices"]) == runs
        if not runs:
            assert "avx512_bf16" in bf["reason"] and "amx_bf16" in bf["reason"]  # what would make it run
        assert "cpu" in record["runs"][f"{backend}.fp32"]["devices"]  # fp32 runs everywhere
    assert record["native"] == {"bf16": runs} and record["cpu_features"] == features


def _quantizer(path):
    """f0 -> bin index -> embedding, the pitch encoder's shape: Log, Div and Floor break in bf16 (a bin moves),
    the MatMul after it does not care."""
    lo, step = np.log(80.0), (np.log(1000.0) - np.log(80.0)) / 255
    emb = np.random.default_rng(0).standard_normal((256, 32)).astype(np.float32)
    nodes = [
        helper.make_node("Log", ["f0"], ["logf"], name="log"),
        helper.make_node("Sub", ["logf", "lo"], ["shifted"], name="sub"),
        helper.make_node("Div", ["shifted", "step"], ["scaled"], name="div"),
        helper.make_node("Floor", ["scaled"], ["floored"], name="floor"),
        helper.make_node("Cast", ["floored"], ["index"], to=TensorProto.INT64, name="cast"),
        helper.make_node("Gather", ["emb", "index"], ["looked"], name="gather"),
        helper.make_node("MatMul", ["looked", "w"], ["y"], name="matmul"),
    ]
    inits = [
        helper.make_tensor("lo", TensorProto.FLOAT, [], [lo]),
        helper.make_tensor("step", TensorProto.FLOAT, [], [step]),
        onnx.numpy_helper.from_array(emb, "emb"),
        onnx.numpy_helper.from_array(np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32), "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "quantizer",
        [helper.make_tensor_value_info("f0", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return model


@needs_bf16
def test_openvino_keeps_the_marked_nodes_f32_under_the_bf16_hint(tmp_path):
    model = _quantizer(tmp_path / "q.onnx")
    f0 = {"f0": np.random.default_rng(2).uniform(80, 1000, 4096).astype(np.float32)}
    reference = ov.OpenVinoRunner(_ir(tmp_path, model, [], "ref"), 1, "fp32")(f0)[0]
    plain = ov.OpenVinoRunner(_ir(tmp_path, model, [], "plain"), 1, "bf16")
    marked = ov.OpenVinoRunner(_ir(tmp_path, model, ["Log", "Sub", "Div", "Floor"], "marked"), 1, "bf16")
    seen = ov.precisions(marked.compiled)
    assert seen["y"] == "bf16"  # the MatMul does run in bf16 here
    # the marks held through conversion and compilation, on the nodes OpenVINO rewrote (x - a) / b into too
    assert all(v == "f32" for k, v in seen.items() if k.startswith("Multiply_") and "_bf16_" not in k)

    def moved(runner):
        return float(np.mean(np.any(np.abs(runner(f0)[0] - reference) > 0.5, axis=1)))

    assert moved(plain) > 0.01 and moved(marked) == 0.0  # bins move in bf16; none where marked


def _ir(tmp_path, model, op_types, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(bf16.mark(model, op_types), path)
    xml = tmp_path / f"{name}.xml"
    ov.write_ir(path, xml, [n.name for n in bf16.marked(bf16.mark(model, op_types))])
    return str(xml)


def test_a_bundle_that_ships_bf16_refuses_a_cpu_without_it_by_name():
    manifest = {"requires": {"vocoder (openvino.bf16)": ["amx_bf16", "avx512_bf16"]}}
    problems = check_cpu(manifest, ["avx2", "fma"])
    assert len(problems) == 1 and "vocoder (openvino.bf16) needs one of amx_bf16, avx512_bf16" in problems[0]
    assert check_cpu(manifest, ["avx512_bf16"]) == [] and check_cpu({}, []) == []
