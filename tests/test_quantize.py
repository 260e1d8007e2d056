"""The int8 variant on small real models: real ONNX Runtime quantization, real calibration data, the
search for what must stay float, and the markers it leads to."""

import numpy as np
import onnx
import pytest
from conftest import export_tiny_conv, seeded, tiny_byo_component
from safetensors.torch import save_file

from workflow_lib.core import samples, variants
from workflow_lib.core.files import read_json
from workflow_lib.core.spec import component_spec
from workflow_lib.core.splits import DISJOINT, Splits
from workflow_lib.stages import calibration, export, quantize, simplify, validate


def _outlier_chain(tmp_path, gate):
    from tinymodels import OutlierChain

    seeded(0)
    save_file(OutlierChain().state_dict(), str(tmp_path / "w.safetensors"))
    cfg = tiny_byo_component(str(tmp_path / "w.safetensors"), gates={"int8": gate})
    cfg.update({"class": "tinymodels.OutlierChain", "kwargs": {}})
    spec = component_spec("mine", "outlier", cfg)
    export.export(spec, tmp_path / "e.onnx")
    simplify.make(spec, variants.get("fp32"), tmp_path / "e.onnx", tmp_path / "s.onnx", {"tool": "onnxsim"})
    rng = np.random.default_rng(0)
    names = tuple(f"{role}{i}.npz" for role in ("c", "s", "e") for i in range(2))
    roles = Splits(DISJOINT, names, {"calibration": (0, 1), "search": (2, 3), "evaluation": (4, 5)})
    samples.write_samples(
        tmp_path / "cal.npz",
        [{"x": rng.normal(size=(1, 8, 64)).astype(np.float32)} for _ in names],
        splits=roles,
        files=list(range(len(names))),
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
        spec,
        variants.get("int8"),
        tmp_path / "s.onnx",
        tmp_path / "q.onnx",
        {"search_seconds": 60},
        str(tmp_path / "cal.npz"),
    )
    search = meta["search"]
    first = search["candidates"][0]
    assert first["float_blocks"] == [] and first["verdict"] == "failed" and first["metrics"]["snr_db"] < 30
    assert meta["status"] == "passed" and meta["float_blocks"] == ["c"]
    assert search["contributions"][0][0] == "c"  # measured, not guessed: the outlier lives inside it
    chosen = search["candidates"][search["chosen"]]
    assert chosen["quantized_nodes"] == 3 and chosen["float_nodes"] == 2 and chosen["metrics"]["snr_db"] >= 30
    # judged on the search files, then confirmed on the evaluation files, each gate on the worst file
    assert chosen["search"]["files"] == 2 and chosen["search"]["gates"]["min_snr_db"]["file"] in ("s0.npz", "s1.npz")
    assert chosen["evaluation"]["status"] == "passed" and chosen["evaluation"]["files"] == 2
    assert chosen["evaluation"]["gates"]["min_snr_db"]["margin"] > 0
    # past the first pass: c back in INT8 is the first candidate again (failed), which is not built twice
    assert [c["float_blocks"] for c in search["candidates"]].count([]) == 1
    assert search["chosen"] in search["front"] and "tried back in INT8" in search["stopped"]
    assert meta["samples"] == {"calibration": 2, "search": 2, "evaluation": 2}
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert sum(n.op_type == "DequantizeLinear" for n in q.graph.node) > 0
    assert read_json(tmp_path / "q.onnx.json")["calibration_sha256"]


