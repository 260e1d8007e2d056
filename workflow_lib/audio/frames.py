"""A base for frame-synchronous audio chains: features per frame of the input audio, then roles that map
frames to frames, the last one each frame to `hop` samples of output audio.

A plug-in declares its dataflow (chains/protocol.py), how the features are computed (`features`, with
the frames of audio beyond a frame they read: `feature_context`) and, where conditioning is sliced by
position, how a role's feeds are made over a span of frames (`feed`: seeded inputs such as noise are
sliced at the span's absolute frames). The protocol's one `forward` runs the chain over any span, so the
offline run and the live one (audio/streaming.py) run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..chains.protocol import Infer, Item, Outputs, Span
from . import streaming
from .chain import AudioChain


class FrameChain(AudioChain):
    streams: ClassVar[bool] = True  # `live` converts chunk by chunk
    feature_context: ClassVar[tuple[int, int]] = (0, 0)  # frames of audio before and after a frame its features read

    def frames(self, item: Item) -> int:
        return item["audio"].size // self.hop

    def span(self, item: Item) -> Span | None:
        return (0, self.frames(item))

    def finish(self, outputs: Outputs) -> Outputs:
        final = self.stages[-1]
        if final in outputs:  # the output audio, as samples
            outputs[final] = outputs[final].reshape(-1)
        return outputs

    def live(
        self,
        runners: Mapping[str, Infer],
        item: Item,
        extra: Mapping[str, np.ndarray],
        settings: Mapping[str, Any],
        like: streaming.Stream | None = None,
    ) -> streaming.Stream:
        """A live session over these runners (`chunk_ms`, `lookahead_ms`, `window_ms`, `device_ms` in `settings`):
        `run(audio, clock)` streams it; the contexts are measured on `item`, or taken from `like`."""
        contexts = like.plan.contexts if like is not None else None
        return streaming.Stream(self, runners, extra, streaming.plan(self, runners, item, extra, settings, contexts))
