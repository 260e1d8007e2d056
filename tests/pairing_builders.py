"""Candidates for paired-timing tests: steps of a known duration (a real sleep, in a real worker process)."""

import time


def sleeper(ms: float):
    return (lambda: time.sleep(ms / 1e3)), (lambda: None)


def broken():
    return 1 / 0


def logger(path: str, name: str):
    """A step that appends its name to a shared file: the order the parent ran the two sides in."""

    def step():
        with open(path, "a") as f:
            f.write(name + "\n")

    return step, (lambda: None)
