"""Streaming that keeps state: every frame computed once, the output equal to offline at the exact lookahead, the
work per chunk set by the chunk (not by the context), and latency measured by the clock."""

import numpy as np
import pytest
from conftest import SPEECH
from test_chains import denoise_model

from workflow_lib.audio import streaming
from workflow_lib.chains.assignment import Choice, open_roles
from workflow_lib.chains.spec import ChainSpec
from workflow_lib.core.spec import component_spec


@pytest.fixture
def denoise(tmp_path):
    """The tests' denoise chain (log-mel -> conv denoiser -> tiny HiFi-GAN: every role finite), its PyTorch runners
    counting the frames each call is fed."""
    model = denoise_model(tmp_path)
    specs = {c: component_spec("denoise", c, v) for c, v in model["components"].items()}
    spec = ChainSpec.from_config("denoise", model["chain"], model["components"])
    runners, _ = open_roles(spec, specs, {c: [Choice("pytorch.fp32", s.checkpoint)] for c, s in specs.items()}, 1)
    fed: dict[str, list[int]] = {r: [] for r in runners}

    def counted(role, run):
        def call(feeds):
            fed[role].append(next(iter(feeds.values())).shape[-1])
            return run(feeds)

        return call

    chain = spec.chain
    item = chain.read(SPEECH[0])
    item["audio"] = item["audio"][: 2 * chain.sample_rate]
    return chain, {r: counted(r, run) for r, run in runners.items()}, item, fed


def test_streamed_equals_offline_at_the_exact_lookahead_and_each_frame_is_computed_once(denoise):
    chain, runners, item, fed = denoise
    offline = chain.forward(runners, item, {})[0]["audio"]
    probe = chain.live(runners, item, {}, {"chunk_ms": 60, "lookahead_ms": 0, "window_ms": 1000})
    exact_ms = probe.plan.exact_lookahead * probe.plan.frame_ms
    assert probe.plan.exact_lookahead > 0 and not any(c.is_global for c in probe.plan.contexts.values())
    session = chain.live(runners, item, {}, {"chunk_ms": 60, "lookahead_ms": exact_ms, "window_ms": 1000})
    for r in fed:
        fed[r].clear()
    streamed, record = session.run(item)
    assert streamed.shape == offline.shape and np.max(np.abs(streamed - offline)) < 1e-4 * np.abs(offline).max()
    # state kept: each call is fed its chunk of new frames and the role's own context only; an upstream role
    # never recomputes the context of the roles downstream of it
    chunk = session.plan.chunk
    for role, c in session.plan.contexts.items():
        assert max(fed[role]) <= chunk + c.left + c.right + 1, (role, c, fed[role])
    assert record["chunks"] > 10
    # a lookahead short of exact is final too (no frame recomputed) and differs from offline only near the edges
    short = chain.live(runners, item, {}, {"chunk_ms": 60, "lookahead_ms": 0, "window_ms": 1000})
    approx, _ = short.run(item)
    assert approx.shape == offline.shape and 0 < np.max(np.abs(approx - offline))


def test_latency_is_measured_by_the_clock_the_first_chunk_included(denoise):
    chain, runners, item, _ = denoise
    session = chain.live(runners, item, {}, {"chunk_ms": 100, "lookahead_ms": 23, "window_ms": 1000, "device_ms": 20})
    out, record = session.run(item, clock=True)
    frame_ms = session.plan.frame_ms
    chunk_ms, lookahead_ms = session.plan.chunk * frame_ms, session.plan.lookahead * frame_ms
    assert out.size == item["audio"].size // chain.hop * chain.hop and record["keeps_up"]
    # a sample waits for the rest of its chunk and the lookahead, then compute and the device's buffer
    assert record["delay_p50_ms"] >= lookahead_ms and record["delay_max_ms"] <= chunk_ms + lookahead_ms + 20 + 200
    assert record["delay_p50_ms"] <= record["delay_p95_ms"] <= record["delay_max_ms"]
    assert record["explained_ms"] >= chunk_ms + lookahead_ms + 20
    # with the smallest buffer that plays it without a stall, every sample waits the same: the chunk, the lookahead
    # and the compute, at least
    assert record["latency_ms"] >= chunk_ms + lookahead_ms and record["buffer_ms"] >= 0
    # the clock paces the chunks and changes nothing of what is computed (stages/live.py reads the paced run's
    # scores for its lookahead trade-off instead of streaming it again)
    unpaced, _ = chain.live(runners, item, {}, {"chunk_ms": 100, "lookahead_ms": 23, "window_ms": 1000}).run(item)
    assert np.array_equal(out, unpaced)


def test_the_device_stalls_and_counts_late_blocks_when_compute_falls_behind():
    plan = streaming.Plan(4, 0, 100, {}, {streaming.FEATURES: 0}, 0, 256, 22050, device_ms=0.0)
    block = 4 * 256 / 22050  # 46 ms of audio per chunk
    on_time = streaming.delays([block * (k + 1) + 0.001 for k in range(5)], [1024] * 5, 22050, plan, [0.0] * 5)
    assert on_time["late_chunks"] == 0 and on_time["delay_max_ms"] == pytest.approx(block * 1e3 + 1, abs=0.5)
    behind = streaming.delays([block * (k + 1) * 1.5 for k in range(5)], [1024] * 5, 22050, plan, [0.0] * 5)
    assert behind["late_chunks"] > 0 and behind["delay_max_ms"] > on_time["delay_max_ms"]
    # the buffer that would have absorbed it: none on time; two blocks for compute that ends 2 blocks behind
    assert on_time["buffer_ms"] == pytest.approx(0, abs=1e-6)
    assert behind["buffer_ms"] == pytest.approx(2 * block * 1e3, rel=1e-6)


def test_a_chain_with_several_sources_and_a_global_role_streams_all_of_them(tmp_path):
    """The demo chain: three source tensors (log-mel, f0, voicing), an attention role (global: windowed) and
    conditioning sliced by position. Every source advances, and the output has offline's length."""
    from conftest import tiny_svc_config

    from workflow_lib.stages.checkpoints import write_seeded

    model = tiny_svc_config()["models"]["svc_demo"]
    for name, c in model["components"].items():
        c["checkpoint"] = str(tmp_path / f"{name}.safetensors")
        write_seeded(c["class"], c["kwargs"], 1, c["checkpoint"])
    specs = {c: component_spec("svc_demo", c, v) for c, v in model["components"].items()}
    spec = ChainSpec.from_config("svc_demo", model["chain"], model["components"])
    runners, _ = open_roles(spec, specs, {c: [Choice("pytorch.fp32", s.checkpoint)] for c, s in specs.items()}, 1)
    chain = spec.chain
    item = chain.read(SPEECH[0])
    item["audio"] = item["audio"][: 2 * chain.sample_rate]
    extra = chain.conditioning(spec.role_inputs(specs), [item])
    offline = chain.forward(runners, item, extra)[0]["audio"]
    session = chain.live(runners, item, extra, {**model["chain"]["stream"], "chunk_ms": 80})
    assert session.plan.contexts["content"].is_global and not session.plan.contexts["vocoder"].is_global
    streamed, record = session.run(item)
    assert streamed.shape == offline.shape and record["chunks"] > 10
    assert all(session.tensors[s].done == offline.size // chain.hop for s in chain.sources)
