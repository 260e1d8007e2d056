"""The int8 variant on small real models: real ONNX Runtime quantization, real calibration data, the
search for what must stay float, and the markers it leads to."""

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from conftest import export_tiny_conv, seeded, tiny_byo_component
from safetensors.torch import save_file

from workflow_lib.analysis.budget import Budget
from workflow_lib.core import samples, variants
from workflow_lib.core.files import read_json, write_json
from workflow_lib.core.spec import component_spec
from workflow_lib.core.splits import DISJOINT, Splits
from workflow_lib.graphs import int8, int8_recovery, int8_search
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
    assert int8.blocks(model, convs) == {"a": [convs[0]], "b": [convs[1]], "c": convs[2:4], "d": [convs[4]]}


def _quantize(tmp_path, spec, settings, samples="cal.npz"):
    """The int8 stage on the simplified graph s.onnx and a sample set in tmp_path, writing q.onnx."""
    return quantize.make(
        spec, variants.get("int8"), tmp_path / "s.onnx", tmp_path / "q.onnx", settings, str(tmp_path / samples)
    )


WITHOUT_EQUALIZATION = ["bias_correction", "single_nodes", "percentile"]


def test_naive_int8_fails_and_the_search_keeps_exactly_the_sensitive_block_float(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    # without equalization, which would rescue c (a later test)
    meta = _quantize(tmp_path, spec, {"recovery": WITHOUT_EQUALIZATION})
    search = meta["search"]
    first = search["candidates"][0]
    assert first["float_blocks"] == [] and first["verdict"] == "failed" and first["metrics"]["snr_db"] < 30
    assert meta["status"] == "passed" and meta["float_blocks"] == ["c"]
    assert search["contributions"][0][0] == "c"  # measured, not guessed: the outlier lives inside it
    chosen = search["candidates"][search["chosen"]]
    assert chosen["quantized_nodes"] == 3 and chosen["float_nodes"] == 2 and chosen["metrics"]["snr_db"] >= 30
    # chosen on the search files; the evaluation files are not read here (they judge what ships, after the decision)
    assert chosen["search"]["files"] == 2 and chosen["search"]["gates"]["min_snr_db"]["file"] in ("s0.npz", "s1.npz")
    assert "evaluation" not in search and all("evaluation" not in c for c in search["candidates"])
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
    assert not search["cut_short"] and search["budget"]["candidates"]["used"] == len(search["candidates"])
    assert meta["float_nodes"] == chosen["float_node_names"]
    assert meta["samples"] == {"calibration": 2, "search": 2, "evaluation": 2}
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert sum(n.op_type == "DequantizeLinear" for n in q.graph.node) > 0
    assert read_json(tmp_path / "q.onnx.json")["calibration_sha256"]


def test_the_evaluation_files_never_choose(tmp_path):
    """Perturb the evaluation files: every candidate, every choice, the graph and its validation marker stay the
    same; only the held-out verdict of what ships, read after the decision, changes."""
    from workflow_lib.analysis import heldout

    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    first = _quantize(tmp_path, spec, {"recovery": WITHOUT_EQUALIZATION})
    graph = (tmp_path / "q.onnx").read_bytes()
    markers = [validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz")]
    write_json(tmp_path / "marker.json", markers[0])
    entry = {
        "series": "onnxruntime.int8",
        "backend": "onnxruntime",
        "variant": "int8",
        "device": "cpu",
        "source": str(tmp_path / "q.onnx"),
        "marker": str(tmp_path / "marker.json"),
    }
    verdicts = [heldout.component(spec, entry, str(tmp_path / "cal.npz"), None, 1)]
    sset = samples.read_sample_set(tmp_path / "cal.npz")
    rng = np.random.default_rng(7)
    held_out = set(sset.indices("evaluation"))
    perturbed = [
        {"x": (s["x"] * 40 + rng.normal(size=s["x"].shape)).astype(np.float32)} if i in held_out else s
        for i, s in enumerate(sset.samples)
    ]
    samples.write_samples(tmp_path / "cal.npz", perturbed, splits=sset.splits, files=sset.files)
    second = _quantize(tmp_path, spec, {"recovery": WITHOUT_EQUALIZATION})
    verdicts.append(heldout.component(spec, entry, str(tmp_path / "cal.npz"), None, 1))
    markers.append(validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz"))

    def choices(meta):
        s = meta["search"]
        return [(c["float_node_names"], c["technique"], c["verdict"]) for c in s["candidates"]], s["chosen"]

    assert choices(first) == choices(second) and (tmp_path / "q.onnx").read_bytes() == graph
    assert [m["parity"]["metrics"] for m in markers[:1]] == [m["parity"]["metrics"] for m in markers[1:]]
    assert markers[0]["judged_on"] == "search" and markers[0]["status"] == markers[1]["status"] == "passed"
    assert verdicts[0]["status"] == "passed" and verdicts[0]["worst"] != verdicts[1]["worst"]


def test_a_gate_nothing_can_pass_ships_the_most_faithful_candidate_marked_failed(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = _quantize(tmp_path, spec, {"recovery": ["bias_correction"]})
    assert meta["status"] == "failed" and "snr_db" in meta["reason"]
    assert all(c["quantized_nodes"] >= 1 for c in meta["search"]["candidates"])  # never an all-float "int8"
    marker = validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", tmp_path / "cal.npz")
    # the graph's own record says failed: the marker fails without loading it (nothing downstream may ship it)
    assert marker["status"] == "failed" and "its int8 graph failed" in marker["reason"] and "parity" not in marker


def test_the_search_is_bounded_in_work_and_a_time_box_only_cuts_it_short(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 200.0})
    meta = _quantize(tmp_path, spec, {"max_candidates": 2})
    assert meta["search"]["stopped"] == "work budget of 2 spent (quantize.max_candidates)"
    assert len(meta["search"]["candidates"]) == 2 and not meta["search"]["cut_short"]
    meta = _quantize(tmp_path, spec, {"search_seconds": 0})
    assert meta["search"]["cut_short"] and "cut short by the safety time box" in meta["search"]["stopped"]
    assert len(meta["search"]["candidates"]) == 1  # the first step always runs


def test_int8_markers_judge_on_the_evaluation_files(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    _quantize(tmp_path, spec, {"recovery": WITHOUT_EQUALIZATION})
    for backend, artifact in (("onnxruntime", tmp_path / "q.onnx"),):
        marker = validate.validate(spec, backend, "int8", artifact, tmp_path / "cal.npz")
        assert marker["status"] == "passed" and marker["gate"] == "fidelity"
        assert marker["parity"]["samples"] == 2 and marker["parity"]["metrics"]["snr_db"] >= 30
        assert {"worst", "file", "limit", "margin", "passing", "values"} <= set(
            marker["parity"]["verdict"]["gates"]["min_snr_db"]
        )
    with pytest.raises(Exception, match="needs a sample set"):
        quantize.make(spec, variants.get("int8"), tmp_path / "s.onnx", tmp_path / "q2.onnx", {})


@pytest.mark.parametrize(
    "cls, name, shape, gate, moves",
    [
        ("FixedFrames", "frames", ["n", 1024], 32.5, {"blocks_float", "single_nodes", "percentile"}),
        ("FixedBins", "cqt", ["n", 1, 219], 40.0, {"blocks_float", "single_nodes"}),
    ],
)
def test_fixed_trailing_dims_go_through_the_whole_default_search(tmp_path, cls, name, shape, gate, moves):
    """Two components users brought crashed in the percentile rescue: calibration data was cut into pieces of 128
    along an axis the model declares fixed. Samples of any batch size now go through every transform, and a
    default-settings search over them judges every candidate and writes a graph."""
    import tinymodels

    seeded(0)
    save_file(getattr(tinymodels, cls)().state_dict(), str(tmp_path / "w.safetensors"))
    cfg = {
        "class": f"tinymodels.{cls}",
        "checkpoint": str(tmp_path / "w.safetensors"),
        "inputs": [{"name": name, "shape": shape}],
        "outputs": ["y"],
        "dims": {"n": {"min": 1, "opt": 8, "max": 64}},
        # a gate all-INT8 misses and whole blocks float pass: the search goes on to single nodes and, for a node that
        # fails alone, probes it with Percentile ranges (the move that crashed)
        "gates": {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "int8": {"min_snr_db": gate}},
    }
    spec = component_spec("mine", cls.lower(), cfg)
    export.export(spec, tmp_path / "e.onnx")
    simplify.make(spec, variants.get("fp32"), tmp_path / "e.onnx", tmp_path / "s.onnx", {"tool": "onnxsim"})
    rng = np.random.default_rng(0)
    files = tuple(f"f{i}.npz" for i in range(6))
    roles = Splits(DISJOINT, files, {"calibration": (0, 1), "search": (2, 3), "evaluation": (4, 5)})
    sizes = [3, 17, 5, 40, 9, 2]  # frames per file: every sample its own batch size, none a multiple of another
    feeds = [{name: rng.normal(size=(n, *shape[1:])).astype(np.float32)} for n in sizes]
    samples.write_samples(tmp_path / "cal.npz", feeds, splits=roles, files=list(range(6)))
    quantizer = int8.Quantizer(tmp_path / "s.onnx", quantize.resolved({}), feeds[:2], tmp_path, {})
    ranges = quantizer.percentile_ranges()  # what crashed: histograms over samples of different shapes
    assert ranges and all(r["lowest"] <= r["highest"] for r in ranges.values())
    meta = _quantize(tmp_path, spec, {})  # the default settings: every recovery move, percentile included
    search = meta["search"]
    assert all(c["verdict"] in ("passed", "failed") and c["search"]["files"] == 2 for c in search["candidates"])
    assert {c["technique"] for c in search["candidates"]} >= moves
    assert (tmp_path / "q.onnx").stat().st_size > 0 and meta["status"] == "passed"


def test_calibration_from_arrays_and_from_generators(tmp_path):
    spec = export_tiny_conv(tmp_path)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(1, 8, 20)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=(2, 8, 12)).astype(np.float32))
    meta = calibration.make(spec, tmp_path / "c.npz", {"files": [str(tmp_path / "a.npz"), str(tmp_path / "b.npy")]})
    assert meta["representative"] and meta["samples"] == 2 and meta["shapes"] == [{"x": [1, 8, 20]}, {"x": [2, 8, 12]}]
    assert meta["splits"]["scheme"] == "shared"  # two files for three roles: nothing held out, and it says so
    loaded = samples.read_sample_set(tmp_path / "c.npz").samples
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


def test_one_list_of_files_is_dealt_out_to_the_three_roles(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    rng = np.random.default_rng(3)
    for i in range(6):
        np.savez(tmp_path / f"f{i}.npz", x=rng.normal(size=(1, 8, 64)).astype(np.float32))
    meta = calibration.make(spec, tmp_path / "dealt.npz", {"files": [str(tmp_path / f"f{i}.npz") for i in range(6)]})
    assert meta["splits"]["scheme"] == "disjoint" and meta["per_split"] == {
        "calibration": 2,
        "search": 2,
        "evaluation": 2,
    }
    members = meta["splits"]["members"]
    assert members == {"calibration": [0, 3], "search": [1, 4], "evaluation": [2, 5]}  # in turn, by position


def test_equalization_rescues_the_outlier_channel_and_all_of_it_stays_int8(tmp_path):
    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    meta = _quantize(tmp_path, spec, {})
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
    model, rng = _leaky_pair()
    x = {"x": rng.normal(size=(1, 4, 32)).astype(np.float32)}
    equalized, done = int8_recovery.equalize(model)
    before, after = _ort(model, x), _ort(equalized, x)
    assert np.max(np.abs(after - before)) <= 1e-5 * np.max(np.abs(before))  # float noise only
    assert len(done) == 1 and done[0]["range_spread_after"] < done[0]["range_spread_before"] / 10


def test_bias_correction_removes_the_mean_shift_weight_rounding_adds():
    from onnx import numpy_helper

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

    def __init__(self, candidates=60, probes=60):
        self.groups = {"a": ["a1", "a2"], "b": ["b1"], "c": ["c1", "c2"], "d": ["d1"]}
        self.block_of = {n: b for b, ns in self.groups.items() for n in ns}
        self.settings = {"recovery": ["equalization", "bias_correction", "single_nodes", "percentile"]}
        self.budget = Budget(candidates, None, "quantize.max_candidates", "quantize.search_seconds")
        self.probes = Budget(probes, None, "quantize.max_probes", "quantize.search_seconds")
        self.candidates = []

    def where(self, nodes):
        return ", ".join(nodes)

    def contribution(self, block, transforms=()):
        return {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}[block] if self.probes.take() else None

    def probe(self, recipe):
        if not self.probes.take():
            return None
        return 10.0 * len(self.NEEDED - recipe.float_nodes) + len(recipe.percentile) + 0.1 * len(recipe.float_nodes)

    def candidate(self, recipe, why, technique):
        done = next((c for c in self.candidates if c.recipe.key() == recipe.key()), None)
        if done is not None or not self.budget.take():
            return done
        ok = self.NEEDED <= recipe.float_nodes
        c = SimpleNamespace(
            index=len(self.candidates),
            float_node_names=sorted(recipe.float_nodes),
            float_nodes=len(recipe.float_nodes),
            technique=technique,
            verdict="passed" if ok else "failed",
            error=4.0 - len(recipe.float_nodes & self.NEEDED),
            score=float(len(recipe.float_nodes & self.NEEDED)),
            p50_ms=1.0,
            recipe=recipe,
        )
        self.candidates.append(c)
        return c


def test_the_search_keeps_blocks_float_then_gives_single_nodes_back():
    s = _Search()
    record = int8_search.search(s)
    tried = [(c.technique, c.float_node_names, c.verdict) for c in s.candidates]
    assert tried[:3] == [("all_int8", [], "failed"), ("equalization", [], "failed"), ("bias_correction", [], "failed")]
    assert [t["kept"] for t in record["techniques"][:2]] == [False, False]  # neither raised the score
    # blocks float by contribution until one passes: a, then a+b, then a+b+c
    assert [c.float_node_names for c in s.candidates[3:6]] == [
        ["a1", "a2"],
        ["a1", "a2", "b1"],
        ["a1", "a2", "b1", "c1", "c2"],
    ]
    # then single nodes back, least harm first, in groups that halve on a failure
    assert record["node_harm"][0][0] in ("a2", "b1", "c1") and record["node_harm"][-1][0] in ("a1", "c2")
    assert sorted(record["rescued"]["single_nodes"]) == ["a2", "b1", "c1"] and record["rescued"]["percentile"] == []
    assert min(c.float_nodes for c in s.candidates if c.verdict == "passed") == 2
    assert record["stopped"] == "every float node of the passing candidate was tried back in INT8"


def test_the_search_stops_when_its_work_budget_is_spent():
    s = _Search(candidates=1)
    record = int8_search.search(s)
    assert len(s.candidates) == 1 and record["stopped"] == "work budget of 1 spent (quantize.max_candidates)"
    s = _Search(probes=2)  # not enough probes to rank the four blocks
    record = int8_search.search(s)
    assert record["stopped"] == "work budget of 2 spent (quantize.max_probes)" and "contributions" not in record


def test_a_held_out_verdict_reads_what_the_series_already_answered_on_the_same_inputs(tmp_path):
    """Outputs a chain already got from the shipped series on the evaluation inputs (by feeds key) are read, not run
    again: the same verdict, and with every input answered the series is never opened (its file may be gone)."""
    from workflow_lib.analysis import heldout
    from workflow_lib.runtimes import registry

    spec = _outlier_chain(tmp_path, {"min_snr_db": 30.0})
    _quantize(tmp_path, spec, {"recovery": WITHOUT_EQUALIZATION})
    cal = str(tmp_path / "cal.npz")
    write_json(tmp_path / "marker.json", validate.validate(spec, "onnxruntime", "int8", tmp_path / "q.onnx", cal))
    entry = {"series": "onnxruntime.int8", "variant": "int8", "device": "cpu", "source": str(tmp_path / "q.onnx")}
    entry["marker"] = str(tmp_path / "marker.json")
    run = registry.open_series(spec, "onnxruntime.int8@cpu", entry["source"], read_json(entry["marker"]), 1)[0]
    held_out, _ = samples.read_sample_set(cal).judged("evaluation", [i.name for i in spec.inputs])
    known = {samples.feeds_key(s): run(s) for s in held_out}
    ran = heldout.component(spec, entry, cal, None, 1)
    read = heldout.component(spec, {**entry, "source": str(tmp_path / "gone.onnx")}, cal, None, 1, known)
    assert read == ran and ran["status"] in ("passed", "failed") and len(known) == len(held_out) > 0
