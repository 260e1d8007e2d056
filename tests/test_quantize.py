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


def _quantize(tmp_path, spec, settings, samples="cal.npz"):
    """The int8 stage on the simplified graph s.onnx and a sample set in tmp_path, writing q.onnx."""
    return quantize.make(
        spec, variants.get("int8"), tmp_path / "s.onnx", tmp_path / "q.onnx", settings, str(tmp_path / samples)
    )


WITHOUT_EQUALIZATION = ["bias_correction", "single_nodes", "percentile"]


def test_naive_int8_fails_and_the_search_keeps_exactly_the_sensitive_block_float(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    # without equalization, which would rescue c (a later test)
    meta = _quantize(tmp_path, spec, {"search_seconds": 60, "recovery": WITHOUT_EQUALIZATION})
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
    # bias correction was tried on the whole graph first, kept only if it raised the worst file's score
    tried = search["techniques"][0]
    assert tried["technique"] == "bias_correction" and tried["kept"] == (tried["score_after"] > tried["score_before"])
    # past the first pass each of c's two convs went back into INT8 alone, and failed: c stays float
    singles = [c for c in search["candidates"] if c["technique"] == "single_nodes"]
    assert sorted(len(c["float_node_names"]) for c in singles) == [1, 1] and all(
        c["verdict"] == "failed" for c in singles
    )
    recipes = [(c["float_node_names"], c["transforms"], c["percentile_nodes"]) for c in search["candidates"]]
    assert len(recipes) == len({repr(r) for r in recipes})  # nothing built twice
    assert search["chosen"] in search["front"] and "tried back in INT8" in search["stopped"]
    assert search["search_s"] <= 60 and meta["float_nodes"] == chosen["float_node_names"]
    assert meta["samples"] == {"calibration": 2, "search": 2, "evaluation": 2}
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert sum(n.op_type == "DequantizeLinear" for n in q.graph.node) > 0
    assert read_json(tmp_path / "q.onnx.json")["calibration_sha256"]


def test_a_gate_nothing_can_pass_ships_the_most_faithful_candidate_marked_failed(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = _quantize(tmp_path, spec, {"search_seconds": 60, "recovery": ["bias_correction"]})
    assert meta["status"] == "failed" and "snr_db" in meta["reason"]
    assert all(c["quantized_nodes"] >= 1 for c in meta["search"]["candidates"])  # never an all-float "int8"
    marker = validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz")
    assert marker["status"] == "failed" and "fidelity gate failed" in marker["reason"]
    assert marker["parity"]["points"]["max"]["ok"]  # it runs at every point of the profile; it is just not faithful


def test_the_search_stops_when_its_time_budget_is_spent(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = _quantize(tmp_path, spec, {"search_seconds": 0})
    assert "time box of 0 s spent" in meta["search"]["stopped"] and len(meta["search"]["candidates"]) == 1


def test_int8_markers_judge_on_the_evaluation_files(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    _quantize(tmp_path, spec, {"search_seconds": 60, "recovery": WITHOUT_EQUALIZATION})
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
    meta = _quantize(tmp_path, spec, {"search_seconds": 60}, "loo.npz")
    chosen = meta["search"]["candidates"][meta["search"]["chosen"]]
    assert meta["splits"]["scheme"] == "leave_one_out" and meta["status"] == "passed"
    assert chosen["evaluation"]["scheme"] == "leave_one_out" and chosen["evaluation"]["files"] == 3  # one fold each


def test_equalization_rescues_the_outlier_channel_and_all_of_it_stays_int8(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    meta = _quantize(tmp_path, spec, {"search_seconds": 60})
    search = meta["search"]
    assert meta["status"] == "passed" and meta["float_nodes"] == [] and meta["transforms"] == ["equalization"]
    kept = search["techniques"][0]
    assert kept["technique"] == "equalization" and kept["kept"] and kept["score_after"] > kept["score_before"]
    assert search["stopped"] == "passed with every node quantized after equalization"
    c_pair = next(p for p in search["transforms_applied"]["equalization"] if p["range_spread_before"] > 100)
    assert c_pair["range_spread_after"] < c_pair["range_spread_before"] / 100  # the 1000x channel evened out


def _ort(model, feeds):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _leaky_pair():
    """Conv -> LeakyRelu -> Conv with badly spread per-channel weight ranges, as an ONNX graph."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = (rng.normal(size=(6, 4, 3)) * np.geomspace(0.01, 20, 6).reshape(6, 1, 1)).astype(np.float32)
    w2 = rng.normal(size=(5, 6, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name="c1", pads=[1, 1]),
        helper.make_node("LeakyRelu", ["h"], ["a"], name="act", alpha=0.1),
        helper.make_node("Conv", ["a", "w2", "b2"], ["y"], name="c2", pads=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "pair",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 32])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5, 32])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), rng


def test_equalization_does_not_change_the_float_function_and_evens_the_ranges():
    from workflow_lib.runtimes import int8_recovery

    model, rng = _leaky_pair()
    x = {"x": rng.normal(size=(1, 4, 32)).astype(np.float32)}
    equalized, done = int8_recovery.equalize(model)
    before, after = _ort(model, x), _ort(equalized, x)
    assert np.max(np.abs(after - before)) <= 1e-5 * np.max(np.abs(before))  # float noise only
    assert len(done) == 1 and done[0]["range_spread_after"] < done[0]["range_spread_before"] / 10


def test_bias_correction_removes_the_mean_shift_weight_rounding_adds():
    from onnx import numpy_helper

    from workflow_lib.runtimes import int8_recovery

    model, rng = _leaky_pair()
    feeds = [{"x": (rng.normal(size=(1, 4, 32)) + 3.0).astype(np.float32)} for _ in range(4)]  # inputs with a mean
    means = int8_recovery.channel_means(model, ["x", "a"], feeds)
    corrected, done = int8_recovery.bias_correct(model, means, ["c1", "c2"], reduce_range=True)
    assert [d["node"] for d in done] == ["c1", "c2"]

    def rounded(m):  # the graph as INT8 weights compute it (7-bit weights: a bigger shift to remove)
        m = onnx.ModelProto.FromString(m.SerializeToString())
        for init in m.graph.initializer:
            if init.name in ("w1", "w2"):
                w = numpy_helper.to_array(init)
                init.CopyFrom(
                    numpy_helper.from_array(int8_recovery.quantized_weight(w, True).astype(np.float32), init.name)
                )
        return m

    reference = np.mean([_ort(model, f) for f in feeds], axis=(0, 1, 3))
    plain = np.mean([_ort(rounded(model), f) for f in feeds], axis=(0, 1, 3))
    fixed = np.mean([_ort(rounded(corrected), f) for f in feeds], axis=(0, 1, 3))
    assert np.abs(fixed - reference).mean() < 0.5 * np.abs(plain - reference).mean()


def test_percentile_ranges_reach_the_quantized_graph_for_the_chosen_tensors_only(tmp_path):
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantFormat, quantize_static

    from workflow_lib.runtimes import int8_recovery

    model, rng = _leaky_pair()
    onnx.save(model, str(tmp_path / "m.onnx"))
    tensors = int8_recovery.node_tensors(model, ["c2"])
    assert tensors == {"a", "y"}  # what c2 reads and writes, not its weights
    ranges = {
        "a": {"lowest": -0.5, "highest": 2.0},
        "y": {"lowest": -1.0, "highest": 1.0},
        "h": {"lowest": -9, "highest": 9},
    }
    overrides = int8_recovery.percentile_overrides(ranges, tensors)

    class Reader:
        def __init__(self):
            self.it = iter([{"x": rng.normal(size=(1, 4, 32)).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(tmp_path / "m.onnx"),
        str(tmp_path / "q.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        extra_options={"TensorQuantOverrides": overrides},
    )
    q = onnx.load(str(tmp_path / "q.onnx"))
    scales = {
        i.name: float(numpy_helper.to_array(i)) for i in q.graph.initializer if i.name.endswith("_scale") and not i.dims
    }
    assert scales["a_scale"] == pytest.approx(2.5 / 255, rel=1e-5)  # the override's range, not MinMax's
    assert scales["h_scale"] != pytest.approx(18 / 255, rel=1e-3)  # a tensor not asked for keeps MinMax


class _Search:
    """The search's moves on fixture numbers: blocks a (a1, a2), b (b1), c (c1, c2), d (d1); a candidate passes
    when a1 and c2 are float; no transform helps."""

    NEEDED = {"a1", "c2"}

    def __init__(self, budget=60.0):
        self.groups = {"a": ["a1", "a2"], "b": ["b1"], "c": ["c1", "c2"], "d": ["d1"]}
        self.block_of = {n: b for b, ns in self.groups.items() for n in ns}
        self.settings = {"recovery": ["equalization", "bias_correction", "single_nodes", "percentile"]}
        self.clock = quantize.Clock(budget)
        self.candidates = []

    def where(self, nodes):
        return ", ".join(nodes)

    def contribution(self, block, transforms=()):
        return {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}[block]

    def quick_error(self, recipe):
        return 10.0 * len(self.NEEDED - recipe.float_nodes) + len(recipe.percentile) + 0.1 * len(recipe.float_nodes)

    def candidate(self, recipe, why, technique):
        done = next((c for c in self.candidates if c["_key"] == recipe.key()), None)
        if done is not None:
            return done
        ok = self.NEEDED <= recipe.float_nodes
        c = {
            "index": len(self.candidates),
            "float_node_names": sorted(recipe.float_nodes),
            "float_nodes": len(recipe.float_nodes),
            "technique": technique,
            "verdict": "passed" if ok else "failed",
            "error": 4.0 - len(recipe.float_nodes & self.NEEDED),
            "score": float(len(recipe.float_nodes & self.NEEDED)),
            "_key": recipe.key(),
            "_recipe": recipe,
        }
        self.candidates.append(c)
        return c


def test_the_search_keeps_blocks_float_then_gives_single_nodes_back():
    s = _Search()
    record = quantize.search(s)
    tried = [(c["technique"], c["float_node_names"], c["verdict"]) for c in s.candidates]
    assert tried[:3] == [("all_int8", [], "failed"), ("equalization", [], "failed"), ("bias_correction", [], "failed")]
    assert [t["kept"] for t in record["techniques"][:2]] == [False, False]  # neither raised the score
    # blocks float by contribution until one passes: a, then a+b, then a+b+c
    assert [c["float_node_names"] for c in s.candidates[3:6]] == [
        ["a1", "a2"],
        ["a1", "a2", "b1"],
        ["a1", "a2", "b1", "c1", "c2"],
    ]
    # then single nodes back, least harm first, in groups that halve on a failure
    assert record["node_harm"][0][0] in ("a2", "b1", "c1") and record["node_harm"][-1][0] in ("a1", "c2")
    assert sorted(record["rescued"]["single_nodes"]) == ["a2", "b1", "c1"] and record["rescued"]["percentile"] == []
    assert min(c["float_nodes"] for c in s.candidates if c["verdict"] == "passed") == 2
    assert record["stopped"] == "every float node of the passing candidate was tried back in INT8"


def test_the_search_stops_starting_steps_that_would_not_fit_its_time_box():
    s = _Search(budget=0.0)
    record = quantize.search(s)
    assert len(s.candidates) == 1 and record["stopped"].startswith("time box of 0 s spent")
