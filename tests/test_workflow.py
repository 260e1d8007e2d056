"""The real snakemake CLI on a tiny copy of the demo config, in a temp directory."""

import json
import os
import shutil
import time

import polars as pl
import pytest
from conftest import (
    REPO,
    planned_jobs,
    probed,
    repo_copy,
    sensor_model,
    snakemake,
    tiny_svc_config,
    write_config,
)

COMPONENTS = ["content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder"]
pytestmark = pytest.mark.slow


def planned_components(workdir):
    """Components named in the wildcards of the jobs a dry run would execute."""
    out = snakemake(workdir, "-n").stdout
    return {
        part.split("=", 1)[1]
        for line in out.splitlines()
        if line.strip().startswith("wildcards:")
        for part in line.split(":", 1)[1].replace(" ", "").split(",")
        if part.startswith("component=")
    }


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
    host = json.loads((r / "host.json").read_text())
    gpu = host["cuda"]
    for c in COMPONENTS:
        for variant in ("export", "fp32", "fp16", "int8"):
            assert (r / "onnx" / variant / "svc_demo" / f"{c}.onnx").stat().st_size > 0
            assert json.loads((r / "onnx" / variant / "svc_demo" / f"{c}.onnx.json").read_text())["component"] == c
        for variant in ("fp32", "fp16", "int8"):
            engine = json.loads((r / "engines" / variant / "svc_demo" / f"{c}.engine.json").read_text())
            assert engine["built"] or engine["reason"]  # an INT8 graph TensorRT refuses says why
            ort = json.loads((r / "validation" / "svc_demo" / f"{c}.onnxruntime.{variant}.json").read_text())
            assert ort["status"] == "passed" or (variant == "int8" and ort["status"] == "failed" and ort["reason"])
            for gpu_backend in ("tensorrt", "onnxruntime_cuda"):  # planned only where this host can run them
                assert (r / "validation" / "svc_demo" / f"{c}.{gpu_backend}.{variant}.json").exists() == bool(
                    host["runs"].get(f"{gpu_backend}.{variant}", {}).get("devices")
                )
        for variant in ("fp32", "int8"):
            ov = json.loads((r / "validation" / "svc_demo" / f"{c}.openvino.{variant}.json").read_text())
            graph_failed = ov["status"] == "failed" and "graph failed" in ov.get("reason", "")
            assert graph_failed or set(ov["parity"]["points"]) == {"min", "opt", "max"}
            assert (r / "openvino" / variant / "svc_demo" / f"{c}.bin").stat().st_size > 0
        calibration = json.loads((r / "calibration" / "svc_demo" / f"{c}.npz.json").read_text())
        assert calibration["representative"] and calibration["samples"] == 3  # a file per role
        assert calibration["splits"]["scheme"] == "disjoint"
    flow = json.loads((r / "onnx" / "export" / "svc_demo" / "flow_decoder.onnx.json").read_text())
    assert flow["method"] == "inverse" and [i["name"] for i in flow["graph"]["inputs"]] == ["z", "mask", "cond"]
    if not gpu:
        assert "no CUDA device" in host["runs"]["pytorch.fp16"]["reason"]
        assert not (r / "bench" / "svc_demo" / "vocoder.pytorch.fp16.csv").exists()
    assert not list(r.rglob(".*.tmp")) and not list(r.rglob(".*.onnx"))  # no temp leftovers


def test_only_what_ships_and_pytorch_fp32_are_timed_beyond_the_decision_point(demo_run):
    """bench.prune: every series is timed at deploy.point (what the decision reads); min and max only for PyTorch
    fp32 (every speedup's baseline) and for the series the decision ships."""
    r = demo_run / "results"
    decision = json.loads((r / "decisions" / "svc_demo.json").read_text())
    ships = {(c, f"{e['backend']}.{e['variant']}") for c, per in decision["components"].items() for e in per.values()}
    summary = pl.read_csv(r / "bench" / "summary.csv").filter(pl.col("component") != "chain")
    points = {(c, s.split("@")[0]): set(rows["point"]) for (c, s), rows in summary.group_by(["component", "series"])}
    assert len(points) > len(COMPONENTS) * 3
    for (c, series), timed in points.items():
        full = series == "pytorch.fp32" or (c, series) in ships
        assert timed == ({"min", "opt", "max"} if full else {"opt"}), (c, series, timed)
    assert all((c, s) in points for c, s in ships)


