"""FLOP counts of known modules, the CPU peak estimate, the roofline columns of the summary, and the
memory cap every job runs under."""

import os

import numpy as np
import pytest
from torch import nn

from workflow_lib.analysis.results import write_results
from workflow_lib.analysis.speedups import summarize
from workflow_lib.core.spec import component_spec
from workflow_lib.jobs import host
from workflow_lib.jobs.timing import stats
from workflow_lib.runtimes import flops


class ConvLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 16, 3, padding=1)
        self.lin = nn.Linear(16, 4)

    def forward(self, x):
        return self.lin(self.conv(x).transpose(1, 2))


def test_flops_of_a_known_conv_and_linear():
    spec = component_spec(
        "m",
        "c",
        {
            "class": "x.Y",
            "checkpoint": "w.safetensors",
            "inputs": [{"name": "x", "shape": ["batch", 8, "time"]}],
            "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "time": {"min": 10, "opt": 20, "max": 40}},
            "gates": {"fp32": {"atol": 0, "rtol": 0}, "fp16": {"atol": 0, "rtol": 0}},
        },
    )
    per_point = flops.per_point(ConvLinear(), spec)
    # conv: 2 * out_ch * in_ch * k per output frame; linear: 2 * in * out per frame (biases not counted)
    expected = {
        p: 2 * b * t * (16 * 8 * 3 + 16 * 4) for p, (b, t) in {"min": (1, 10), "opt": (2, 20), "max": (4, 40)}.items()
    }
    assert per_point == expected


def test_cpu_peak_is_an_estimate_that_says_how():
    peak = host.cpu_peak_gflops(2)
    if peak["gflops"] is None:
        pytest.skip(peak["source"])
    assert peak["gflops"] > 0 and peak["source"].startswith("estimate: 2 cores x")


def test_summary_reports_achieved_gflops_and_fraction_of_peak(tmp_path):
    ms = list(10.0 * np.random.default_rng(0).uniform(0.99, 1.01, 30))
    row = {
        "model": "m",
        "component": "c",
        "backend": "pytorch",
        "variant": "fp32",
        "device": "cpu",
        "series": "pytorch.fp32@cpu",
        "point": "opt",
        **stats(ms),
        "peak_gflops": 400.0,
        "peak_source": "estimate: ...",
    }
    write_results([row], {("cpu", "opt"): ms}, tmp_path / "a.csv", {"status": "measured"})
    table, _ = summarize([str(tmp_path / "a.csv")], 200, {("m", "c", "opt"): 10**9}, {"cpu": 200.0})
    r = table.row(0, named=True)
    assert r["gflop"] == 1.0 and r["gflops"] == pytest.approx(100.0, rel=0.02)
    assert (
        r["peak_gflops"] == 200.0
        and r["peak_source"] == "config"
        and r["peak_fraction"] == pytest.approx(0.5, rel=0.02)
    )
    table, _ = summarize([str(tmp_path / "a.csv")], 200, {("m", "c", "opt"): 10**9}, {})
    assert table.row(0, named=True)["peak_fraction"] == pytest.approx(0.25, rel=0.02)  # the row's own estimate


def test_a_job_cannot_map_more_than_its_share_of_the_machine():
    """A runaway runtime fails its own job with an allocation error instead of waking the OOM killer."""
    import subprocess
    import sys

    code = (
        "import numpy as np, resource\n"
        "from workflow_lib.jobs import host\n"
        "limit = host.cap_memory()\n"
        "assert resource.getrlimit(resource.RLIMIT_DATA)[0] == limit\n"
        "try:\n"
        "    np.ones(limit, dtype=np.uint8)\n"
        "except MemoryError:\n"
        "    print('refused', limit)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert out.startswith("refused") and int(out.split()[1]) == int(total * host.MEMORY_SHARE)
