"""The real snakemake CLI on a tiny copy of the demo config, in a temp directory."""

import json
import os
import shutil
import time

import polars as pl

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
            for gpu_backend in ("tensorrt", "onnxruntime_cuda"):
                marker = json.loads((r / "validation" / "svc_demo" / f"{c}.{gpu_backend}.{p}.json").read_text())
                assert marker["status"] in ("passed", "skipped")
                if marker["status"] == "skipped":
                    assert marker["reason"]
        ov = json.loads((r / "validation" / "svc_demo" / f"{c}.openvino.fp32.json").read_text())
        assert ov["status"] == "passed" and set(ov["parity"]["points"]) == {"min", "opt", "max"}
        assert (r / "openvino" / "svc_demo" / f"{c}.fp32.bin").stat().st_size > 0
    flow = json.loads((r / "onnx" / "svc_demo" / "flow_decoder.onnx.json").read_text())
    assert flow["method"] == "inverse" and [i["name"] for i in flow["graph"]["inputs"]] == ["z", "mask", "cond"]
    assert not list(r.rglob(".*.tmp")) and not list(r.rglob(".*.onnx"))  # no temp leftovers


def test_second_run_has_nothing_to_do(demo_run):
    assert planned_jobs(demo_run) == {}


def test_a_copied_run_plans_nothing(demo_run, tmp_path):
    """Provenance holds no absolute paths: the same run copied elsewhere is up to date."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(demo_run, copy, symlinks=True)
    assert planned_jobs(copy) == {}


def test_bootstrap_reruns_only_what_reads_it(demo_run):
    """bench.bootstrap feeds the CIs of the summary and the deployment choice, never the timings."""
    cfg = tiny_svc_config()
    cfg["bench"]["bootstrap"] = 300
    write_config(demo_run, cfg)
    try:
        out = snakemake(demo_run, "-n").stdout
        jobs = planned_jobs(demo_run)
        assert set(jobs) - {"all"} == {"bench_summary", "select_deploy", "bench_e2e", "report"}, jobs
        # the one e2e job is `best`, whose bundle the deployment step rewrites
        assert jobs["bench_e2e"] == 1 and "assignment=best" in out.replace(" ", "")
    finally:
        write_config(demo_run, tiny_svc_config())


def test_deployment_bundle_and_best_chain(demo_run):
    r = demo_run / "results"
    manifest = json.loads((r / "deploy/svc_demo/manifest.json").read_text())
    assert set(manifest["components"]) == set(COMPONENTS)
    for comp, per_device in manifest["components"].items():
        pick = per_device["cpu"]
        assert (r / "deploy/svc_demo" / pick["file"]).stat().st_size > 0
        assert pick["backend"] == "pytorch" or (pick["validated"] and pick["ci"][0] > 1)
    best = json.loads((r / "bench/svc_demo/e2e/best.csv.json").read_text())
    assert best["status"] == "measured", best.get("reason")
    e2e = r / "bench/svc_demo/e2e"
    for name in ("best", "pytorch", "onnxruntime_fp16"):
        row = pl.read_csv(e2e / f"{name}.csv").row(0, named=True)
        assert row["fidelity"] in ("passed", "failed") and row["snr_db"] > 0 and row["lsd_db"] >= 0
        assert (e2e / f"{name}.wav").stat().st_size > 1000 and (e2e / f"{name}.reference.wav").stat().st_size > 1000
    assert pl.read_csv(e2e / "pytorch.csv")["snr_db"].to_list()[0] == float("inf")  # the reference itself
    html = (r / "report/index.html").read_text()
    assert html.index('<section id="ship">') < html.index('<section id="summary">')
    measured = [p for p in e2e.glob("*.csv.json") if json.loads(p.read_text())["status"] == "measured"]
    assert html.count("<audio controls") == 1 + len(measured)  # the reference and every chain that ran
    assert "openvino.fp32@cpu" in html


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
    assert jobs["build_engine"] == 2 and jobs["openvino_ir"] == 1
    assert jobs["validate_cpu"] == 3 and jobs["validate_gpu"] == 4  # ORT fp32/fp16 + OpenVINO; TensorRT + ORT CUDA
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


def test_e2e_jobs_depend_only_on_what_their_assignment_uses(workdir):
    write_config(workdir, tiny_svc_config())
    jobs = planned_jobs(workdir, "results/bench/svc_demo/e2e/pytorch.csv")
    assert set(jobs) == {"seed_checkpoint", "bench_e2e"}, jobs
    jobs = planned_jobs(workdir, "results/bench/svc_demo/e2e/onnxruntime.csv")
    assert set(jobs) == {"seed_checkpoint", "export_onnx", "simplify_onnx", "validate_cpu", "bench_e2e"}, jobs
    assert jobs["validate_cpu"] == 5  # ORT fp32 markers only: no engines, no OpenVINO, no fp16


def test_touched_but_unchanged_large_files_rerun_nothing(workdir):
    """Over 1 MB Snakemake would fall back to mtime; the default profile makes it compare content."""
    import torch
    from safetensors.torch import save_file
    from tinymodels import TinyConv
    from conftest import tiny_byo_component

    torch.manual_seed(0)
    save_file(TinyConv(hidden=12000).state_dict(), str(workdir / "big.safetensors"))
    assert (workdir / "big.safetensors").stat().st_size > 1_500_000
    cfg = {"precisions": ["fp32"], "simplify": {"tool": "none"},
           "models": {"mine": {"components": {"net": tiny_byo_component(
               str(workdir / "big.safetensors"), kwargs={"channels": 8, "hidden": 12000})}}}}
    write_config(workdir, cfg)
    target = "results/onnx_sim/mine/net.onnx"
    snakemake(workdir, target)
    assert (workdir / "results/onnx/mine/net.onnx").stat().st_size > 1_500_000
    for path in ("big.safetensors", "results/onnx/mine/net.onnx"):
        os.utime(workdir / path)
        assert planned_jobs(workdir, target) == {}, path
    state = TinyConv(hidden=12000).state_dict()  # other seed, other bytes
    save_file(state, str(workdir / "big.safetensors"))
    assert set(planned_jobs(workdir, target)) == {"export_onnx", "simplify_onnx"}
