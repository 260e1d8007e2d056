"""The workflow on a real single-node SLURM cluster (Debian packages), against a local run."""

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import TESTS, seeded, tiny_byo_component, write_config
from safetensors.torch import save_file

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _can_run_slurm() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start munge/slurmctld/slurmd/slurmdbd"
    if not shutil.which("apt-get"):
        return "needs Debian's apt-get for the SLURM packages"
    if os.environ.get("SKIP_SLURM_TEST"):
        return "SKIP_SLURM_TEST is set"
    return None


def test_slurm_run_matches_local_run(tmp_path):
    reason = _can_run_slurm()
    if reason:
        pytest.skip(reason)
    from tinymodels import TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "config").mkdir()
    write_config(
        tmp_path,
        {
            "variants": ["fp32"],
            "backends": ["pytorch", "onnxruntime", "openvino", "tensorrt"],
            "tensorrt": {"compute_capabilities": ["SM86"], "optimization_level": 0, "cache_dir": "engine_cache"},
            "bench": {"warmup": 1, "min_iterations": 3, "max_seconds": 0.0, "points": ["opt"], "bootstrap": 200},
            "models": {"mine": {"components": {"net": tiny_byo_component(str(tmp_path / "w.safetensors"))}}},
        },
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.run(
        ["bash", str(TESTS / "cluster" / "run_slurm.sh"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    logs = {
        n: (tmp_path / n).read_text()[-3000:]
        for n in ("local.log", "slurm.log", "cluster_up.log")
        if (tmp_path / n).exists()
    }
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{logs}"

    sacct = [line.split("|") for line in (tmp_path / "sacct.txt").read_text().splitlines() if line]
    jobs = {row[0]: row for row in sacct if row[1] != "hostname"}  # minus the cluster's own smoke test
    assert all(row[3] == "COMPLETED" and row[4] == "0:0" for row in jobs.values()), jobs
    submitted = dict(
        re.findall(
            r"submitted with SLURM jobid (\d+) \(log: \S+/slurm_logs/rule_(\w+)/", (tmp_path / "slurm.log").read_text()
        )
    )
    assert set(submitted) == set(jobs)  # every sbatch job is one the workflow submitted, and completed
    # every non-local rule went through sbatch (the deployment decision too: it times its two fastest candidates
    # against each other); checkpoints, summary, bundle and report are local rules; the probe found no GPU on the
    # node, so no TensorRT marker or benchmark was planned
    assert sorted(submitted.values()) == ["bench_component"] * 3 + [
        "build_engine",
        "export_onnx",
        "graph_variant",
        "openvino_ir",
        "probe_host",
        "select_deploy",
        "validate_cpu",
        "validate_cpu",
    ], submitted

    local, slurm = tmp_path / "local" / "results", tmp_path / "slurm" / "results"
    for rel in ("onnx/export/mine/net.onnx.json", "onnx/fp32/mine/net.onnx.json"):
        assert (
            json.loads((local / rel).read_text())["onnx_sha256"] == json.loads((slurm / rel).read_text())["onnx_sha256"]
        )
    for rel in ("validation/mine/net.onnxruntime.fp32.json", "validation/mine/net.openvino.fp32.json"):
        a, b = json.loads((local / rel).read_text()), json.loads((slurm / rel).read_text())
        assert (a["status"], a.get("reason")) == (b["status"], b.get("reason"))
    assert (slurm / "engines/fp32/mine/net.engine").stat().st_size > 0
    assert (slurm / "report/index.html").is_file() and (slurm / "bench/summary.csv").is_file()
    assert json.loads((slurm / "deploy/mine/manifest.json").read_text())["components"]["net"]["cpu"]["series"]
