"""A frame-synchronous chain (audio/frames.py) converted as audio arrives, keeping state: every frame of every
tensor is computed once, when enough of its input has arrived, and kept as long as a later role needs it.

Every role maps frames to frames (the last one each frame to `hop` samples), and an output frame t depends on
input frames [t - L, t + R]: its receptive field, measured here by perturbing one input frame of a warm runner
and seeing which output frames move (`receptive_field`; a role where every frame moves is global, attention:
it gets a window of `window` frames ending at the newest frame it can compute, and says so).

A role computes new frames from inputs that include L frames of left context (kept from before: exact) and as
much right context as its share of the lookahead allows (`Plan.waits`: the lookahead is given out along the
dataflow, upstream first; a role whose right context reaches further computes with the span's end as its
edge, and that frame is final: nothing is ever recomputed, so per-chunk compute grows with the chunk, not
with the context). With a lookahead of at least `exact_lookahead` and no global role, the streamed output is
the offline output to float noise.

`run` feeds a whole input chunk by chunk, with `clock` at the audio clock (a chunk is pushed when its last
sample would have been captured) into a simulated output device that starts playing `device_ms` after the
first output and then plays continuously: each frame's delay from entering to being heard is measured by the
clock, the first chunk included, and a frame not computed by its playback time is late (the device stalls).
numpy only: the deployment bundle streams with this too, and converts files of any length through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..chains.protocol import Infer
from ..core.errors import StageError

log = logging.getLogger(__name__)
GLOBAL = -1  # a context that covers every frame: attention
FEATURES = "features"  # the waits of the source tensors (the chain's features of the audio)


@dataclass(frozen=True)
class Context:
    """How many input frames before (left) and after (right) an output frame affect it; GLOBAL: all of them."""

    left: int
    right: int

    @property
    def is_global(self) -> bool:
        return self.left == GLOBAL or self.right == GLOBAL


def receptive_field(run: Infer, feeds: Mapping[str, np.ndarray], hop_out: int = 1, rtol: float = 1e-5) -> Context:
    """Perturb the middle frame of every frame-aligned input (its last axis) and see which output frames move.

    `hop_out`: output samples per frame (a vocoder's hop). Exact for convolutions; an output that moves
    everywhere is GLOBAL (attention, or a recurrence)."""
    frames = next(iter(feeds.values())).shape[-1]
    middle = frames // 2
    base = np.asarray(run(dict(feeds))[0], np.float64)
    moved = np.zeros(frames, dtype=bool)
    for name, value in feeds.items():
        if value.shape[-1] != frames or not np.issubdtype(value.dtype, np.floating):
            continue
        poked = value.copy()
        poked[..., middle] += 0.5 * (np.abs(value).max() or 1.0)
        out = np.asarray(run({**feeds, name: poked})[0], np.float64)
        diff = np.abs(out - base).reshape(-1, out.shape[-1]).max(axis=0)
        scale = np.abs(base).max() or 1.0
        changed = diff > rtol * scale
        per_frame = changed[: frames * hop_out].reshape(frames, hop_out).any(axis=1)
        moved |= per_frame
    if not moved.any():
        return Context(0, 0)
    hit = np.nonzero(moved)[0]
    first, last = int(hit[0]), int(hit[-1])
    if first == 0 and last == frames - 1:
        return Context(GLOBAL, GLOBAL)
    # an input at `middle` moves outputs [first, last]: output t reads [t - (last - middle), t + (middle - first)]
    return Context(last - middle, middle - first)


def measure_contexts(chain, runners: Mapping[str, Infer], item: Mapping[str, np.ndarray], extra, frames: int = 96):
    """Each role's receptive field, probed on its real inputs (the chain run on the first `frames` of `item`)."""
    frames = min(frames, item["audio"].size // chain.hop)
    tensors = dict(chain.features({"audio": item["audio"][: frames * chain.hop]}))
    contexts = {}
    for r in chain.dataflow:
        feeds = chain.feed(r.name, {k: tensors[k] for k in r.reads}, extra, (0, frames))
        hop_out = chain.hop if r.name == chain.roles[-1] else 1
        contexts[r.name] = receptive_field(runners[r.name], feeds, hop_out)
        tensors[r.writes] = np.asarray(runners[r.name](feeds)[0])
    return contexts


@dataclass
class Plan:
    """How a chain streams: chunk and lookahead in frames, each role's context, and how the lookahead is given
    out (`waits`: frames of right context each role, and the features, wait for)."""

    chunk: int
    lookahead: int
    window: int  # frames of context a global role gets
    contexts: dict[str, Context]
    waits: dict[str, int]
    exact_lookahead: int  # the lookahead at which every finite role waits for its whole right context
    hop: int
    sample_rate: int
    device_ms: float = 0.0

    @property
    def frame_ms(self) -> float:
        return 1000 * self.hop / self.sample_rate

    def describe(self) -> dict[str, Any]:
        ms = self.frame_ms
        return {
            "chunk_frames": self.chunk,
            "chunk_ms": round(self.chunk * ms, 1),
            "lookahead_frames": self.lookahead,
            "lookahead_ms": round(self.lookahead * ms, 1),
            "window_frames": self.window,
            "device_ms": self.device_ms,
            "contexts": {
                r: {"left": c.left, "right": c.right, "global": False, "waits": self.waits[r]}
                if not c.is_global
                else {"global": True, "window_frames": self.window, "window_ms": round(self.window * ms, 1)}
                for r, c in self.contexts.items()
            },
            "feature_waits": self.waits[FEATURES],
            "exact_lookahead_frames": self.exact_lookahead,
            "exact_lookahead_ms": round(self.exact_lookahead * ms, 1),
        }


def plan(chain, runners, item, extra, settings: Mapping[str, Any], contexts: dict[str, Context] | None = None) -> Plan:
    """Chunk, lookahead and window in whole frames (from `chunk_ms`, `lookahead_ms` (None: the exact one),
    `window_ms`; `device_ms` the output device's buffer), the contexts measured on these runners (or given:
    measured before on the same runners), the lookahead given out upstream first."""
    ms = 1000 * chain.hop / chain.sample_rate
    chunk = round(settings["chunk_ms"] / ms)
    if chunk < 1:
        raise StageError(
            f"a chunk of {settings['chunk_ms']:g} ms is shorter than one frame ({ms:.1f} ms: hop {chain.hop})"
        )
    asked = settings.get("lookahead_ms", 0)
    if (asked is not None and asked < 0) or settings.get("window_ms", 1) <= 0:
        raise StageError("the lookahead must be at least 0 ms and the window above 0 ms")
    contexts = contexts if contexts is not None else measure_contexts(chain, runners, item, extra)
    exact = allot(chain, contexts, 0)[1]
    lookahead = exact if asked is None else round(asked / ms)  # None: exactly what every role's context needs
    waits, _ = allot(chain, contexts, lookahead)
    return Plan(
        chunk,
        lookahead,
        round(settings["window_ms"] / ms),
        contexts,
        waits,
        exact,
        chain.hop,
        chain.sample_rate,
        float(settings.get("device_ms", 0.0)),
    )


def allot(chain, contexts: Mapping[str, Context], lookahead: int) -> tuple[dict[str, int], int]:
    """Per role (and the features), the frames of right context it waits for: on each path through the dataflow
    the lookahead is given out upstream first; and the lookahead at which every finite role gets all it reads."""
    right_f = chain.feature_context[1]
    waits = {FEATURES: min(right_f, lookahead)}
    delay = {t: waits[FEATURES] for t in chain.sources}  # frames the input must run ahead of each tensor
    full = {t: right_f for t in chain.sources}
    for r in chain.dataflow:
        c = contexts[r.name]
        right = 0 if c.is_global else c.right
        before = max(delay[t] for t in r.reads)
        waits[r.name] = max(0, min(right, lookahead - before))
        delay[r.writes] = before + waits[r.name]
        full[r.writes] = max(full[t] for t in r.reads) + right
    return waits, full[chain.stages[-1]]


@dataclass
class _Tensor:
    """Frames [base, done) of one tensor, along its last axis."""

    array: np.ndarray | None = None
    base: int = 0
    done: int = 0

    def append(self, part: np.ndarray) -> None:
        self.array = part if self.array is None else np.concatenate([self.array, part], axis=-1)
        self.done += part.shape[-1]

    def span(self, lo: int, hi: int) -> np.ndarray:
        return self.array[..., lo - self.base : hi - self.base]

    def trim(self, keep_from: int) -> None:
        """Drop frames before `keep_from` that no role needs any more."""
        if self.array is not None and keep_from > self.base:
            cut = min(keep_from, self.done) - self.base
            self.array, self.base = self.array[..., cut:], self.base + cut


@dataclass
class Stream:
    """The chain's state while audio arrives: `push` a chunk, get the output samples that became final."""

    chain: Any  # a FrameChain
    runners: Mapping[str, Infer]
    extra: Mapping[str, np.ndarray]
    plan: Plan
    timings_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.audio = np.zeros(0, np.float32)
        self.audio_base = 0  # samples dropped from the front of `audio`
        self.tensors = {t: _Tensor() for t in (*self.chain.sources, *self.chain.stages)}
        self.emitted = 0  # output frames handed out

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        """Take the next samples of input (the last push: `final`), compute what became computable, and return the
        output samples that are now final."""
        t = time.perf_counter()
        self.audio = np.concatenate([self.audio, np.asarray(samples, np.float32)])
        out = self._advance(final)
        self.timings_ms.append((time.perf_counter() - t) * 1e3)
        return out

    def _advance(self, final: bool) -> np.ndarray:
        chain, hop, plan = self.chain, self.chain.hop, self.plan
        arrived = (self.audio_base + self.audio.size) // hop
        left_f, right_f = chain.feature_context
        first = self.tensors[chain.sources[0]]
        ready = arrived if final else max(first.done, arrived - plan.waits[FEATURES])
        if ready > first.done:
            done = first.done  # every source is as far as the first (appending moves it)
            lo, hi = max(0, done - left_f), min(arrived, ready + right_f)
            # at the end, every sample left (a partial frame too): the offline analysis pads after it the same way
            stop = None if final else hi * hop - self.audio_base
            piece = self.audio[lo * hop - self.audio_base : stop]
            computed = chain.features({"audio": piece})
            for name in chain.sources:
                self.tensors[name].append(computed[name][..., done - lo : ready - lo])
        for r in chain.dataflow:
            self._role(r, final)
        out_tensor = self.tensors[chain.stages[-1]]
        out = None
        if out_tensor.done > self.emitted:  # [1, hop, frames]: each frame's samples, frame after frame
            out = out_tensor.span(self.emitted, out_tensor.done)[0].T.reshape(-1)
        self.emitted = out_tensor.done
        self._trim()
        return out if out is not None else np.zeros(0, np.float32)

    def _role(self, r, final: bool) -> None:
        plan, tensors = self.plan, self.tensors
        out = tensors[r.writes]
        inputs = min(tensors[t].done for t in r.reads)
        c = plan.contexts[r.name]
        ready = inputs if final or c.is_global else max(out.done, inputs - plan.waits[r.name])
        if ready <= out.done:
            return
        if c.is_global:
            lo, hi = max(0, ready - plan.window), ready
        else:
            lo, hi = max(0, out.done - c.left), min(inputs, ready + c.right)
        feeds = self.chain.feed(r.name, {t: tensors[t].span(lo, hi) for t in r.reads}, self.extra, (lo, hi - lo))
        result = np.asarray(self.runners[r.name](feeds)[0])
        if r.name == self.chain.roles[-1]:  # samples: `hop` per frame, as frames along a new last axis
            result = result.reshape(-1)[: (hi - lo) * self.chain.hop].reshape(hi - lo, self.chain.hop).T[None]
        out.append(result[..., out.done - lo : ready - lo])

    def _trim(self) -> None:
        """Keep of each tensor only what a role that reads it still needs (its left context, or a window)."""
        chain, plan = self.chain, self.plan
        need = {t: self.tensors[t].done for t in self.tensors}
        need[chain.stages[-1]] = self.emitted
        for r in chain.dataflow:
            c = plan.contexts[r.name]
            done = self.tensors[r.writes].done
            start = done - plan.window if c.is_global else done - c.left
            for t in r.reads:
                need[t] = min(need[t], max(0, start))
        for t, keep in need.items():
            self.tensors[t].trim(keep)
        first = min(self.tensors[s].done for s in chain.sources)
        keep_audio = max(0, first - chain.feature_context[0]) * chain.hop
        if keep_audio > self.audio_base:
            self.audio, self.audio_base = self.audio[keep_audio - self.audio_base :], keep_audio

    def run(self, item: Mapping[str, np.ndarray], clock: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
        """The item's audio, chunk by chunk; with `clock`, each chunk pushed when its last sample would have been
        captured. The output, and the per-chunk compute and (with `clock`) the delays measured."""
        audio = item["audio"]
        plan, hop = self.plan, self.chain.hop
        step = plan.chunk * hop
        sr = self.chain.sample_rate
        pieces, pushed_at, done_at, sizes = [], [], [], []
        t0 = time.perf_counter()
        for start in range(0, audio.size, step):
            end = min(audio.size, start + step)
            if clock:
                time.sleep(max(0.0, t0 + end / sr - time.perf_counter()))
            pushed_at.append(time.perf_counter() - t0)
            pieces.append(self.push(audio[start:end], final=end >= audio.size))
            done_at.append(time.perf_counter() - t0)
            sizes.append(pieces[-1].size)
        out = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        record = {"chunks": len(pieces), **compute_stats(self.timings_ms, plan.chunk * plan.frame_ms)}
        record["keeps_up"] = record["rtf"] < 1.0
        if clock:
            record.update(delays(done_at, sizes, sr, plan, pushed_at))
        return out, record


def compute_stats(timings_ms: list[float], chunk_ms: float) -> dict[str, Any]:
    """Per-chunk compute (every chunk, the first included) against the chunk's own length."""
    t = np.asarray(timings_ms)
    return {
        "compute_p50_ms": float(np.percentile(t, 50)),
        "compute_p95_ms": float(np.percentile(t, 95)),
        "compute_max_ms": float(t.max()),
        "rtf": float(t.sum() / (len(t) * chunk_ms)),
    }


def delays(done_at: list[float], sizes: list[int], sr: int, plan: Plan, pushed_at: list[float]) -> dict[str, Any]:
    """What a listener gets, by the clock: the output device starts `device_ms` after the first output is ready,
    holding back as much as that first block falls short of a whole chunk (the lookahead keeps it short; a
    player that started on it would run dry by design), and plays continuously; a block not ready at its
    playback time is late, and the device waits for it. Per block of output, the delay from its first sample
    entering (its capture time) to it being heard. And the smallest buffer that would have played the whole
    input without a stall (`buffer_ms`: compute jitter is what it absorbs), with the one delay every sample
    then has (`latency_ms`). It keeps up when compute keeps pace with the audio (`rtf` below 1): then such a
    buffer exists whatever the input's length."""
    position, start, stalled, late, per_block, first, need = 0, None, 0.0, 0, [], None, 0.0
    for ready, size in zip(done_at, sizes, strict=True):
        if size == 0:
            continue
        if start is None:
            first = ready + max(0, plan.chunk * plan.hop - size) / sr
            start = first + plan.device_ms / 1e3
        need = max(need, ready - (first + position / sr))  # how late it would be with no buffer at all
        due = start + stalled + position / sr
        if ready > due:  # the device ran dry: this block plays when it is ready, everything after it later
            late += 1
            stalled += ready - due
            due = ready
        per_block.append(1e3 * (due - position / sr))  # heard at `due`, entered at position / sr
        position += size
    d = np.asarray(per_block) if per_block else np.zeros(1)
    return {
        "delay_p50_ms": float(np.percentile(d, 50)),
        "delay_p95_ms": float(np.percentile(d, 95)),
        "delay_max_ms": float(d.max()),
        "late_chunks": late,
        "buffer_ms": 1e3 * need,
        "latency_ms": 1e3 * ((first or 0.0) + need),
        # chunk + lookahead + compute at p95 + the device's buffer: the sum a listener's latency used to be
        # reported as, kept to explain the measured delay (which also holds the wait for the whole chunk)
        "explained_ms": (plan.chunk + plan.lookahead) * plan.frame_ms
        + float(np.percentile([d - p for d, p in zip(done_at, pushed_at, strict=True)], 95))
        + plan.device_ms,
    }
