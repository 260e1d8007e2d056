"""The ship decision made on the whole chain: which component is moved, on fixture numbers, and the search
going on past the first pass."""

import pytest

from workflow_lib.analysis import pairing
from workflow_lib.analysis.budget import Budget
from workflow_lib.models.svc.chain import SvcChain
from workflow_lib.models.svc.scoring import SvcScorer
from workflow_lib.stages import chain_search

ROLE_OF = {
    "content_encoder": "content",
    "pitch_encoder": "pitch",
    "flow_decoder": "flow",
    "mel_projection": "projection",
    "vocoder": "vocoder",
}
CHAIN = SvcChain({})
SCORER = SvcScorer(CHAIN)


def _rung(series, p50):
    return {"series": series, "p50_ms": p50}


LADDERS = {
    "content_encoder": [_rung("openvino.fp32", 10), _rung("pytorch.fp32", 12)],
    "pitch_encoder": [_rung("onnxruntime.fp32", 1), _rung("pytorch.fp32", 2)],
    "flow_decoder": [_rung("onnxruntime.int8", 20), _rung("onnxruntime.fp32", 40), _rung("pytorch.fp32", 50)],
    "mel_projection": [_rung("pytorch.fp32", 1)],
    "vocoder": [
        _rung("onnxruntime.int8", 300),
        _rung("openvino.int8", 330),
        _rung("onnxruntime.fp32", 700),
        _rung("pytorch.fp32", 900),
    ],
}
COMPONENTS = list(LADDERS)


def _evaluate(t, assignment):
    """Fixture numbers: an INT8 flow adds error mid-chain; the ONNX Runtime INT8 vocoder sounds bad."""
    picked = {c: e["series"] for c, e in assignment.items()}
    flow_int8 = picked["flow_decoder"].endswith("int8")
    t.stages = {
        "content": {"snr_db": 70.0},
        "pitch": {"snr_db": 80.0},
        "latent": {"snr_db": 18.0 if flow_int8 else 65.0},
        "mel": {"snr_db": 17.0 if flow_int8 else 64.0},
        "audio": {"snr_db": 16.0 if flow_int8 else 40.0},
    }  # the audio's log-mel: what the vocoder changes
    failed = [
        g for g, bad in (("chain", flow_int8), ("copy_synthesis", picked["vocoder"] == "onnxruntime.int8")) if bad
    ]
    t.search, t.passed, t.reason = {"failed": failed}, not failed, "; ".join(failed)
    t.p50_ms, t.margin = sum(e["p50_ms"] for e in assignment.values()), 0.1


def _culprit(t, movable):
    role_of_movable = {ROLE_OF[c] for c in movable}
    role = SCORER.culprit(set(t.search["failed"]), t.stages, role_of_movable)
    return next((c for c, r in ROLE_OF.items() if r == role), None)


def _search(evaluate=_evaluate, tries=60):
    return chain_search.Search(COMPONENTS, LADDERS, evaluate, _culprit, Budget(tries, None, "max_tries", "seconds"))


def test_added_noise_names_the_stage_whose_output_is_noisier_than_its_inputs():
    noise = SCORER.added_noise(
        {
            "content": {"snr_db": 70.0},
            "pitch": {"snr_db": 80.0},
            "latent": {"snr_db": 18.0},
            "mel": {"snr_db": 17.0},
            "audio": {"snr_db": 5.0},
        }
    )
    assert max(noise, key=noise.get) == "vocoder"  # 5 dB at the output, 17 dB at its input
    assert noise["flow"] > noise["projection"] > 0 and noise["content"] == pytest.approx(1e-7)
    assert SCORER.added_noise({s: {"snr_db": float("inf")} for s in CHAIN.stages}) == {r: 0.0 for r in CHAIN.roles}


def test_the_search_backs_off_the_vocoder_for_bad_speech_then_the_noisiest_component():
    s = _search()
    passing = s.back_off(tuple(0 for _ in COMPONENTS))
    tried = sorted(s.tried.values(), key=lambda e: e.index)
    assert [t.why_lost.rsplit(" ", 1)[-1] for t in tried[:-1]] == ["vocoder", "flow_decoder"]
    assert tried[-1].assignment == {
        "content_encoder": "openvino.fp32",
        "pitch_encoder": "onnxruntime.fp32",
        "flow_decoder": "onnxruntime.fp32",
        "mel_projection": "pytorch.fp32",
        "vocoder": "openvino.int8",
    }
    assert passing == (0, 0, 1, 0, 1)


