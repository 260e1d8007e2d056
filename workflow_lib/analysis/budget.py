"""Budgets in work, not seconds: how far a search may go.

A search that stops when its seconds run out ships something else on a slower machine. So a search is
bounded by how many steps of work it may take (candidates built, assignments tried): two machines of
different speed take the same steps and ship the same thing. Seconds are recorded, and a time box stays
only as a safety stop: a search it stops is marked cut short, and the manifest and report say so.
"""

from __future__ import annotations

import time


class Budget:
    def __init__(self, steps: int, seconds: float | None, steps_key: str, seconds_key: str):
        self.steps, self.seconds = int(steps), seconds
        self.steps_key, self.seconds_key = steps_key, seconds_key
        self.used, self.t0 = 0, time.perf_counter()
        self.stopped: str | None = None  # why the search stopped early, if it did
        self.cut_short = False  # stopped by the safety time box: another machine may have gone further

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def take(self, steps: int = 1) -> bool:
        """Whether `steps` more steps may be taken (and count them); False records why not."""
        if self.used + steps > self.steps:
            self.stopped = self.stopped or f"work budget of {self.steps} spent ({self.steps_key})"
            return False
        if self.seconds is not None and self.used and self.elapsed() > self.seconds:  # the first step always runs
            self.stopped = (
                self.stopped or f"cut short by the safety time box of {self.seconds:g} s ({self.seconds_key})"
            )
            self.cut_short = True
            return False
        self.used += steps
        return True

    def record(self) -> dict:
        return {
            "steps": self.steps,
            "used": self.used,
            "seconds": round(self.elapsed(), 2),
            "time_box_s": self.seconds,
            "cut_short": self.cut_short,
            "stopped": self.stopped,
        }
