"""CPU slots: every compute job gets cores of its own, so timing jobs side by side never share one."""

import os
import subprocess
import sys
import time

import pytest

from workflow_lib.jobs import slots

HOLD = """
import os, sys, time
from workflow_lib.jobs import slots
slot = slots.acquire(int(sys.argv[1]), wait=sys.argv[2] == "wait")
print("none" if slot is None else ",".join(map(str, sorted(os.sched_getaffinity(0)))), flush=True)
time.sleep(float(sys.argv[3]))
"""


def _hold(tmp_path, size, wait="wait", seconds=3.0):
    env = {**os.environ, slots.SLOT_DIR_ENV: str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(size), wait, str(seconds)], stdout=subprocess.PIPE, text=True, env=env
    )


def test_slots_split_the_cores_into_equal_disjoint_groups():
    assert slots.layout([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3]]
    assert slots.layout([0, 1], 2) == [[0, 1]]
    assert slots.layout([0, 1], 3) == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_a_two_core_job_waits_for_both_cores_that_one_core_jobs_hold(tmp_path):
    """A timing job never shares a core: it gets its two only once the one-core jobs on them are done."""
    one = _hold(tmp_path, 1, seconds=2.0)
    held = one.stdout.readline().strip()
    two = _hold(tmp_path, 2, seconds=0)
    t0 = time.perf_counter()
    got = two.stdout.readline().strip().split(",")
    waited = time.perf_counter() - t0
    if len(os.sched_getaffinity(0)) == 2:
        assert waited > 1.0 and held in got  # it had to wait for the core the one-core job held
    else:
        assert held not in got  # enough other cores: it never takes the held one
    one.wait()
    two.wait()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to give two jobs one each")
def test_two_jobs_get_disjoint_cores_and_a_third_waits_for_one(tmp_path):
    first, second = _hold(tmp_path, 1), _hold(tmp_path, 1)
    cores = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert len(cores) == 2 and all("," not in c for c in cores)  # one core each, not the same one
    n = len(os.sched_getaffinity(0))
    if n == 2:  # every slot is taken: a job that may not wait gets none, one that may, waits
        third = _hold(tmp_path, 1, wait="nowait", seconds=0)
        assert third.stdout.readline().strip() == "none"
        t0 = time.perf_counter()
        fourth = _hold(tmp_path, 1, seconds=0)
        assert fourth.stdout.readline().strip() in cores and time.perf_counter() - t0 > 1.0
        fourth.wait()
    for p in (first, second):
        p.wait()


def test_size_zero_means_the_whole_machine_unpinned():
    assert slots.acquire(0) is None
