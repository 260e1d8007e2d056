"""What every backend hands back: a runner, numpy in and numpy out.

Validation calls it on feeds and compares the outputs; benchmarks call `prepare(feeds)`
once per shape point (inputs placed where the backend wants them, e.g. on the GPU) and
time the returned step with `sync()` and the runner's `timer`. A runner knows nothing
about comparison or timing statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Feeds = dict[str, np.ndarray]


class Runner:
    device = "cpu"  # "cpu" or "cuda": which baseline its timings compare with
    timer = "perf_counter"  # or "cuda_event" for steps that run asynchronously on a CUDA stream

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}  # recorded in sidecars: provider, compile times, ...

    def __call__(self, feeds: Feeds) -> list[np.ndarray]:
        raise NotImplementedError

    def prepare(self, feeds: Feeds) -> Callable[[], Any]:
        return lambda: self(feeds)

    def sync(self) -> None:
        """Wait until a step started by prepare()'s callable has finished."""


def step_at(runner: Runner, spec_json: str, point: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    """A warm runner's step on the component's inputs at a shape point, as (step, sync): what paired timing
    runs in its worker process (analysis/pairing.py)."""
    from ..core.spec import spec_from_json

    component = spec_from_json(spec_json)
    return runner.prepare(component.make_inputs(component.point(point))), runner.sync