def test_past_the_first_pass_it_tries_faster_rungs_and_close_runners_up():
    s = _search()
    passing = s.back_off(tuple(0 for _ in COMPONENTS))
    s.improve(passing)
    moves = [e.why for e in sorted(s.tried.values(), key=lambda e: e.index)][3:]
    assert moves[0].startswith("flow_decoder one rung faster") and moves[1].startswith("vocoder one rung faster")
    assert "no faster neighbour" in s.stopped  # nothing faster passes: the INT8 flow and the ORT INT8 vocoder fail
    s.runners_up(passing)
    close = [e for e in s.tried.values() if "within 25%" in e.why]
    # PyTorch's content encoder (12 ms against 10) and flow (50 against 40) are close enough to be timed
    # together; PyTorch's pitch encoder (2 against 1) and ONNX Runtime's fp32 vocoder (700 against 330) are not
    assert {tuple(e.positions) for e in close} == {(1, 0, 1, 0, 1), (0, 0, 2, 0, 1)}
    assert pairing.front([t.to_json() for t in s.tried.values()], "margin")  # latency against margin, every try


def test_a_chain_that_cannot_pass_ends_with_nothing_left_to_move():
    def never(t, assignment):
        _evaluate(t, assignment)
        t.passed, t.search, t.reason = False, {"failed": ["chain"]}, "chain"

    s = _search(never)
    assert s.back_off(tuple(0 for _ in COMPONENTS)) is None and "back at PyTorch fp32" in s.stopped
    assert all(len(t.assignment) == 5 for t in s.tried.values())


def test_the_search_is_bounded_in_tries_not_seconds():
    s = _search(tries=1)
    assert s.back_off(tuple(0 for _ in COMPONENTS)) is None and len(s.tried) == 1
    assert s.budget.stopped == "work budget of 1 spent (max_tries)" and not s.budget.cut_short


def _sensor_search(tmp_path):
    """The sensor chain exported, with its reference run: (specs, chain spec, ranked ladders, reference path); each
    component's candidate is its ONNX Runtime fp32 graph."""
    from conftest import sensor_model

    from workflow_lib.chains.spec import ChainSpec
    from workflow_lib.core.files import write_json, write_npz
    from workflow_lib.core.spec import component_spec
    from workflow_lib.stages import chain_reference, export

    model = sensor_model(tmp_path)
    specs = {c: component_spec("sensor", c, v) for c, v in model["components"].items()}
    spec = ChainSpec.from_config("sensor", model["chain"], model["components"])
    ranked = {}
    for c, s in specs.items():
        export.export(s, tmp_path / f"{c}.onnx")
        write_json(tmp_path / f"{c}.marker.json", {"status": "passed"})
        common = {"variant": "fp32", "device": "cpu", "validated": True, "precision": "fp32", "quantized_nodes": 0}
        ort = {
            **common,
            "series": "onnxruntime.fp32",
            "backend": "onnxruntime",
            "source": str(tmp_path / f"{c}.onnx"),
            "marker": str(tmp_path / f"{c}.marker.json"),
            "p50_ms": 1.0,
            "speedup": 3.0,
            "ci": [2.5, 3.5],
        }
        torch_entry = {**common, "series": "pytorch.fp32", "backend": "pytorch", "source": s.checkpoint}
        torch_entry.update(marker=None, p50_ms=3.0, speedup=1.0, ci=[1.0, 1.0])
        ranked[c] = {"cpu": {"candidates": [ort], "reference": torch_entry, "others": [], "not_measured": []}}
    arrays, _, _ = chain_reference.reference_run(specs, spec, threads=1)
    write_npz(tmp_path / "ref.npz", arrays)
    return specs, spec, ranked, str(tmp_path / "ref.npz"), arrays


def test_the_evaluation_files_change_no_choice_only_the_verdict_on_it(tmp_path):
    """The chain search on the sensor chain, twice: the second time PyTorch fp32's outputs on the evaluation files
    are replaced by noise, as if those files had been other files. Every try and the choice stay the same; only
    the verdict read after the choice changes, and with it the fallback to the safe assignment (PyTorch fp32)."""
    import numpy as np

    from workflow_lib.core.files import read_npz, write_npz

    specs, spec, ranked, reference, arrays = _sensor_search(tmp_path)
    first = chain_search.chain_search(specs, spec, ranked, reference, 1, "cpu")
    evaluation = [int(k.split("/")[1]) for k in arrays if k.startswith("file/")]
    evaluation = sorted(set(evaluation) & set(spec.splits.of("evaluation")))
    noisy = read_npz(tmp_path / "ref.npz")
    rng = np.random.default_rng(0)
    for i in evaluation:
        key = f"file/{i}/out/pred"
        noisy[key] = (noisy[key] + rng.normal(size=noisy[key].shape)).astype(np.float32)
    write_npz(tmp_path / "ref.npz", noisy)
    second = chain_search.chain_search(specs, spec, ranked, reference, 1, "cpu")

    def choices(record):
        return [(t["assignment"], t["passed"], t["why"]) for t in record["tried"]], record["winner"]

    assert evaluation and choices(first[1]) == choices(second[1])
    assert all((t["p50_ms"] is not None) == t["passed"] for t in first[1]["tried"])  # a failed try is not timed
    assert first[1]["evaluation"]["status"] == "passed" and first[1]["fallback"] is None
    assert second[1]["evaluation"]["status"] == "failed" and second[1]["fallback"]["assignment"] == "reference"
    assert {c: e["series"] for c, e in first[0].items()} == {"encoder": "onnxruntime.fp32", "head": "onnxruntime.fp32"}
    assert {c: e["series"] for c, e in second[0].items()} == {"encoder": "pytorch.fp32", "head": "pytorch.fp32"}


