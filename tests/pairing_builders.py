"""Candidates for paired-timing tests: steps of a known duration (a real sleep, in a real worker process)."""

import time


def sleeper(ms: float):
    return (lambda: time.sleep(ms / 1e3)), (lambda: None)


def broken():
    return 1 / 0
