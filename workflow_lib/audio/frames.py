"""A base for frame-synchronous audio chains: features per frame of the input audio, then roles that map
frames to frames, the last one each frame to `hop` samples of output audio.

A plug-in declares what feeds each role (`stream_inputs`: feature or stage names), how the features are
computed (`features`, with the frames of audio beyond a frame they read: `feature_context`) and how a
role's feeds are made from those tensors over a span of frames (`feed`: seeded inputs such as noise are
sliced at the span's absolute frames). The one `forward` below runs the chain over any span, so the
offline run and the live one (chains/streaming.py) run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .audio import AudioChain
from .protocol import Feeds, Infer, Item, Outputs


class FrameChain(AudioChain):
    stream_inputs: ClassVar[Mapping[str, tuple[str, ...]]] = {}  # role -> the feature or stage tensors it reads
    feature_context: ClassVar[tuple[int, int]] = (0, 0)  # frames of audio before and after a frame its features read

    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Per-frame features of `audio` ([1, C, frames] or [1, frames]); frame t covers samples [t*hop, (t+1)*hop)."""
        raise NotImplementedError

    def feed(
        self, role: str, tensors: Mapping[str, np.ndarray], extra: Mapping[str, Any], start: int, frames: int
    ) -> Feeds:
        """The role's feeds (under the chain's names) for frames [start, start + frames), from its input tensors
        over those frames. Default: the tensors themselves, under the names the role takes them by."""
        return dict(zip(self.role_inputs[role], (tensors[n] for n in self.stream_inputs[role]), strict=True))

    def forward(
        self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], until: str | None = None
    ) -> tuple[Outputs, dict[str, Feeds]]:
        audio = item["audio"]
        tensors: dict[str, np.ndarray] = dict(self.features(audio))
        frames = audio.size // self.hop
        needed = set(self.upstream(until)) if until else set(self.roles)
        out: Outputs = {}
        feeds: dict[str, Feeds] = {}
        for role in self.roles:
            if role != until and role not in needed:
                continue
            feeds[role] = self.feed(role, {n: tensors[n] for n in self.stream_inputs[role]}, extra, 0, frames)
            if role == until:
                break
            tensors[self.produces[role]] = out[self.produces[role]] = runners[role](feeds[role])[0]
        final = self.produces[self.roles[-1]]
        if final in out:  # the output audio, as samples
            out[final] = out[final].reshape(-1)
        return out, feeds
