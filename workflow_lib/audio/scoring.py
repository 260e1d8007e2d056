"""A base for scoring chains whose output is audio: another run of the chain (live against offline) is
compared by what a listener gets (LSD, PESQ, STOI), not elementwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..chains.protocol import Scorer
from .metrics import signal_scores


class AudioScorer(Scorer):
    def compare(self, reference: np.ndarray, output: np.ndarray) -> dict[str, Any]:
        n = min(reference.size, output.size)
        return signal_scores(reference.reshape(-1)[:n], output.reshape(-1)[:n], self.chain.sample_rate)
