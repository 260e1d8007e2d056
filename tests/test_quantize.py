"""The int8 variant on small real models: real ONNX Runtime quantization, real calibration data, the
search for what must stay float, and the markers it leads to."""

import numpy as np
import onnx
import pytest
from conftest import export_tiny_conv, seeded, tiny_byo_component
from safetensors.torch import save_file

from workflow_lib.core import samples
from workflow_lib.core.files import read_json
from workflow_lib.core.spec import component_spec
from workflow_lib.stages import calibration, export, quantize, simplify, validate


def _outlier_chain(tmp_path, gate):
    from tinymodels import OutlierChain

    seeded(0)
    save_file(OutlierChain().state_dict(), str(tmp_path / "w.safetensors"))
    cfg = tiny_byo_component(str(tmp_path / "w.safetensors"), tolerance={"int8": gate})
    cfg.update({"class": "tinymodels.OutlierChain", "kwargs": {}})
    spec = component_spec("mine", "outlier", cfg)
    export.export(spec, tmp_path / "e.onnx")
    simplify.make(spec, tmp_path / "e.onnx", tmp_path / "s.onnx", {"tool": "onnxsim"})
    rng = np.random.default_rng(0)
    samples.write_samples(
        tmp_path / "cal.npz", [{"x": rng.normal(size=(1, 8, 64)).astype(np.float32)} for _ in range(4)]
    )
    return spec


def test_blocks_come_from_the_modules_the_exporter_recorded(tmp_path):
    _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    model = onnx.load(str(tmp_path / "s.onnx"))  # simplified: metadata restored from the export
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert quantize.blocks(model, convs) == {"a": [convs[0]], "b": [convs[1]], "c": convs[2:4], "d": [convs[4]]}


def test_naive_int8_fails_and_the_search_keeps_exactly_the_sensitive_block_float(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    meta = quantize.make(
        spec, tmp_path / "s.onnx", tmp_path / "q.onnx", {"search_seconds": 60}, str(tmp_path / "cal.npz")
    )
    search = meta["search"]
    first = search["candidates"][0]
    assert first["float_blocks"] == [] and first["verdict"] == "failed" and first["metrics"]["snr_db"] < 30
    assert meta["status"] == "passed" and meta["float_blocks"] == ["c"]
    assert search["contributions"][0][0] == "c"  # measured, not guessed: the outlier lives inside it
    chosen = search["candidates"][search["chosen"]]
    assert chosen["quantized_nodes"] == 3 and chosen["float_nodes"] == 2 and chosen["metrics"]["snr_db"] >= 30
    assert search["chosen"] in search["pareto"] and search["stopped"] == "gate passed"
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert sum(n.op_type == "DequantizeLinear" for n in q.graph.node) > 0
    assert read_json(tmp_path / "q.onnx.json")["calibration_sha256"]


def test_a_gate_nothing_can_pass_ships_the_most_faithful_candidate_marked_failed(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = quantize.make(
        spec, tmp_path / "s.onnx", tmp_path / "q.onnx", {"search_seconds": 60}, str(tmp_path / "cal.npz")
    )
    assert meta["status"] == "failed" and "snr_db" in meta["reason"]
    assert all(c["quantized_nodes"] >= 1 for c in meta["search"]["candidates"])  # never an all-float "int8"
    marker = validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz")
    assert marker["status"] == "failed" and "fidelity gate failed" in marker["reason"]
    assert marker["parity"]["points"]["max"]["ok"]  # it runs at every point of the profile; it is just not faithful


def test_the_search_stops_when_its_time_budget_is_spent(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = quantize.make(
        spec, tmp_path / "s.onnx", tmp_path / "q.onnx", {"search_seconds": 0}, str(tmp_path / "cal.npz")
    )
    assert meta["search"]["budget_exhausted"] and "time budget" in meta["search"]["stopped"]


def test_int8_markers_judge_on_calibration_samples(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    quantize.make(spec, tmp_path / "s.onnx", tmp_path / "q.onnx", {"search_seconds": 60}, str(tmp_path / "cal.npz"))
    for backend, artifact in (("onnxruntime", tmp_path / "q.onnx"),):
        marker = validate.validate(spec, backend, "int8", artifact, tmp_path / "cal.npz")
        assert marker["status"] == "passed" and marker["gate"] == "fidelity"
        assert marker["parity"]["samples"] == 4 and marker["parity"]["metrics"]["snr_db"] >= 30
    with pytest.raises(Exception, match="calibration set"):
        quantize.make(spec, tmp_path / "s.onnx", tmp_path / "q2.onnx", {})


def test_calibration_from_arrays_and_from_generators(tmp_path):
    spec = export_tiny_conv(tmp_path)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(1, 8, 20)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=(2, 8, 12)).astype(np.float32))
    meta = calibration.make(spec, tmp_path / "c.npz", {"files": [str(tmp_path / "a.npz"), str(tmp_path / "b.npy")]})
    assert meta["representative"] and meta["samples"] == 2 and meta["shapes"] == [{"x": [1, 8, 20]}, {"x": [2, 8, 12]}]
    loaded = samples.read_samples(tmp_path / "c.npz")
    assert np.array_equal(loaded[1]["x"], np.load(tmp_path / "b.npy"))
    stored = samples.read_outputs(tmp_path / "c.npz")  # PyTorch's outputs on each sample, for later checks
    assert stored[samples.feeds_key(loaded[0])][0].shape == (1, 8, 20)
    meta = calibration.make(spec, tmp_path / "g.npz", {"samples": 3})
    assert not meta["representative"] and meta["samples"] == 3 and "generators" in meta["source"]
    calibration.make(spec, tmp_path / "g2.npz", {"samples": 3})
    assert (tmp_path / "g.npz").read_bytes() == (tmp_path / "g2.npz").read_bytes()  # same arrays, same bytes
    np.savez(tmp_path / "bad.npz", y=np.zeros((1, 8, 4), np.float32))
    with pytest.raises(
        Exception, match=r"calibration file .*bad.npz holds \['y'\], the component's inputs are \['x'\]"
    ):
        calibration.make(spec, tmp_path / "c2.npz", {"files": [str(tmp_path / "bad.npz")]})
