"""CPU slots: each compute job pins itself to cores of its own, so jobs side by side never share one.

Snakemake keeps the threads of running jobs within --cores; this makes the split exact. A job
that runs on N cores takes N free cores (an exclusive flock on one lock file per core, held
until the process exits; aligned groups of N first, so timing jobs land on the same core sets
run after run) and sets its CPU affinity to them. Timing jobs ask for `bench.threads` cores,
every other compute job for one: on a 16-core workstation with `bench.threads: 2`, eight timing
jobs run at once, each on two cores of its own, and a timing job never shares a core with an
export or a quantization. Lock files live in a node-local directory (`WORKFLOW_SLOT_DIR`,
default /tmp/workflow_lib-slots-<uid>), so two runs on one machine share the split too; on a
cluster each job's allocation is its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)
SLOT_DIR_ENV = "WORKFLOW_SLOT_DIR"


@dataclass
class Slot:
    cores: list[int]
    waited_s: float
    handles: list[IO] = field(repr=False)
    previous: list[int] = field(default_factory=list, repr=False)  # the affinity before the slot was taken

    def release(self) -> None:
        """Free the cores and give the process its old affinity back (a stage run in-process, as tests do)."""
        for handle in self.handles:
            handle.close()
        if self.previous:
            os.sched_setaffinity(0, self.previous)


def slot_dir() -> Path:
    path = Path(os.environ.get(SLOT_DIR_ENV) or f"/tmp/workflow_lib-slots-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def layout(cores: list[int], size: int) -> list[list[int]]:
    """The aligned groups of `size` among `cores` (a remainder smaller than `size` forms none)."""
    return [cores[i : i + size] for i in range(0, len(cores) - size + 1, size)]


def _lock(core: int) -> IO | None:
    handle = open(slot_dir() / f"core-{core}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _try(cores: list[int], size: int) -> tuple[list[int], list[IO]] | None:
    """`size` cores locked, an aligned group if one is free, else any free ones; None if too few are free."""
    for group in [*layout(cores, size), cores]:
        held: list[tuple[int, IO]] = []
        for core in group:
            handle = _lock(core)
            if handle is not None:
                held.append((core, handle))
            if len(held) == size:
                return [c for c, _ in held], [h for _, h in held]
        for _, handle in held:
            handle.close()
    return None


def acquire(size: int, wait: bool = True, poll_s: float = 0.2) -> Slot | None:
    """Take `size` free cores and pin this process to them; None where there is nothing to split (size 0
    means: the whole machine, unpinned) or, with wait=False, when too few cores are free."""
    cores = sorted(os.sched_getaffinity(0))
    if size <= 0 or size > len(cores):
        return None
    t0, logged = time.perf_counter(), False
    while (taken := _try(cores, size)) is None:
        if not wait:
            return None
        if not logged:
            log.info("fewer than %d of cores %s are free; waiting", size, cores)
            logged = True
        time.sleep(poll_s)
    chosen, handles = taken
    os.sched_setaffinity(0, chosen)
    torch = sys.modules.get("torch")
    if torch is not None:  # its thread pool was sized before the affinity changed
        torch.set_num_threads(size)
    return Slot(chosen, round(time.perf_counter() - t0, 3), handles, cores)