def test_every_job_leaves_a_benchmark_record_and_run_cost_sums_them(demo_run):
    """Each job's Snakemake `benchmark:` record sits where its log does (jobs/ for logs/); benchmarks/run_cost.py
    sums them per stage."""
    import subprocess
    import sys

    r = demo_run / "results"
    logs = {
        p.relative_to(r).as_posix().replace("logs/", "jobs/", 1).removesuffix(".log")
        for p in r.glob("**/logs/**/*.log")
    }
    records = {p.relative_to(r).as_posix().removesuffix(".tsv") for p in r.glob("**/jobs/**/*.tsv")}
    assert len(records) > 50 and records == logs
    out = subprocess.run(
        [sys.executable, REPO / "benchmarks" / "run_cost.py", r, "--top", "3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{len(records)} jobs" in out
    assert all(f" {stage} " in out for stage in ("calibration", "validate", "bench", "deploy", "live", "report"))


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
    cfg["bench"]["bootstrap"] = 400
    write_config(demo_run, cfg)
    try:
        out = snakemake(demo_run, "-n").stdout
        jobs = planned_jobs(demo_run)
        # the decision, and what runs or times what it decided
        decided = {"search_deploy", "live", "bundle", "bench_chain", "bench_shipped"}
        media = {"assignment_media", "live_media"}  # what a person judges of what it decided
        assert set(jobs) - {"all"} == {"bench_summary", "report", "check_failures", *decided, *media}, jobs
        # the one chain job is `best`, whose bundle the deployment step rewrites
        assert jobs["bench_chain"] == 1 and "assignment=best" in out.replace(" ", "")
    finally:
        write_config(demo_run, tiny_svc_config())


def test_deployment_is_decided_on_the_chain_and_best_runs_it(demo_run):
    r = demo_run / "results"
    manifest = json.loads((r / "deploy/svc_demo/manifest.json").read_text())
    assert set(manifest["components"]) == set(COMPONENTS)
    search = manifest["search"][0]
    assert search["device"] == "cpu" and search["tried"] and search["stopped"]
    for per_device in manifest["components"].values():
        chosen = per_device["cpu"]
        assert (r / "deploy/svc_demo" / chosen["file"]).stat().st_size > 0
        assert chosen["backend"] == "pytorch" or (chosen["validated"] and chosen["ci"][0] > 1)
        assert "chain search" in chosen["reason"]
    if search["winner"] is not None and search["fallback"] is None:
        winner = search["tried"][search["winner"]]
        assert winner["passed"] and search["evaluation"]["status"] == "passed" and winner["p50_ms"] > 0
        assert winner["assignment"] == {c: d["cpu"]["series"] for c, d in manifest["components"].items()}
    assert all("evaluation" not in t for t in search["tried"])  # the evaluation files judged the chosen one only
    assert all((t["p50_ms"] is not None) == t["passed"] for t in search["tried"])  # a failed try is not timed
    assert manifest["inputs"]["scheme"] == "disjoint" and all(
        f["sha256"] for files in manifest["inputs"]["roles"].values() for f in files
    )
    assert search["established"] and search["files"]["evaluation"] == ["libri_5703_a.wav"]
    best = json.loads((r / "bench/svc_demo/chain/best.csv.json").read_text())
    assert best["status"] == "measured", best.get("reason")
    chain = r / "bench/svc_demo/chain"
    for name in ("best", "pytorch"):
        row = pl.read_csv(chain / f"{name}.csv").row(0, named=True)
        assert row["fidelity"] in ("passed", "failed") and row["chain_lsd_db"] >= 0 and row["files"] == 1
        assert row["copy_synthesis_stoi"] is not None and row["copy_synthesis_speech_stoi"] is not None
        assert (chain / "media" / f"{name}.wav").stat().st_size > 100_000  # 4 s of resynthesised speech
    assert pl.read_csv(chain / "pytorch.csv")["chain_snr_db"].to_list()[0] == float("inf")  # the reference itself
    # neither runs the chain on the evaluation files again: best reads the search's one reading of them
    assert "chain search's verdict" in best["fidelity"]["scored"]
    shipped = (search["fallback"] or {}).get("evaluation") or search["evaluation"]
    assert best["fidelity"]["verdict"]["status"] == shipped["status"]
    assert "reference run itself" in json.loads((chain / "pytorch.csv.json").read_text())["fidelity"]["scored"]
    assert not (chain / "tensorrt.csv").exists() or json.loads((r / "host.json").read_text())["cuda"]
    html = (r / "report/index.html").read_text()
    assert html.index('<section id="ship">') < html.index('<section id="summary">')
    measured = [p for p in chain.glob("*.csv.json") if json.loads(p.read_text())["status"] == "measured"]
    live = (r / "live/media/svc_demo.wav").stat().st_size > 100
    # the file, PyTorch's resynthesis, every chain measured, the live stream
    assert html.count("<audio controls") == 2 + len(measured) + live
    assert "openvino.fp32@cpu" in html and '<section id="int8">' in html and "Chain search" in html


def test_report_reruns_when_a_result_changes_and_only_then(demo_run):
    summary = demo_run / "results/bench/summary.csv"
    original = summary.read_bytes()
    os.utime(summary)  # newer, same bytes: not a change
    assert planned_jobs(demo_run) == {}
    summary.write_bytes(original + b"\n")
    try:
        assert set(planned_jobs(demo_run)) - {"all"} == {"report", "check_failures"}
    finally:
        summary.write_bytes(original)
    assert planned_jobs(demo_run) == {}


def test_changing_one_checkpoint_reruns_only_its_chain(demo_run):
    """A new mel projection: its graphs, engines, IR, markers and benchmarks, its own calibration set (which
    stores its outputs), the chain's reference and everything scored against it; no other component's
    calibration (the vocoder downstream is calibrated on real speech, not on the projection's output)."""
    from safetensors.torch import load_file, save_file

    ckpt = demo_run / "results/checkpoints/svc_demo/mel_projection.safetensors"
    os.utime(ckpt)  # touched, same bytes: snakemake checksums files this small and reruns nothing
    assert planned_jobs(demo_run) == {}
    original = ckpt.read_bytes()
    state = load_file(str(ckpt))
    state["proj.bias"] = state["proj.bias"] + 0.01
    save_file(state, str(ckpt))
    try:
        jobs = planned_jobs(demo_run)
        assert planned_components(demo_run) == {"mel_projection"}
        bf16 = json.loads((demo_run / "results/host.json").read_text())["native"]["bf16"]  # run only where native
        assert jobs["export_onnx"] == 1 and jobs["graph_variant"] == 4  # fp32, fp16, bf16, int8
        assert jobs["build_engine"] == 4 and jobs["openvino_ir"] == 2 + bf16 and jobs["validate_cpu"] == 5 + bf16
        assert jobs["chain_reference"] == 1 and jobs["chain_calibration"] == 1 and "seed_checkpoint" not in jobs
    finally:
        ckpt.write_bytes(original)  # the same bytes again: nothing is left to rerun for the tests after this
    assert planned_jobs(demo_run) == {}


def test_changing_one_components_config_reruns_only_its_chain(demo_run):
    cfg = tiny_svc_config()
    cfg["models"]["svc_demo"]["components"]["pitch_encoder"]["gates"] = {"fp16": {"atol": 0.05, "rtol": 0.01}}
    write_config(demo_run, cfg)
    try:
        assert planned_components(demo_run) == {"pitch_encoder"}
        jobs = planned_jobs(demo_run)  # the fp16 graph and what checks or times it; never the export
        assert jobs["graph_variant"] == 1 and "export_onnx" not in jobs and "chain_calibration" not in jobs
    finally:
        write_config(demo_run, tiny_svc_config())


def test_lint_reports_only_the_environment_note():
    """The one lint left asks for conda/container envs; this workflow ships a pip venv instead."""
    proc = snakemake(REPO, "--lint", check=False)
    out = proc.stdout + proc.stderr  # snakemake writes its lints to stderr
    lints = {line.strip().lstrip("* ") for line in out.splitlines() if line.strip().startswith("* ")}
    assert lints == {"Specify a conda environment or container for each rule.:"}, out


def test_slurm_profile_dry_run_needs_no_cluster(workdir):
    write_config(workdir, tiny_svc_config())
    proc = snakemake(workdir, "--profile", str(REPO / "profiles/slurm"), "--dry-run")
    assert "This was a dry-run" in proc.stdout and "checkpoint probe_host" in proc.stdout


def test_chain_jobs_depend_only_on_what_their_assignment_uses(workdir):
    cfg = tiny_svc_config()
    cfg["models"]["svc_demo"]["chain"]["assignments"]["onnxruntime"] = {"default": "onnxruntime.fp32"}
    write_config(workdir, cfg)
    probed(workdir)
    jobs = planned_jobs(workdir, "results/bench/svc_demo/chain/pytorch.csv")
    # PyTorch only: the reference reads what PyTorch computed for the sample sets (chain_calibration), no graph
    assert set(jobs) == {"seed_checkpoint", "chain_calibration", "chain_reference", "bench_chain"}, jobs
    jobs = planned_jobs(workdir, "results/bench/svc_demo/chain/onnxruntime.csv")
    assert set(jobs) == {
        "seed_checkpoint",
        "chain_calibration",
        "chain_reference",
        "export_onnx",
        "graph_variant",
        "validate_cpu",
        "bench_chain",
    }, jobs
    assert jobs["validate_cpu"] == 5 and jobs["graph_variant"] == 5  # ORT fp32 only: no engines, OpenVINO, fp16


MAKES_OR_MEASURES = {
    "export_onnx",
    "graph_variant",
    "build_engine",
    "openvino_ir",
    "validate_cpu",
    "bench_component",
    "chain_reference",
    "chain_calibration",
}  # jobs that make a graph, an engine or an IR, validate one, time a component, or capture what PyTorch does


def test_editing_the_chain_scoring_reruns_only_what_scores_chains(demo_run, tmp_path):
    """The layering the import contract checks, seen in behaviour: a copy of the workflow whose chain scoring
    changed plans the chain jobs, the chain search, the summary and the report, and nothing else; the plug-in's
    own scoring module (chain.scoring) plans no graph, engine, validation or component benchmark."""
    copy = repo_copy(tmp_path)
    with open(copy / "workflow_lib" / "models" / "svc" / "scoring.py", "a") as f:
        f.write("\n# a fix in how the demo's chain is judged\n")
    jobs = planned_jobs(demo_run, snakefile=copy / "Snakefile")
    assert not set(jobs) & MAKES_OR_MEASURES and {"bench_chain", "search_deploy"} <= set(jobs), jobs
    copy = repo_copy(tmp_path / "again")
    with open(copy / "workflow_lib" / "stages" / "chain_bench.py", "a") as f:
        f.write("\n# a fix in how chains are timed and scored\n")
    jobs = planned_jobs(demo_run, snakefile=copy / "Snakefile")
    assert set(jobs) - {"all"} == {"bench_chain", "assignment_media", "bench_summary", "report", "check_failures"}, jobs
    with open(copy / "workflow_lib" / "models" / "svc" / "chain.py", "a") as f:  # the plug-in feeds calibration too
        f.write("\n# a fix\n")
    jobs = planned_jobs(demo_run, snakefile=copy / "Snakefile")
    assert {"chain_reference", "chain_calibration", "graph_variant", "search_deploy"} <= set(jobs)
    assert "export_onnx" not in jobs and "bench_component" in jobs  # INT8 recalibrated and retimed; exports untouched


def test_touched_but_unchanged_large_files_rerun_nothing(workdir):
    """Over 1 MB Snakemake would fall back to mtime; the default profile makes it compare content."""
    import torch
    from conftest import tiny_byo_component
    from safetensors.torch import save_file
    from tinymodels import TinyConv

    torch.manual_seed(0)
    save_file(TinyConv(hidden=12000).state_dict(), str(workdir / "big.safetensors"))
    assert (workdir / "big.safetensors").stat().st_size > 1_500_000
    cfg = {
        "variants": ["fp32"],
        "simplify": {"tool": "none"},
        "backends": ["pytorch", "onnxruntime"],
        "models": {
            "mine": {
                "components": {
                    "net": tiny_byo_component(str(workdir / "big.safetensors"), kwargs={"channels": 8, "hidden": 12000})
                }
            }
        },
    }
    write_config(workdir, cfg)
    target = "results/onnx/fp32/mine/net.onnx"
    snakemake(workdir, target)
    assert (workdir / "results/onnx/export/mine/net.onnx").stat().st_size > 1_500_000
    for path in ("big.safetensors", "results/onnx/export/mine/net.onnx"):
        os.utime(workdir / path)
        assert planned_jobs(workdir, target) == {}, path
    state = TinyConv(hidden=12000).state_dict()  # other seed, other bytes
    save_file(state, str(workdir / "big.safetensors"))
    assert set(planned_jobs(workdir, target)) == {"export_onnx", "graph_variant"}


def test_a_chain_you_bring_runs_end_to_end_with_no_edit_outside_its_module_and_config(workdir):
    """Two chains a user brings, in one run beside each other: an audio one of another shape than the demo's
    (tests/tiny_denoise_chain.py: denoiser -> vocoder), and one that is not audio at all (a sensor chain on
    .npy recordings). Each goes through its reference, its components' sample sets, timing, INT8, every chain
    job, the chain search and its bundle, and gets its own manifest and report rows."""
    import subprocess
    import sys

    import numpy as np
    from test_chains import denoise_model

    cfg = tiny_svc_config()
    cfg["models"] = {"denoise": denoise_model(workdir), "sensor": sensor_model(workdir)}
    cfg["backends"] = ["pytorch", "onnxruntime"]
    write_config(workdir, cfg)
    snakemake(workdir)
    r = workdir / "results"
    for c in ("encoder", "head"):
        assert json.loads((r / f"calibration/sensor/{c}.npz.json").read_text())["source"].startswith("the chain")
        int8 = json.loads((r / f"onnx/int8/sensor/{c}.onnx.json").read_text())
        assert int8["output_kind"] == "tensor" and int8["search"]["candidates"]
    sensor = json.loads((r / "deploy/sensor/manifest.json").read_text())
    assert set(sensor["components"]) == {"encoder", "head"} and sensor["search"][0]["tried"]
    assert sensor["search"][0]["evaluation"] or sensor["search"][0]["fallback"]
    recording = workdir / "recordings/rec_07.npy"
    out = workdir / "pred.npy"
    proc = subprocess.run(
        [sys.executable, r / "deploy/sensor/run.py", "convert", recording, out], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (1, 8, np.load(recording).shape[1])
    for c in ("denoiser", "vocoder"):
        assert json.loads((r / f"calibration/denoise/{c}.npz.json").read_text())["source"].startswith("the chain")
        assert (r / f"onnx/int8/denoise/{c}.onnx").stat().st_size > 0
    manifest = json.loads((r / "deploy/denoise/manifest.json").read_text())
    assert set(manifest["components"]) == {"denoiser", "vocoder"} and manifest["search"][0]["tried"]
    assert "chain search" in manifest["components"]["vocoder"]["cpu"]["reason"]
    for name in ("pytorch", "int8", "best"):
        row = pl.read_csv(r / f"bench/denoise/chain/{name}.csv").row(0, named=True)
        assert row["output_lsd_db"] is not None and row["rtf"] > 0
    html = (r / "report/index.html").read_text()
    assert "Chain search: denoise on cpu" in html and "output.max_lsd_db" in html
    assert "Chain search: sensor on cpu" in html and "prediction.min_snr_db" in html


def test_a_run_compared_with_itself_reports_no_change_and_with_a_faster_baseline_a_regression(demo_run, tmp_path):
    """The baseline is a copy of this run's snapshot, once as it is, once with one series' samples made faster
    (as if that backend had been quicker before): the comparison and the opt-in gate say so."""
    snapshot = demo_run / "results/bench/snapshot.parquet"
    same = tmp_path / "same.parquet"
    shutil.copyfile(snapshot, same)
    faster = tmp_path / "faster.parquet"
    table = pl.read_parquet(snapshot)
    slowed = (pl.col("series") == "onnxruntime.fp32@cpu") & (pl.col("component") == "vocoder")
    table.with_columns(
        pl.when(slowed).then(pl.col("samples_ms").list.eval(pl.element() * 0.3)).otherwise(pl.col("samples_ms"))
    ).write_parquet(faster)
    cfg = tiny_svc_config()
    try:
        cfg["compare"] = {"baseline": str(same)}
        write_config(demo_run, cfg)
        snakemake(demo_run, "results/bench/comparison.csv")
        marks = pl.read_csv(demo_run / "results/bench/comparison.csv")["mark"]
        assert set(marks) == {"unchanged"}, marks.value_counts()
        snakemake(demo_run, "results/bench/comparison.passed.json")  # the gate passes
        # the tiny chain's series take about a millisecond: the 1 ms floor measured for the demo's would hide them
        cfg["compare"] = {"baseline": str(faster), "fail_on_regression": True, "min_ms": 0.0}
        write_config(demo_run, cfg)
        proc = snakemake(demo_run, check=False)  # the gate is part of the run now
        table = pl.read_csv(demo_run / "results/bench/comparison.csv")
        regressed = table.filter(pl.col("mark") == "regressed")
        assert set(regressed["component"]) == {"vocoder"} and set(regressed["series"]) == {"onnxruntime.fp32@cpu"}
        assert proc.returncode != 0 and "regressed" in (demo_run / "results/logs/compare_gate.log").read_text()
        snakemake(demo_run, "results/report/index.html")
        html = (demo_run / "results/report/index.html").read_text()
        assert "Against the baseline run" in html
        assert "3.33x slower" in html  # 1 / 0.3: beyond the default factor (3), the noise floor
    finally:
        write_config(demo_run, tiny_svc_config())
        snakemake(demo_run)  # the report without a comparison again, for the tests after this


def test_the_bundle_runs_in_a_clean_venv_without_torch_and_matches_the_pipeline(demo_run, tmp_path):
    """Only the runner's requirements installed (no torch, no snakemake, no onnx tooling): one command converts a
    file, and the output equals the pipeline's own run of the shipped assignment (same seeded noise)."""
    import subprocess
    import sys

    import numpy as np

    from workflow_lib.chains.assignment import from_decision, open_roles
    from workflow_lib.chains.spec import ChainSpec
    from workflow_lib.core.files import read_json
    from workflow_lib.core.spec import component_spec

    bundle = demo_run / "results/deploy/svc_demo"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "-q", "-r", bundle / "requirements.txt"],
        capture_output=True,
        text=True,
    )
    if pip.returncode:
        pytest.skip(f"could not install the bundle's requirements here: {pip.stderr[-500:]}")
    assert subprocess.run([venv / "bin/python", "-c", "import torch"], capture_output=True).returncode != 0
    speech = REPO / "config/audio/libri_5703_a.wav"
    out = tmp_path / "out.npy"
    proc = subprocess.run(
        [venv / "bin/python", bundle / "run.py", "convert", speech, out], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "resampled from 16000 Hz to 22050 Hz" in proc.stderr  # the conversion is stated
    # the pipeline's own run of what ships: its artifacts under results/, its code, its conditioning
    manifest = read_json(bundle / "manifest.json")
    chain = ChainSpec.from_json(manifest["chain"])
    cfg = tiny_svc_config()["models"]["svc_demo"]
    specs = {c: component_spec("svc_demo", c, v) for c, v in cfg["components"].items()}
    specs = {c: s.__class__(**{**s.__dict__, "checkpoint": str(demo_run / s.checkpoint)}) for c, s in specs.items()}
    decision = read_json(demo_run / "results/decisions/svc_demo.json")
    for d in decision["components"].values():  # the decision's paths are relative to the run
        d["cpu"]["source"] = str(demo_run / d["cpu"]["source"])
        d["cpu"]["marker"] = str(demo_run / d["cpu"]["marker"]) if d["cpu"]["marker"] else None
    runners, _ = open_roles(chain, specs, from_decision(decision, ["cpu"]), 1)
    item = chain.chain.read(str(speech))
    extra = chain.chain.conditioning(chain.role_inputs(specs), [item])
    expected = chain.chain.forward(runners, item, extra)[0]["audio"].reshape(-1)
    got = np.load(out)
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-5), np.abs(got - expected).max()


def _written(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: _written(d / "empty.wav", b""), "the file is empty"),
        (lambda d: _written(d / "text.wav", b"not audio"), "not an audio file"),
        ("silent", "the file is silent"),
        ("short", "at least 0.25 s are needed"),
    ],
)
def test_the_runner_refuses_bad_input_by_name_and_writes_nothing(demo_run, tmp_path, make, expected):
    import subprocess
    import sys

    import numpy as np
    import soundfile

    if make == "silent":
        path = tmp_path / "silent.wav"
        soundfile.write(path, np.zeros(22050, np.float32), 22050)
    elif make == "short":
        path = tmp_path / "short.wav"
        soundfile.write(path, np.random.default_rng(0).normal(0, 0.1, 4410).astype(np.float32), 22050)  # 0.2 s
    else:
        path = make(tmp_path)
    out = tmp_path / "out.wav"
    bundle = demo_run / "results/deploy/svc_demo"
    proc = subprocess.run([sys.executable, bundle / "run.py", "convert", path, out], capture_output=True, text=True)
    assert proc.returncode == 2 and expected in proc.stderr and str(path.name) in proc.stderr, proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.wav*"))  # no output, not even a partial one


