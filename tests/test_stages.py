"""Export, simplify, fp16 and validation stages on small real models (real exporter, ORT, converter)."""

import onnx
import pytest
from conftest import seeded, tiny_byo_component
from safetensors.torch import save_file

from workflow_lib.core import variants
from workflow_lib.core.errors import ParityError
from workflow_lib.core.files import read_json
from workflow_lib.core.spec import component_spec
from workflow_lib.stages import export, fp16, simplify, validate


def _mha_spec(tmp_path, exporter):
    seeded(0)
    from tinymodels import TorchMHA

    save_file(TorchMHA().state_dict(), str(tmp_path / "mha.safetensors"))
    cfg = tiny_byo_component(str(tmp_path / "mha.safetensors"), exporter=exporter)
    cfg.update(
        {
            "class": "tinymodels.TorchMHA",
            "kwargs": {"dim": 16, "heads": 2},
            "inputs": [{"name": "x", "shape": ["batch", "time", 16]}],
        }
    )
    return component_spec("mine", "attn", cfg)


def test_legacy_exporter_attention_trap_is_caught(tmp_path):
    out = tmp_path / "attn.onnx"
    with pytest.raises(
        ParityError, match=r"mine/attn fp32 parity failed for legacy export at min point \{'x': \[1, 4, 16\]\}"
    ):
        export.export(_mha_spec(tmp_path, "legacy"), out)
    assert not out.exists() and not list(tmp_path.glob(".attn.onnx*"))


def test_dynamo_export_of_the_same_module_passes_everywhere(tmp_path):
    meta = export.export(_mha_spec(tmp_path, "dynamo"), tmp_path / "attn.onnx")
    assert meta["parity"]["ok"] and set(meta["parity"]["points"]) == {"min", "opt", "max"}
    assert meta["graph"]["inputs"][0]["shape"][1] not in (4, 16, 32)  # symbolic, not baked in
    side = read_json(tmp_path / "attn.onnx.json")
    assert side["checkpoint_sha256"] and side["versions"]["torch"].startswith("2.13") and side["opset"] == 20
    keys = {p.key for n in onnx.load(str(tmp_path / "attn.onnx")).graph.node for p in n.metadata_props}
    assert "pkg.torch.onnx.name_scopes" in keys  # which module each node came from, for the INT8 search
    assert "pkg.torch.onnx.stack_trace" not in keys  # absolute paths of this checkout: not in the graph


@pytest.fixture
def byo(tmp_path):
    seeded(0)
    from tinymodels import TinyConv

    save_file(TinyConv().state_dict(), str(tmp_path / "w.safetensors"))
    spec = component_spec("mine", "net", tiny_byo_component(str(tmp_path / "w.safetensors")))
    export.export(spec, tmp_path / "net.onnx")
    return spec, tmp_path


def test_simplify_keeps_parity(byo):
    spec, d = byo
    meta = simplify.make(spec, variants.get("fp32"), d / "net.onnx", d / "sim.onnx", {"tool": "onnxslim"})
    assert meta["simplified"] and meta["parity"]["ok"] and meta["fallback_reason"] is None
    assert meta["metadata_restored"] > 0


def test_simplifier_breaking_parity_falls_back_to_input_graph(byo):
    """The graph handed in was exported from other weights: the simplified graph cannot match
    PyTorch, so the stage must ship the input bytes unchanged and say why."""
    spec, d = byo
    seeded(1)
    from tinymodels import TinyConv

    save_file(TinyConv().state_dict(), str(d / "w.safetensors"))  # weights changed after export
    meta = simplify.make(spec, variants.get("fp32"), d / "net.onnx", d / "sim.onnx", {"tool": "onnxsim"})
    assert not meta["simplified"]
    assert "parity failed for onnxsim-simplified graph at min point" in meta["fallback_reason"]
    assert (d / "sim.onnx").read_bytes() == (d / "net.onnx").read_bytes()