def test_a_gate_nothing_can_pass_ships_the_most_faithful_candidate_marked_failed(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = quantize.make(
        spec,
        variants.get("int8"),
        tmp_path / "s.onnx",
        tmp_path / "q.onnx",
        {"search_seconds": 60},
        str(tmp_path / "cal.npz"),
    )
    assert meta["status"] == "failed" and "snr_db" in meta["reason"]
    assert all(c["quantized_nodes"] >= 1 for c in meta["search"]["candidates"])  # never an all-float "int8"
    marker = validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz")
    assert marker["status"] == "failed" and "fidelity gate failed" in marker["reason"]
    assert marker["parity"]["points"]["max"]["ok"]  # it runs at every point of the profile; it is just not faithful


def test_the_search_stops_when_its_time_budget_is_spent(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = quantize.make(
        spec,
        variants.get("int8"),
        tmp_path / "s.onnx",
        tmp_path / "q.onnx",
        {"search_seconds": 0},
        str(tmp_path / "cal.npz"),
    )
    assert "time box of 0 s spent" in meta["search"]["stopped"] and len(meta["search"]["candidates"]) == 1


def test_int8_markers_judge_on_the_evaluation_files(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    quantize.make(
        spec,
        variants.get("int8"),
        tmp_path / "s.onnx",
        tmp_path / "q.onnx",
        {"search_seconds": 60},
        str(tmp_path / "cal.npz"),
    )
    for backend, artifact in (("onnxruntime", tmp_path / "q.onnx"),):
        marker = validate.validate(spec, backend, "int8", artifact, tmp_path / "cal.npz")
        assert marker["status"] == "passed" and marker["gate"] == "fidelity"
        assert marker["parity"]["samples"] == 2 and marker["parity"]["metrics"]["snr_db"] >= 30
        assert set(marker["parity"]["verdict"]["gates"]["min_snr_db"]) == {"worst", "file", "limit", "margin"}
    with pytest.raises(Exception, match="needs a sample set"):
        quantize.make(spec, variants.get("int8"), tmp_path / "s.onnx", tmp_path / "q2.onnx", {})


def test_calibration_from_arrays_and_from_generators(tmp_path):
    spec = export_tiny_conv(tmp_path)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(1, 8, 20)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=(2, 8, 12)).astype(np.float32))
    meta = calibration.make(spec, tmp_path / "c.npz", {"files": [str(tmp_path / "a.npz"), str(tmp_path / "b.npy")]})
    assert meta["representative"] and meta["samples"] == 2 and meta["shapes"] == [{"x": [1, 8, 20]}, {"x": [2, 8, 12]}]
    assert meta["splits"]["scheme"] == "leave_one_out"  # no search or evaluation files: each file held out in turn
    loaded = samples.read_samples(tmp_path / "c.npz")
    assert np.array_equal(loaded[1]["x"], np.load(tmp_path / "b.npy"))
    stored = samples.read_outputs(tmp_path / "c.npz")  # PyTorch's outputs on each sample, for later checks
    assert stored[samples.feeds_key(loaded[0])][0].shape == (1, 8, 20)
    meta = calibration.make(spec, tmp_path / "g.npz", {"samples": 3})
    assert not meta["representative"] and meta["samples"] == 9 and "generators" in meta["source"]
    assert meta["per_split"] == {"calibration": 3, "search": 3, "evaluation": 3}  # disjoint seeds per role
    calibration.make(spec, tmp_path / "g2.npz", {"samples": 3})
    assert (tmp_path / "g.npz").read_bytes() == (tmp_path / "g2.npz").read_bytes()  # same arrays, same bytes
    np.savez(tmp_path / "bad.npz", y=np.zeros((1, 8, 4), np.float32))
    with pytest.raises(
        Exception, match=r"calibration file .*bad.npz holds \['y'\], the component's inputs are \['x'\]"
    ):
        calibration.make(spec, tmp_path / "c2.npz", {"files": [str(tmp_path / "bad.npz")]})


def test_leave_one_out_judges_each_file_on_a_graph_calibrated_without_it(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    rng = np.random.default_rng(3)
    for i in range(3):
        np.savez(tmp_path / f"f{i}.npz", x=rng.normal(size=(1, 8, 64)).astype(np.float32))
    calibration.make(spec, tmp_path / "loo.npz", {"files": [str(tmp_path / f"f{i}.npz") for i in range(3)]})
    meta = quantize.make(
        spec,
        variants.get("int8"),
        tmp_path / "s.onnx",
        tmp_path / "q.onnx",
        {"search_seconds": 60},
        str(tmp_path / "loo.npz"),
    )
    chosen = meta["search"]["candidates"][meta["search"]["chosen"]]
    assert meta["splits"]["scheme"] == "leave_one_out" and meta["status"] == "passed"
    assert chosen["evaluation"]["scheme"] == "leave_one_out" and chosen["evaluation"]["files"] == 3  # one fold each


class _Blocks:
    """The block search's moves on fixture numbers: blocks a and b each add error; only both float pass."""

    def __init__(self, needed):
        self.groups = {b: [b] for b in "abcd"}
        self.needed = needed
        self.candidates = []

    def contribution(self, block):
        return {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}[block]

    def candidate(self, float_blocks, why):
        ok = self.needed <= set(float_blocks)
        c = {"index": len(self.candidates), "float_blocks": list(float_blocks), "verdict": "passed" if ok else "failed"}
        c["error"] = 4 - len(set(float_blocks) & self.needed)
        self.candidates.append(c)
        return c


def test_the_search_goes_on_past_the_first_pass_and_puts_blocks_back_into_int8():
    s = _Blocks(needed={"a", "c"})  # c matters more than its contribution alone says; b does not matter
    record = quantize.search(s, budget=60)
    tried = [(c["float_blocks"], c["verdict"]) for c in s.candidates]
    assert tried[:4] == [([], "failed"), (["a"], "failed"), (["a", "b"], "failed"), (["a", "b", "c"], "passed")]
    # past the first pass, least contribution first: c cannot go back, b can, a cannot
    assert tried[4:] == [(["a", "b"], "failed"), (["a", "c"], "passed"), (["c"], "failed")]
    assert "tried back in INT8" in record["stopped"]