def test_the_runner_states_what_it_converts_and_refuses_a_chunk_below_one_frame(demo_run, tmp_path):
    import subprocess
    import sys

    import numpy as np
    import soundfile

    stereo = tmp_path / "stereo.wav"
    rng = np.random.default_rng(1)
    soundfile.write(stereo, rng.normal(0, 0.1, (44100, 2)).astype(np.float32), 44100)
    bundle = demo_run / "results/deploy/svc_demo"
    run = [sys.executable, bundle / "run.py"]
    proc = subprocess.run([*run, "convert", stereo, tmp_path / "o.wav"], capture_output=True, text=True)
    assert proc.returncode == 0 and "2 channels averaged to mono" in proc.stderr and "from 44100 Hz" in proc.stderr
    proc = subprocess.run(
        [*run, "stream", stereo, tmp_path / "s.wav", "--chunk-ms", "3"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "shorter than one frame (11.6 ms" in proc.stderr
    report = tmp_path / "stream.json"
    proc = subprocess.run(
        [*run, "stream", stereo, tmp_path / "s.wav", "--chunk-ms", "160", "--report", report, "--realtime"],
        capture_output=True,
        text=True,
    )
    record = json.loads(report.read_text())
    assert proc.returncode == 0 and record["chunk_ms"] == pytest.approx(162.5, abs=0.1) and record["chunks"] > 5
    # by the clock: the file read at the pace it would be captured, the delays measured
    assert {"compute_p95_ms", "delay_p95_ms", "delay_max_ms", "late_chunks", "buffer_ms", "latency_ms"} <= set(record)
    assert record["delay_p50_ms"] >= record["lookahead_ms"] and record["contexts"]["content"]["global"]


def test_the_live_section_reports_latency_against_chunk_size(demo_run):
    live = json.loads((demo_run / "results/live/svc_demo.json").read_text())
    assert [round(c["chunk_ms"]) for c in live["chunks"]] == [35, 81, 163]  # whole frames of 11.6 ms
    for c in live["chunks"]:  # measured by the clock; the sum of its parts only explains it
        assert c["delay_p50_ms"] <= c["delay_p95_ms"] <= c["delay_max_ms"] and c["delay_p50_ms"] >= c["lookahead_ms"]
        assert c["explained_ms"] >= c["chunk_ms"] + c["lookahead_ms"]
    trade = live["tradeoff"]["rows"]
    assert sum(t["exact"] for t in trade) == 1 and len(trade) >= 3  # the exact lookahead among those measured
    html = (demo_run / "results/report/index.html").read_text()
    assert '<section id="live">' in html and "the smallest chunk that keeps up" in html
    manifest = json.loads((demo_run / "results/deploy/svc_demo/manifest.json").read_text())
    assert manifest["live"]["smallest_realtime"] == live["smallest_realtime"]  # the manifest records it
