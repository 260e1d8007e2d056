"""Faults: exporter errors, failure records, --keep-going partial runs, a SIGKILLed job."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, TESTS, seeded, snakemake, tiny_byo_component, write_config
from safetensors.torch import save_file

from workflow_lib.core.errors import StageError
from workflow_lib.core.spec import component_spec
from workflow_lib.stages import export


def test_unexportable_op_names_op_component_and_stage(tmp_path):
    from tinymodels import BesselOp

    save_file(BesselOp().state_dict(), str(tmp_path / "b.safetensors"))
    spec = component_spec(
        "mine",
        "bessel",
        {**tiny_byo_component(str(tmp_path / "b.safetensors")), "class": "tinymodels.BesselOp", "kwargs": {}},
    )
    with pytest.raises(
        StageError,
        match=r"mine/bessel: dynamo export failed: DispatchError: No ONNX function found "
        r"for <OpOverload\(op='prims.bessel_j0'",
    ):
        export.export(spec, tmp_path / "bessel.onnx")
    assert not (tmp_path / "bessel.onnx").exists()


def test_failed_stage_leaves_a_record_that_success_clears(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = component_spec("mine", "net", tiny_byo_component(str(tmp_path / "w.safetensors")))
    argv = ["--spec", spec.to_json(), "--out", str(tmp_path / "net.onnx")]
    with pytest.raises(SystemExit) as exit_info:
        export.main(argv)
    assert exit_info.value.code == 1
    record = json.loads((tmp_path / "results/failures/mine/net.export.json").read_text())
    assert record["stage"] == "export" and "checkpoint not found" in record["error"]
    from tinymodels import TinyConv

    save_file(TinyConv().state_dict(), str(tmp_path / "w.safetensors"))
    export.main(argv)
    assert not (tmp_path / "results/failures/mine/net.export.json").exists()


def _two_component_config(workdir):
    from tinymodels import TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(workdir / "good.safetensors"))
    save_file(TinyConv(hidden=32).state_dict(), str(workdir / "broken.safetensors"))  # wrong shapes for hidden=16
    comps = {
        "good": tiny_byo_component(str(workdir / "good.safetensors")),
        "broken": tiny_byo_component(str(workdir / "broken.safetensors")),
    }
    return {
        "variants": ["fp32"],
        "tensorrt": {"compute_capabilities": ["SM86"], "optimization_level": 0},
        "backends": ["pytorch", "onnxruntime", "tensorrt"],
        "bench": {"warmup": 1, "min_iterations": 3, "max_seconds": 0.0, "bootstrap": 200},
        "models": {"mine": {"components": comps}},
    }


@pytest.mark.slow
def test_keep_going_finishes_other_components_and_reports_the_failure(workdir):
    write_config(workdir, _two_component_config(workdir))
    proc = snakemake(workdir, "--keep-going", check=False)
    assert proc.returncode != 0
    r = workdir / "results"
    assert (r / "engines/fp32/mine/good.engine").stat().st_size > 0
    assert json.loads((r / "validation/mine/good.onnxruntime.fp32.json").read_text())["status"] == "passed"
    assert (r / "bench/mine/good.onnxruntime.fp32.csv").is_file()
    assert not (r / "onnx/export/mine/broken.onnx").exists()
    html = (r / "report/index.html").read_text()
    assert '<section id="failures">' in html and "broken" in html
    assert "does not fit tinymodels.TinyConv: shape mismatch" in html
    assert (r / "failures/mine/broken.export.json").is_file()


@pytest.mark.slow
def test_sigkill_mid_export_leaves_no_artifact_and_rerun_completes(workdir):
    cfg = _two_component_config(workdir)
    del cfg["models"]["mine"]["components"]["broken"]
    write_config(workdir, cfg)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
        "results/onnx/export/mine/good.onnx",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    onnx_dir = workdir / "results/onnx/export/mine"
    deadline = time.time() + 120
    while time.time() < deadline and not list(onnx_dir.glob(".good.onnx.*")):  # the exporter is writing
        time.sleep(0.02)
    assert list(onnx_dir.glob(".good.onnx.*")), "export never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (onnx_dir / "good.onnx").exists() and not (onnx_dir / "good.onnx.json").exists()
    snakemake(workdir, "--unlock")  # a SIGKILLed snakemake cannot release its own lock
    again = snakemake(workdir, "results/onnx/export/mine/good.onnx")
    assert "export_onnx" in again.stdout + again.stderr
    assert json.loads((onnx_dir / "good.onnx.json").read_text())["parity"]["ok"]


@pytest.mark.slow
def test_a_variant_that_cannot_be_made_costs_only_itself(workdir):
    """One component's INT8 variant fails (an elementwise model has nothing to quantize: its stage raises). The
    rest is built, timed and decided, two components with fixed trailing dimensions ([n, 1024], [n, 1, 219])
    through the whole INT8 search included; the deployment, the bundle and the report exist and name the
    failure; the run's exit code says it failed, unless `failures.fail_run: false`."""
    from tinymodels import FixedBins, FixedFrames, Gain, TinyConv

    seeded(0)
    save_file(TinyConv().state_dict(), str(workdir / "conv.safetensors"))
    save_file(Gain().state_dict(), str(workdir / "gain.safetensors"))
    gain = {**tiny_byo_component(str(workdir / "gain.safetensors")), "class": "tinymodels.Gain", "kwargs": {}}
    components = {"conv": tiny_byo_component(str(workdir / "conv.safetensors")), "gain": gain}
    for cls, name, shape in ((FixedFrames, "frames", ["n", 1024]), (FixedBins, "cqt", ["n", 1, 219])):
        save_file(cls().state_dict(), str(workdir / f"{name}.safetensors"))
        components[name] = {
            "class": f"tinymodels.{cls.__name__}",
            "checkpoint": str(workdir / f"{name}.safetensors"),
            "inputs": [{"name": name, "shape": shape}],
            "outputs": ["y"],
            "dims": {"n": {"min": 1, "opt": 8, "max": 64}},
        }
    cfg = {
        "variants": ["fp32", "int8"],
        "backends": ["pytorch", "onnxruntime"],
        "bench": {"warmup": 1, "min_iterations": 6, "max_seconds": 0.0, "bootstrap": 200},
        "models": {"mine": {"components": components}},
    }
    write_config(workdir, cfg)
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0 and "1 variant(s) failed" in proc.stdout + proc.stderr
    r = workdir / "results"
    made = json.loads((r / "onnx/int8/mine/gain.onnx.json").read_text())
    assert made["made"] is False and "nodes to quantize" in made["reason"]
    assert (r / "onnx/int8/mine/conv.onnx").stat().st_size > 0  # the other component's INT8 is made and timed
    assert (r / "bench/mine/conv.onnxruntime.int8.csv").is_file()
    manifest = json.loads((r / "deploy/mine/manifest.json").read_text())
    assert set(manifest["components"]) == {"conv", "gain", "frames", "cqt"} and (r / "deploy/mine/run.py").is_file()
    for name in ("frames", "cqt"):  # every candidate of the search judged, a graph written
        search = json.loads((r / f"onnx/int8/mine/{name}.onnx.json").read_text())["search"]
        assert search["candidates"] and all(c["verdict"] in ("passed", "failed") for c in search["candidates"])
    assert [f["series"] for f in manifest["failures"]] == ["onnxruntime.int8"]
    assert manifest["failures"][0]["component"] == "gain" and manifest["failures"][0]["log"]
    html = (r / "report/index.html").read_text()
    assert '<section id="failures">' in html and "gain" in html and "quantize" in html
    cfg["failures"] = {"fail_run": False}
    write_config(workdir, cfg)
    assert snakemake(workdir, check=False).returncode == 0  # the same failure, and a run that passes