def test_simplify_disabled_copies_graph(byo):
    spec, d = byo
    meta = simplify.make(spec, variants.get("fp32"), d / "net.onnx", d / "sim.onnx", {"tool": "none"})
    assert meta["fallback_reason"] == "simplification disabled (simplify.tool: none)"


def test_fp16_keeps_io_types_and_fp32_ops_chain(tmp_path):
    """The f0 quantizer stays exact: configured fp32 ops do not round through fp16 between them."""
    from workflow_lib.models.svc.modules import PitchEncoder

    seeded(0)
    save_file(PitchEncoder(dim=16).state_dict(), str(tmp_path / "p.safetensors"))
    cfg = {
        "class": "workflow_lib.models.svc.modules.PitchEncoder",
        "kwargs": {"dim": 16},
        "checkpoint": str(tmp_path / "p.safetensors"),
        "inputs": [
            {"name": "f0", "shape": ["batch", "time"], "generator": {"kind": "uniform", "low": 80, "high": 1000}},
            {"name": "voiced", "shape": ["batch", "time"], "generator": {"kind": "ones"}},
        ],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "time": {"min": 64, "opt": 256, "max": 1024}},
        "fp32_ops": ["Log", "Clip", "Sub", "Div", "Mul", "Add", "Floor", "Gather"],
        "gates": {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"atol": 1e-2, "rtol": 1e-2}},
    }
    spec = component_spec("svc", "pitch", cfg)
    export.export(spec, tmp_path / "p.onnx")
    meta = fp16.make(spec, variants.get("fp16"), tmp_path / "p.onnx", tmp_path / "p16.onnx")
    assert meta["fp16_round_trips_removed"] > 0 and meta["parity"]["ok"]
    model = onnx.load(str(tmp_path / "p16.onnx"))
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.FLOAT}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


def test_onnxruntime_marker_passes_and_records_numbers(byo):
    spec, d = byo
    marker = validate.validate(spec, "onnxruntime", "fp32", d / "net.onnx")
    assert marker["status"] == "passed" and marker["gate"] == "allclose"
    assert marker["thresholds"] == {"atol": 1e-4, "rtol": 1e-3} and marker["artifact_sha256"]
    assert {p: v["dims"]["time"] for p, v in marker["parity"]["points"].items()} == {"min": 4, "opt": 16, "max": 32}
    assert marker["parity"]["points"]["max"]["outputs"]["y"]["max_abs"] < 1e-4


def test_fp16_overflow_is_fixed_by_the_automatic_fp32_search(tmp_path):
    """No fp32_ops configured: the plain fp16 graph fails (values and a constant beyond fp16's range);
    the search keeps only what must stay fp32 (Mul/Div), the Conv stays fp16."""
    from tinymodels import Overflow

    seeded(0)
    save_file(Overflow().state_dict(), str(tmp_path / "o.safetensors"))
    cfg = tiny_byo_component(str(tmp_path / "o.safetensors"))
    cfg.update({"class": "tinymodels.Overflow", "kwargs": {}})
    spec = component_spec("mine", "overflow", cfg)
    export.export(spec, tmp_path / "o.onnx")
    meta = fp16.make(spec, variants.get("fp16"), tmp_path / "o.onnx", tmp_path / "o16.onnx")
    search = meta["search"]
    assert "fp16 parity failed for fp16 graph at min point" in search["first_failure"]
    assert search["auto_fp32_ops"] and set(search["auto_fp32_ops"]) <= {"Mul", "Div"} and meta["parity"]["ok"]
    assert search["trials"][0]["ok"] and search["seconds"] > 0 and 0 < meta["nodes_fp32"] < meta["nodes"]
    # the round trips counted are those of the graph that shipped, removed once
    assert (
        meta["fp16_round_trips_removed"]
        == fp16._convert(onnx.load(str(tmp_path / "o.onnx")), set(search["auto_fp32_ops"]))[1]
    )
    model = onnx.load(str(tmp_path / "o16.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)  # the conv still runs fp16
    assert validate.validate(spec, "onnxruntime", "fp16", tmp_path / "o16.onnx")["status"] == "passed"
