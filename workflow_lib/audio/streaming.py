"""A frame-synchronous chain (chains/frames.py), converted live: chunk by chunk, each role run on just the
frames it needs, the output for a chunk exact wherever its context was there.

Every role maps frames to frames (the last one each frame to `hop` samples), and an output frame t
depends on input frames [t - L, t + R]: its receptive field, measured here by perturbing one input
frame of a warm runner and seeing which output frames move (`receptive_field`; a role where every
frame moves is global, attention: it gets a window of `window` frames instead, and says so). For a
chunk of output frames [a, b) the frames each role must compute follow backwards through the
chain; the features need `chain.feature_context` frames of audio beyond theirs. Input arrives up to
`lookahead` frames past the chunk: a role whose right context reaches further is run on what has
arrived (the output there differs from offline, and `fidelity` measures by how much); a chunk's
first `crossfade` frames are blended with the previous chunk's look past its end, so a seam fades.

The flow's noise and every other seeded input are continuous: `chain.feed` slices them at the
chunk's absolute frames. numpy only: the deployment bundle runs this without torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import StageError
from .protocol import Infer

GLOBAL = -1  # a context that covers every frame: attention


@dataclass(frozen=True)
class Context:
    """How many input frames before (left) and after (right) an output frame affect it; GLOBAL: all of them."""

    left: int
    right: int

    @property
    def is_global(self) -> bool:
        return self.left == GLOBAL or self.right == GLOBAL

    def windowed(self, window: int) -> Context:
        return Context(window if self.left == GLOBAL else self.left, window if self.right == GLOBAL else self.right)


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


@dataclass
class Plan:
    """What streaming this chain costs and needs: per role its context, the latency a listener gets."""

    chunk: int  # frames per chunk
    lookahead: int  # frames of input beyond the chunk waited for
    crossfade: int  # frames blended at each seam
    window: int  # frames of context a global role gets
    contexts: dict[str, Context]
    exact_lookahead: int  # frames of lookahead for the output to equal offline (global roles: within their window)
    hop: int
    sample_rate: int

    def describe(self) -> dict[str, Any]:
        ms = 1000 * self.hop / self.sample_rate
        return {
            "chunk_frames": self.chunk,
            "chunk_ms": round(self.chunk * ms, 1),
            "lookahead_frames": self.lookahead,
            "lookahead_ms": round(self.lookahead * ms, 1),
            "crossfade_frames": self.crossfade,
            "window_frames": self.window,
            "contexts": {
                r: {"left": c.left, "right": c.right, "global": c.is_global, "left_ms": round(c.left * ms, 1)}
                if not c.is_global
                else {"global": True, "window_frames": self.window, "window_ms": round(self.window * ms, 1)}
                for r, c in self.contexts.items()
            },
            "exact_lookahead_frames": self.exact_lookahead,
            "exact_lookahead_ms": round(self.exact_lookahead * ms, 1),
        }


def measure_contexts(chain, runners: Mapping[str, Infer], item: Mapping[str, np.ndarray], extra, frames: int = 96):
    """Each role's receptive field, probed on its real inputs (the chain run on the first `frames` of `item`)."""
    frames = min(frames, item["audio"].size // chain.hop)
    audio = item["audio"][: frames * chain.hop]
    tensors = chain.features(audio)
    contexts = {}
    for role in chain.roles:
        feeds = chain.feed(role, {k: tensors[k] for k in chain.stream_inputs[role]}, extra, 0, frames)
        hop_out = chain.hop if role == chain.roles[-1] else 1
        contexts[role] = receptive_field(runners[role], feeds, hop_out)
        tensors[chain.produces[role]] = np.asarray(runners[role](feeds)[0])
    return contexts


def plan(chain, runners, item, extra, chunk_ms: float, lookahead_ms: float, crossfade_ms, window_ms: float) -> Plan:
    """Chunk, lookahead, crossfade and window in whole frames, the contexts measured on these runners."""
    ms = 1000 * chain.hop / chain.sample_rate
    chunk = round(chunk_ms / ms)
    if chunk < 1:
        raise StageError(f"a chunk of {chunk_ms:g} ms is shorter than one frame ({ms:.1f} ms: hop {chain.hop})")
    lookahead = round(lookahead_ms / ms)
    crossfade = lookahead if crossfade_ms is None else min(lookahead, round(crossfade_ms / ms))
    contexts = measure_contexts(chain, runners, item, extra)
    exact = sum(c.right for c in contexts.values() if not c.is_global)
    return Plan(chunk, lookahead, crossfade, round(window_ms / ms), contexts, exact, chain.hop, chain.sample_rate)


@dataclass
class Stream:
    """Converts audio chunk by chunk, recording per chunk the compute time."""

    chain: Any  # a FrameChain
    runners: Mapping[str, Infer]
    extra: Mapping[str, np.ndarray]
    plan: Plan
    timings_ms: list[float] = field(default_factory=list)
    _tail: np.ndarray | None = None

    def needs(self, a: int, b: int, available: int) -> dict[str, tuple[int, int]]:
        """Frames each tensor must cover to compute output frames [a, b), clipped to what has arrived."""
        chain, need = self.chain, {}
        final = chain.produces[chain.roles[-1]]
        need[final] = (a, b)
        for role in reversed(chain.roles):
            lo, hi = need[chain.produces[role]]
            c = self.plan.contexts[role].windowed(self.plan.window)
            for name in chain.stream_inputs[role]:
                want = (max(0, lo - c.left), min(available, hi + c.right))
                have = need.get(name)
                need[name] = want if have is None else (min(have[0], want[0]), max(have[1], want[1]))
        return need

    def compute(self, audio: np.ndarray, a: int, b: int, available: int) -> np.ndarray:
        """Output samples of frames [a, b) from the audio that has arrived (`available` frames)."""
        chain, hop = self.chain, self.chain.hop
        need = self.needs(a, b, available)
        features = [n for n in need if n not in chain.produces.values()]
        lo = min(need[n][0] for n in features)
        hi = max(need[n][1] for n in features)
        left, right = chain.feature_context
        start = max(0, lo - left)
        stop = min(available, hi + right)
        computed = chain.features(audio[start * hop : stop * hop])
        tensors = {n: (start, computed[n]) for n in features}
        for role in chain.roles:
            s, e = need[chain.produces[role]]
            c = self.plan.contexts[role].windowed(self.plan.window)
            s_in, e_in = max(0, s - c.left), min(available, e + c.right)
            feeds = {n: _slice(*tensors[n], s_in, e_in) for n in chain.stream_inputs[role]}
            out = np.asarray(self.runners[role](chain.feed(role, feeds, self.extra, s_in, e_in - s_in))[0])
            tensors[chain.produces[role]] = (s_in, out)
        s_out, out = tensors[chain.produces[chain.roles[-1]]]
        flat = out.reshape(-1)
        return flat[(a - s_out) * hop : (b - s_out) * hop]

    def run(self, audio: np.ndarray, realtime: bool = False) -> np.ndarray:
        """The whole input, chunk by chunk (at the pace it would arrive with `realtime`)."""
        plan, hop = self.plan, self.chain.hop
        total = audio.size // hop
        pieces, t_start = [], time.perf_counter()
        for a in range(0, total, plan.chunk):
            b = min(total, a + plan.chunk)
            available = min(total, b + plan.lookahead)
            if realtime:  # wait until the chunk and its lookahead would have been captured
                due = available * hop / self.chain.sample_rate
                time.sleep(max(0.0, due - (time.perf_counter() - t_start)))
            t = time.perf_counter()
            ahead = min(plan.crossfade, available - b)  # frames past the chunk, held back for the next seam
            piece = self.compute(audio, a, b + ahead, available)
            pieces.append(self._blend(piece, (b - a) * hop))
            self.timings_ms.append((time.perf_counter() - t) * 1e3)
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _blend(self, piece: np.ndarray, size: int) -> np.ndarray:
        """The chunk's `size` samples, its head faded in over the previous chunk's look past its own end (computed
        with less context, now replaced); what lies past `size` is kept for the next seam."""
        body, tail = piece[:size].astype(np.float32), piece[size:]
        if self._tail is not None and self._tail.size:
            n = min(self._tail.size, body.size)
            ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
            body[:n] = self._tail[:n] * (1 - ramp) + body[:n] * ramp
        self._tail = tail
        return body


def _slice(start: int, tensor: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return tensor[..., lo - start : hi - start]


def stats(timings_ms: list[float], chunk_ms: float, lookahead_ms: float) -> dict[str, Any]:
    """Per-chunk compute, the latency a listener gets (chunk + lookahead + compute at p99), keeping up or not."""
    t = np.asarray(timings_ms[1:] or timings_ms)  # the first chunk warms the runtimes up
    p50, p99 = (float(x) for x in np.percentile(t, [50, 99]))
    late = int((t > chunk_ms).sum())
    return {
        "chunks": len(timings_ms),
        "compute_p50_ms": p50,
        "compute_p99_ms": p99,
        "compute_max_ms": float(t.max()),
        "latency_ms": chunk_ms + lookahead_ms + p99,
        "late_chunks": late,
        "keeps_up": late == 0,
        "rtf": float(t.sum() / (len(t) * chunk_ms)),
    }
