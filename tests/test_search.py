"""The ship decision made on the whole chain: which component is backed off, on fixture numbers."""

import pytest

from workflow_lib.models.svc import chain, search

ROLES = chain.parse_roles(
    {
        "content": "content_encoder",
        "pitch": "pitch_encoder",
        "flow": "flow_decoder",
        "projection": "mel_projection",
        "vocoder": "vocoder",
    }
)
GATES = {"chain": {"max_lsd_db": 6.0}, "copy_synthesis": {"min_pesq": 4.0}}


def _rung(choice):
    return {"choice": choice, "p50_ms": 1.0}


LADDERS = {
    "content_encoder": [_rung("openvino.fp32"), _rung("pytorch.fp32")],
    "pitch_encoder": [_rung("onnxruntime.fp32"), _rung("pytorch.fp32")],
    "flow_decoder": [_rung("onnxruntime.int8"), _rung("onnxruntime.fp32"), _rung("pytorch.fp32")],
    "mel_projection": [_rung("pytorch.fp32")],
    "vocoder": [_rung("onnxruntime.int8"), _rung("openvino.int8"), _rung("onnxruntime.fp32"), _rung("pytorch.fp32")],
}


def _evaluate(assignment):
    """Fixture numbers: an INT8 flow adds error mid-chain; the ONNX Runtime INT8 vocoder sounds bad."""
    picked = {c: e["choice"] for c, e in assignment.items()}
    flow_int8 = picked["flow_decoder"].endswith("int8")
    stages = {
        "content": {"snr_db": 70.0},
        "pitch": {"snr_db": 80.0},
        "latent": {"snr_db": 18.0 if flow_int8 else 65.0},
        "mel": {"snr_db": 17.0 if flow_int8 else 64.0},
        "audio": {"snr_db": 16.0 if flow_int8 else 40.0},
    }  # the audio's log-mel: what the vocoder changes
    copy = {"pesq": 3.1 if picked["vocoder"] == "onnxruntime.int8" else 4.3}
    chain_metrics = {"lsd_db": 8.0 if flow_int8 else 1.0}
    problems = [p for p, bad in (("chain: lsd", chain_metrics["lsd_db"] > 6), ("copy: pesq", copy["pesq"] < 4)) if bad]
    return {
        "assignment": picked,
        "stages": stages,
        "copy_synthesis": copy,
        "chain": chain_metrics,
        "fidelity": "failed" if problems else "passed",
        "reason": "; ".join(problems),
    }


def test_added_noise_names_the_stage_whose_output_is_noisier_than_its_inputs():
    noise = chain.added_noise(
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
    assert chain.added_noise({s: {"snr_db": float("inf")} for s in chain.STAGES}) == {r: 0.0 for r in chain.ROLES}


def test_the_search_backs_off_the_vocoder_for_bad_speech_then_the_noisiest_component():
    position, tried, stopped = search.back_off(
        LADDERS, _evaluate, lambda e, movable: search.culprit(e, ROLES, GATES, movable), budget=60
    )
    assert [t.get("backed_off") for t in tried] == ["vocoder", "flow_decoder", None]
    assert tried[-1]["assignment"] == {
        "content_encoder": "openvino.fp32",
        "pitch_encoder": "onnxruntime.fp32",
        "flow_decoder": "onnxruntime.fp32",
        "mel_projection": "pytorch.fp32",
        "vocoder": "openvino.int8",
    }
    assert position == {"content_encoder": 0, "pitch_encoder": 0, "flow_decoder": 1, "mel_projection": 0, "vocoder": 1}
    assert stopped == "the chain passes every gate"
    assert "backed off vocoder from onnxruntime.int8" in tried[0]["why_lost"]


def test_a_chain_that_cannot_pass_ends_with_nothing_left_to_back_off():
    def never(assignment):
        return {**_evaluate(assignment), "fidelity": "failed", "reason": "chain: lsd"}

    position, tried, stopped = search.back_off(LADDERS, never, lambda e, m: search.culprit(e, ROLES, GATES, m), 60)
    assert position is None and "back at PyTorch fp32" in stopped
    assert all(len(t["assignment"]) == 5 for t in tried) and len(tried) <= sum(len(v) for v in LADDERS.values())


def test_the_search_is_time_boxed():
    position, tried, stopped = search.back_off(
        LADDERS, _evaluate, lambda e, m: search.culprit(e, ROLES, GATES, m), budget=0
    )
    assert position is None and len(tried) == 1 and "time budget" in stopped
