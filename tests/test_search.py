"""The ship decision made on the whole chain: which component is moved, on fixture numbers, and the search
going on past the first pass."""

import pytest

from workflow_lib.analysis import pairing
from workflow_lib.models.svc.chain import SvcChain
from workflow_lib.stages import chain_search

ROLE_OF = {
    "content_encoder": "content",
    "pitch_encoder": "pitch",
    "flow_decoder": "flow",
    "mel_projection": "projection",
    "vocoder": "vocoder",
}
CHAIN = SvcChain({})


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


def _evaluate(assignment):
    """Fixture numbers: an INT8 flow adds error mid-chain; the ONNX Runtime INT8 vocoder sounds bad."""
    picked = {c: e["series"] for c, e in assignment.items()}
    flow_int8 = picked["flow_decoder"].endswith("int8")
    stages = {
        "content": {"snr_db": 70.0},
        "pitch": {"snr_db": 80.0},
        "latent": {"snr_db": 18.0 if flow_int8 else 65.0},
        "mel": {"snr_db": 17.0 if flow_int8 else 64.0},
        "audio": {"snr_db": 16.0 if flow_int8 else 40.0},
    }  # the audio's log-mel: what the vocoder changes
    failed = [
        g for g, bad in (("chain", flow_int8), ("copy_synthesis", picked["vocoder"] == "onnxruntime.int8")) if bad
    ]
    return {
        "assignment": picked,
        "stages": stages,
        "search": {"failed": failed},
        "passed": not failed,
        "reason": "; ".join(failed),
        "p50_ms": sum(e["p50_ms"] for e in assignment.values()),
        "margin": 0.1,
    }


def _culprit(entry, movable):
    role_of_movable = {ROLE_OF[c] for c in movable}
    role = CHAIN.culprit(set(entry["search"]["failed"]), entry["stages"], role_of_movable)
    return next((c for c, r in ROLE_OF.items() if r == role), None)


def _search(evaluate=_evaluate, budget=60):
    return chain_search.Search(COMPONENTS, LADDERS, evaluate, _culprit, budget)


def test_added_noise_names_the_stage_whose_output_is_noisier_than_its_inputs():
    noise = CHAIN.added_noise(
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
    assert CHAIN.added_noise({s: {"snr_db": float("inf")} for s in CHAIN.stages}) == {r: 0.0 for r in CHAIN.roles}


def test_the_search_backs_off_the_vocoder_for_bad_speech_then_the_noisiest_component():
    s = _search()
    passing = s.back_off(tuple(0 for _ in COMPONENTS))
    tried = sorted(s.tried.values(), key=lambda e: e["index"])
    assert [t["why_lost"].rsplit(" ", 1)[-1] for t in tried[:-1]] == ["vocoder", "flow_decoder"]
    assert tried[-1]["assignment"] == {
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
    moves = [e["why"] for e in sorted(s.tried.values(), key=lambda e: e["index"])][3:]
    assert moves[0].startswith("flow_decoder one rung faster") and moves[1].startswith("vocoder one rung faster")
    assert "no faster neighbour" in s.stopped  # nothing faster passes: the INT8 flow and the ORT INT8 vocoder fail
    s.runners_up(passing)
    close = [e for e in s.tried.values() if "within 25%" in e["why"]]
    # PyTorch's content encoder (12 ms against 10) and flow (50 against 40) are close enough to be timed
    # together; PyTorch's pitch encoder (2 against 1) and ONNX Runtime's fp32 vocoder (700 against 330) are not
    assert {tuple(e["positions"]) for e in close} == {(1, 0, 1, 0, 1), (0, 0, 2, 0, 1)}
    assert pairing.front(list(s.tried.values()), "margin")  # latency against margin over every try


def test_a_chain_that_cannot_pass_ends_with_nothing_left_to_move():
    def never(assignment):
        return {**_evaluate(assignment), "passed": False, "search": {"failed": ["chain"]}, "reason": "chain"}

    s = _search(never)
    assert s.back_off(tuple(0 for _ in COMPONENTS)) is None and "back at PyTorch fp32" in s.stopped
    assert all(len(t["assignment"]) == 5 for t in s.tried.values())


def test_the_search_is_time_boxed():
    s = _search(budget=0)
    assert s.back_off(tuple(0 for _ in COMPONENTS)) is None and len(s.tried) == 1 and "time budget" in s.stopped