def test_a_component_too_small_to_time_in_the_chain_gets_its_most_faithful_series_not_its_fastest(tmp_path):
    """The head does 0.5 % of the chain's FLOPs: its INT8 series, listed fastest, is never tried (it has no graph:
    trying it would fail), and its fp32 graph ships, saying why; with settle_share 0 the head is searched."""
    specs, spec, ranked, reference, _ = _sensor_search(tmp_path)
    fp32 = ranked["head"]["cpu"]["candidates"][0]
    int8 = {**fp32, "series": "onnxruntime.int8", "variant": "int8", "precision": "int8", "quantized_nodes": 4}
    ranked["head"]["cpu"]["candidates"] = [{**int8, "source": str(tmp_path / "none.onnx"), "p50_ms": 0.2}, fp32]
    flops = {"encoder": 199_000, "head": 1_000}
    picks, record = chain_search.chain_search(specs, spec, ranked, reference, 1, "cpu", flops=flops)
    assert (
        picks["head"]["series"] == "onnxruntime.fp32" and "head settled: 0.5 % of the chain" in picks["head"]["reason"]
    )
    assert record["settled"]["head"]["series"] == "onnxruntime.fp32" and list(record["settled"]) == ["head"]
    assert {t["assignment"]["head"] for t in record["tried"]} == {"onnxruntime.fp32"}  # never moved, not even down
    spec.raw["search"] = {**spec.search, "settle_share": 0}
    ranked["head"]["cpu"]["candidates"][0]["source"] = fp32["source"]  # now it is tried: the fp32 graph under its label
    _, record = chain_search.chain_search(specs, spec, ranked, reference, 1, "cpu", flops=flops)
    assert record["settled"] == {} and record["tried"][0]["assignment"]["head"] == "onnxruntime.int8"


def test_rungs_the_chain_cannot_tell_apart_go_in_a_fixed_order_whatever_their_benchmarks_say():
    """The flow decoder's ladders of two cold runs (ms at the opt point): OpenVINO and ONNX Runtime INT8 swap
    places, as separate benchmarks do. Within the chain's resolution (3 % of ~380 ms) the order is fixed,
    cheapest arithmetic first, so the search starts at the same rung and times it against the same runner-up
    in both; PyTorch bf16 is inside the resolution in one run only, behind them; the rest stay fastest first."""

    def rung(series, p50):
        backend, variant = series.split(".")
        quantized = 44 if variant == "int8" else 0
        return {"series": series, "backend": backend, "precision": variant, "p50_ms": p50, "quantized_nodes": quantized}

    def order(p50s):
        ladder = sorted((rung(s, p) for s, p in p50s.items()), key=lambda r: r["p50_ms"])
        return [r["series"] for r in chain_search.resolved(ladder, 11.4)]

    run_1 = {"openvino.int8": 8.6, "onnxruntime.int8": 11.6, "openvino.bf16": 13.1, "pytorch.bf16": 21.7}
    run_2 = {"onnxruntime.int8": 10.6, "openvino.int8": 12.2, "openvino.bf16": 12.6, "pytorch.bf16": 19.5}
    first = ["onnxruntime.int8", "openvino.int8", "openvino.bf16"]
    assert order({**run_1, "onnxruntime.fp32": 28.9}) == [*first, "pytorch.bf16", "onnxruntime.fp32"]
    assert order({**run_2, "onnxruntime.fp32": 28.1}) == [*first, "pytorch.bf16", "onnxruntime.fp32"]


def test_a_runner_up_within_the_chains_resolution_is_timed_against_the_best_even_when_its_benchmark_ratio_is_not():
    """Run A2's flow decoder: ONNX Runtime INT8's benchmark 1.35x OpenVINO INT8's (11.6 vs 8.6 ms), outside the
    25 % band, but 3 ms apart where the chain resolves 11 ms: it is tried as the runner-up."""
    ladders = {**LADDERS, "flow_decoder": [_rung("openvino.int8", 8.6), _rung("onnxruntime.int8", 11.6)]}

    def evaluate(t, assignment):
        t.passed, t.p50_ms, t.margin = True, sum(e["p50_ms"] for e in assignment.values()), 0.1

    def search(resolution):
        s = chain_search.Search(
            COMPONENTS, ladders, evaluate, _culprit, Budget(60, None, "max_tries", "seconds"), resolution
        )
        best = s.back_off(tuple(0 for _ in COMPONENTS))
        s.runners_up(best)
        return {t.assignment["flow_decoder"] for t in s.tried.values()}

    assert search(0.0) == {"openvino.int8"} and search(11.4) == {"openvino.int8", "onnxruntime.int8"}
