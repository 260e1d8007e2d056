"""CPU slots: each compute job pins itself to its own set of cores, so jobs side by side never share one.

Snakemake keeps the threads of running jobs within --cores; this makes the split exact. The
cores this process may use are cut into slots of `size` cores; a job takes the first free
slot (an exclusive flock on a file named after the slot's cores, held until the process
exits) and sets its CPU affinity to it. So on a 16-core workstation with `bench.threads: 2`
eight timing jobs run at once, each on two cores of its own, and a timing job never shares
a core with an export or a quantization. Lock files live in a node-local directory
(`WORKFLOW_SLOT_DIR`, default /tmp/workflow_lib-slots-<uid>), so two runs on one machine
share the split too; on a cluster each job's allocation is its own.
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
    handle: IO = field(repr=False)

    def release(self) -> None:
        self.handle.close()


def slot_dir() -> Path:
    path = Path(os.environ.get(SLOT_DIR_ENV) or f"/tmp/workflow_lib-slots-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def layout(cores: list[int], size: int) -> list[list[int]]:
    """The slots `cores` hold: consecutive groups of `size` (a remainder smaller than `size` is left unused)."""
    return [cores[i:i + size] for i in range(0, len(cores) - size + 1, size)]


def acquire(size: int, wait: bool = True, poll_s: float = 0.2) -> Slot | None:
    """Take a free slot of `size` cores and pin this process to it; None where there is nothing to split
    (size 0 means: the whole machine) or, with wait=False, when every slot is taken."""
    cores = sorted(os.sched_getaffinity(0))
    if size <= 0 or size > len(cores):
        return None
    slots = layout(cores, size)
    t0, logged = time.perf_counter(), False
    while True:
        for slot in slots:
            handle = open(slot_dir() / f"cores-{'-'.join(map(str, slot))}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.sched_setaffinity(0, slot)
            torch = sys.modules.get("torch")
            if torch is not None:  # its thread pool was sized before the affinity changed
                torch.set_num_threads(size)
            return Slot(slot, round(time.perf_counter() - t0, 3), handle)
        if not wait:
            return None
        if not logged:
            log.info("all %d slots of %d cores are taken; waiting for one", len(slots), size)
            logged = True
        time.sleep(poll_s)
