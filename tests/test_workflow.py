"""The real snakemake CLI on a tiny copy of the demo config, in a temp directory."""

import json
import os
import time

import pytest

from conftest import REPO, planned_jobs, snakemake, tiny_svc_config, write_config

COMPONENTS = ["content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder"]


def planned_components(workdir):
    """Components named in the wildcards of the jobs a dry run would execute."""
    out = snakemake(workdir, "-n").stdout
    return {part.split("=", 1)[1] for line in out.splitlines() if line.strip().startswith("wildcards:")
            for part in line.split(":", 1)[1].replace(" ", "").split(",") if part.startswith("component=")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "config").mkdir()
    write_config(workdir, tiny_svc_config())
    t0 = time.time()
    snakemake(workdir)
    print(f"tiny demo run: {time.time() - t0:.0f} s")
    return workdir


def test_full_run_produces_every_artifact(demo_run):
    r = demo_run / "results"
    for c in COMPONENTS:
        for stage in ("onnx", "onnx_sim", "onnx_fp16"):
            assert (r / stage / "svc_demo" / f"{c}.onnx").stat().st_size > 0
            assert json.loads((r / stage / "svc_demo" / f"{c}.onnx.json").read_text())["component"] == c
        for p in ("fp32", "fp16"):
            assert (r / "engines" / "svc_demo" / f"{c}.{p}.engine").stat().st_size > 0
            ort = json.loads((r / "validation" / "svc_demo" / f"{c}.onnxruntime.{p}.json").read_text())
            assert ort["status"] == "passed"
            trt_marker = json.loads((r / "validation" / "svc_demo" / f"{c}.tensorrt.{p}.json").read_text())
            assert trt_marker["status"] in ("passed", "skipped")
            if trt_marker["status"] == "skipped":
                assert trt_marker["reason"]
    flow = json.loads((r / "onnx" / "svc_demo" / "flow_decoder.onnx.json").read_text())
    assert flow["method"] == "inverse" and [i["name"] for i in flow["graph"]["inputs"]] == ["z", "mask", "cond"]
    assert not list(r.rglob(".*.tmp")) and not list(r.rglob(".*.onnx"))  # no temp leftovers


def test_second_run_has_nothing_to_do(demo_run):
    assert planned_jobs(demo_run) == {}


def test_report_reruns_when_a_result_changes_and_only_then(demo_run):
    summary = demo_run / "results/bench/summary.csv"
    original = summary.read_bytes()
    os.utime(summary)  # newer, same bytes: not a change
    assert planned_jobs(demo_run) == {}
    summary.write_bytes(original + b"\n")
    try:
        assert set(planned_jobs(demo_run)) - {"all"} == {"report"}
    finally:
        summary.write_bytes(original)
    assert planned_jobs(demo_run) == {}


def test_changing_one_checkpoint_reruns_only_its_chain(demo_run):
    from safetensors.torch import load_file, save_file

    ckpt = demo_run / "results/checkpoints/svc_demo/mel_projection.safetensors"
    os.utime(ckpt)  # touched, same bytes: snakemake checksums files this small and reruns nothing
    assert planned_jobs(demo_run) == {}
    state = load_file(str(ckpt))
    state["proj.bias"] = state["proj.bias"] + 0.01
    save_file(state, str(ckpt))
    jobs = planned_jobs(demo_run)
    assert planned_components(demo_run) == {"mel_projection"}
    assert jobs["export_onnx"] == 1 and jobs["simplify_onnx"] == 1 and jobs["fp16_onnx"] == 1
    assert jobs["build_engine"] == 2 and jobs["validate_onnx"] == 2 and jobs["validate_engine"] == 2
    assert "seed_checkpoint" not in jobs


def test_changing_one_components_config_reruns_only_its_chain(demo_run):
    cfg = tiny_svc_config()
    cfg["models"]["svc_demo"]["components"]["pitch_encoder"]["tolerance"]["fp16"]["atol"] = 0.05
    write_config(demo_run, cfg)
    try:
        # pitch_encoder's chain only (mel_projection's pending chain from the previous test aside)
        assert planned_components(demo_run) - {"mel_projection"} == {"pitch_encoder"}
    finally:
        write_config(demo_run, tiny_svc_config())


def test_lint_reports_only_the_environment_note():
    """The one lint left asks for conda/container envs; this workflow ships a pip venv instead."""
    proc = snakemake(REPO, "--lint", check=False)
    lints = {line.strip().lstrip("* ") for line in proc.stdout.splitlines() if line.strip().startswith("* ")}
    assert lints <= {"Specify a conda environment or container for each rule.:"}, proc.stdout


def test_slurm_profile_dry_run_needs_no_cluster(demo_run):
    proc = snakemake(demo_run, "--profile", str(REPO / "profiles/slurm"), "--dry-run")
    assert "This was a dry-run" in proc.stdout
