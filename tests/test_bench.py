"""Benchmark harness, CSV schema, summary statistics and the report, on a tiny real model."""

import json
import re

import numpy as np
import polars as pl
import pytest
import torch
from conftest import FIVE_RUNS, chromium_screenshot, export_tiny_conv, synthetic_csv
from markupsafe import escape

from workflow_lib.analysis import comparison, plots, results, speedups
from workflow_lib.core.files import read_json, write_json
from workflow_lib.core.paths import ReportInputs, samples_path
from workflow_lib.jobs import timing
from workflow_lib.stages import bench, bench_shipped, report, validate


def test_stats_on_known_samples():
    s = timing.stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["iterations"] == 5 and s["mean_ms"] == 3.0 and s["p50_ms"] == 3.0
    assert s["min_ms"] == 1.0 and s["max_ms"] == 5.0
    assert s["std_ms"] == pytest.approx(1.5811388, rel=1e-6) and s["cv"] == pytest.approx(1.5811388 / 3, rel=1e-6)
    assert s["p90_ms"] == pytest.approx(4.6) and s["p99_ms"] == pytest.approx(4.96)


def test_measure_warms_up_then_times_until_a_stop_rule():
    calls = []
    samples, how = timing.measure(
        lambda: calls.append(1), lambda: None, timing.Policy(warmup=3, min_iterations=7, max_iterations=7)
    )
    assert len(samples) == 7 and len(calls) == how["warmup_runs"] + 7 and 3 <= how["warmup_runs"] <= 20
    assert how["stop"] == "max_iterations" and all(s >= 0 for s in samples)


def test_warm_up_of_a_slow_step_is_bounded_by_time_as_well_as_count():
    import time

    samples, how = timing.measure(
        lambda: time.sleep(0.05),
        lambda: None,
        timing.Policy(warmup=1, max_warmup=20, warmup_seconds=0.12, min_iterations=1, max_iterations=1),
    )
    assert how["warmup_runs"] <= 3  # not the six-plus runs waiting for three to agree would take


def test_stop_rule_on_synthetic_samples():
    policy = timing.Policy(min_iterations=5, max_iterations=40, target_rel_ci=0.02, max_seconds=3.0)
    rng = np.random.default_rng(0)
    quiet = list(10 * rng.uniform(0.995, 1.005, 6))
    assert timing.stop_reason(quiet[:4], 0.0, policy) is None  # fewer than min_iterations
    # five quiet samples are not enough: a distribution-free 95 % CI of the median needs six
    assert timing.rel_ci(quiet[:5]) is None and timing.stop_reason(quiet[:5], 0.0, policy) is None
    assert timing.stop_reason(quiet, 0.0, policy) == "ci_reached"
    noisy = list(10 * rng.lognormal(0, 0.3, 20))
    assert timing.rel_ci(noisy) > 0.02
    assert timing.stop_reason(noisy, 1.0, policy) is None  # CI too wide, budget left: keep timing
    assert timing.stop_reason(noisy, 3.0, policy) == "time_budget"
    assert timing.stop_reason(noisy * 2, 1.0, policy) == "max_iterations"


def test_median_ci_covers_the_true_median():
    rng = np.random.default_rng(2)
    hits = sum(lo <= 10.0 <= hi for lo, hi in (timing.median_ci(rng.normal(10, 1, 50)) for _ in range(400)))
    assert 0.92 <= hits / 400 <= 0.99


def test_bootstrap_ci_on_synthetic_data():
    rng = np.random.default_rng(1)
    base, fast = rng.normal(10.0, 0.5, 200), rng.normal(5.0, 0.25, 200)
    lo, hi = speedups.bootstrap_ratio_ci(base, fast, 2000)
    assert lo < 2.0 < hi and hi - lo < 0.15
    lo, hi = speedups.bootstrap_ratio_ci(base, rng.normal(10.0, 0.5, 200), 2000)
    assert lo < 1.0 < hi


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Real PyTorch and ONNX Runtime runs of a tiny model, plus the two backends that cannot run here."""
    d = tmp_path_factory.mktemp("bench")
    spec = export_tiny_conv(d)
    write_json(d / "ort.json", validate.validate(spec, "onnxruntime", "fp32", d / "net.onnx"))
    skipped = {
        "status": "skipped",
        "reason": "no CUDA device visible to this process (torch.cuda.is_available() is False)",
    }
    write_json(d / "trt.json", skipped)
    runs = [
        ("pytorch", "fp32", []),
        ("onnxruntime", "fp32", ["--artifact", str(d / "net.onnx"), "--marker", str(d / "ort.json")]),
        ("tensorrt", "fp32", ["--artifact", str(d / "net.engine"), "--marker", str(d / "trt.json")]),
    ]
    if not torch.cuda.is_available():
        runs.append(("pytorch", "fp16", []))
    csvs = []
    for backend, variant, extra in runs:
        csv = d / f"net.{backend}.{variant}.csv"
        bench.main(
            [
                "--spec",
                spec.to_json(),
                "--backend",
                backend,
                "--variant",
                variant,
                *extra,
                "--settings",
                json.dumps(FIVE_RUNS),
                "--threads",
                "1",
                "--out",
                str(csv),
            ]
        )
        csvs.append(str(csv))
    return d, csvs, skipped


def test_csv_schema_and_rows(measured):
    d, csvs, _ = measured
    df = pl.read_csv(d / "net.onnxruntime.fp32.csv")
    assert df.columns == results.COLUMNS
    assert df["point"].to_list() == ["min", "opt", "max"] and df["iterations"].to_list() == [5, 5, 5]
    assert set(df["series"]) == {"onnxruntime.fp32@cpu"}
    assert set(pl.read_csv(d / "net.pytorch.fp32.csv")["device"]) == (
        {"cpu", f"cuda:{torch.cuda.get_device_name()}"} if torch.cuda.is_available() else {"cpu"}
    )
    assert json.loads(df["shape"][2]) == {"x": [2, 8, 32]} and df["device"][0] == "cpu" and df["threads"][0] == 1
    assert (df["p50_ms"] > 0).all() and (df["min_ms"] <= df["p50_ms"]).all() and (df["p50_ms"] <= df["max_ms"]).all()
    raw = pl.read_parquet(samples_path(d / "net.onnxruntime.fp32.csv"))
    assert raw.height == 15 and raw.columns == ["device", "point", "sample_ms"]


def test_speedup_baseline_is_pytorch_fp32_on_the_same_device(tmp_path):
    """On a GPU host PyTorch is timed on CPU and CUDA: CPU backends compare to the CPU baseline, GPU ones to CUDA."""
    gpu = "cuda:NVIDIA H100 80GB HBM3"
    csvs = [
        synthetic_csv(tmp_path / "c.pytorch.fp32.csv", "pytorch", "fp32", {"cpu": 10.0, gpu: 1.0}),
        synthetic_csv(tmp_path / "c.onnxruntime.fp32.csv", "onnxruntime", "fp32", {"cpu": 5.0}),
        synthetic_csv(tmp_path / "c.tensorrt.fp16.csv", "tensorrt", "fp16", {gpu: 0.25}),
    ]
    table, _ = speedups.summarize(csvs, 300)
    by_label = {r["series"]: r for r in table.iter_rows(named=True)}
    assert set(by_label) == {"pytorch.fp32@cpu", "pytorch.fp32@cuda", "onnxruntime.fp32@cpu", "tensorrt.fp16@cuda"}
    assert by_label["onnxruntime.fp32@cpu"]["speedup"] == pytest.approx(2.0, rel=0.05)
    assert by_label["onnxruntime.fp32@cpu"]["baseline_p50_ms"] == pytest.approx(10.0, rel=0.05)
    assert by_label["tensorrt.fp16@cuda"]["speedup"] == pytest.approx(4.0, rel=0.05)
    assert by_label["pytorch.fp32@cuda"]["speedup"] == 1.0


def test_not_measured_is_grouped_by_backend_and_reason():
    reason = "no CUDA device visible to this process"
    rows = [
        {"backend": "tensorrt", "variant": v, "component": c, "reason": reason}
        for v in ("fp32", "fp16")
        for c in ("a", "b", "c")
    ] + [{"assignment": "tensorrt", "reason": "no choice runs here"}]
    groups = report.unavailable_groups(rows)
    assert len(groups) == 2 and groups[1] == {
        "what": "tensorrt",
        "reason": reason,
        "variants": ["fp16", "fp32"],
        "components": ["a", "b", "c"],
    }
    assert groups[0]["what"] == "chain tensorrt"


def test_unavailable_backend_is_absent_with_reason(measured):
    d, _, skipped = measured
    trt_csv = pl.read_csv(d / "net.tensorrt.fp32.csv")
    assert trt_csv.height == 0 and trt_csv.columns == results.COLUMNS
    meta = read_json(d / "net.tensorrt.fp32.csv.json")
    assert meta["status"] == "unavailable" and skipped["reason"] in meta["reason"]
    if not torch.cuda.is_available():
        meta = read_json(d / "net.pytorch.fp16.csv.json")
        assert meta["reason"] == "PyTorch fp16 runs on CUDA only, and no CUDA device is visible here"


def test_summary_speedups_and_unavailable(measured):
    _, csvs, _ = measured
    table, unavailable = speedups.summarize(csvs, 500)
    ort = table.filter(pl.col("backend") == "onnxruntime").sort("point")
    assert ort.height == 3 and ort["speedup"].is_not_null().all()
    assert (ort["ci_low"] <= ort["speedup"]).all() and (ort["speedup"] <= ort["ci_high"]).all()
    base = table.filter(pl.col("backend") == "pytorch")
    assert base["speedup"].to_list() == [1.0, 1.0, 1.0]
    assert {(u["backend"], u["variant"]) for u in unavailable} >= {("tensorrt", "fp32")}


def test_report_renders_tables_plots_and_skip_reasons(measured, tmp_path):
    d, csvs, skipped = measured
    table, unavailable = speedups.summarize(csvs, 200)
    table.write_csv(tmp_path / "summary.csv")
    write_json(tmp_path / "unavailable.json", unavailable)
    trt_marker = {"model": "mine", "component": "net", "backend": "tensorrt", "variant": "fp32", **skipped}
    write_json(tmp_path / "trt_marker.json", trt_marker)
    out = tmp_path / "report" / "index.html"
    inputs = ReportInputs(
        summary=str(tmp_path / "summary.csv"),
        unavailable=str(tmp_path / "unavailable.json"),
        bench=tuple(csvs),
        markers=(str(d / "ort.json"), str(tmp_path / "trt_marker.json")),
    )
    ctx = report.render(inputs, out, tmp_path / "report", "abc123")
    html = out.read_text()
    for section in ("summary", "speedup", "latency", "chain", "unavailable", "accuracy", "engines"):
        assert f'<section id="{section}">' in html
    # every plot the registry has, with its caption; the int8 section only where an int8 graph exists
    shown = [p for p in plots.PLOTS.values() if p.section != "int8"]
    assert html.count("data:image/png;base64,") == len(shown)
    assert all(str(escape(p.caption)) in html for p in shown)
    for name in plots.PLOTS:
        assert (tmp_path / "report" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert skipped["reason"] in html and "PyTorch fp16 runs on CUDA only" in html
    assert ">skipped<" in html and ">passed<" in html and "abc123" in html
    assert ctx["counts"] == {"passed": 1, "skipped": 1, "failed": 0}
    assert [r["point"] for r in ctx["speedups"] if r["series"] == "onnxruntime.fp32@cpu"] == ["min", "opt", "max"]
    assert sorted(["10s", "1s", "5s"], key=plots.point_order) == ["1s", "5s", "10s"]
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "onnxruntime.fp32" in html


def test_a_series_has_one_colour_in_every_plot_and_one_legend(measured):
    """The latency panels and the speedup bars colour a series alike, and the latency figure's one legend names
    every series of every panel (a per-panel legend named only the last panel's)."""
    from matplotlib.colors import to_hex
    from matplotlib.container import BarContainer

    _, csvs, _ = measured
    table, _ = speedups.summarize(csvs, 200)
    data = plots.PlotData(table, report._bench_table(table))
    latency, speedup = plots.latency_plot(data), plots.speedup_plot(data)
    lines = {ln.get_label(): to_hex(ln.get_color()) for ax in latency.axes for ln in ax.get_lines()}
    bars = {
        c.get_label(): to_hex(c.patches[0].get_facecolor())
        for c in speedup.axes[0].containers
        if isinstance(c, BarContainer)
    }
    assert bars and all(lines[s] == colour for s, colour in bars.items())
    (legend,) = latency.legends
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(lines)


def test_report_in_headless_chromium(measured, tmp_path):
    d, csvs, _ = measured
    table, unavailable = speedups.summarize(csvs, 200)
    table.write_csv(tmp_path / "summary.csv")
    write_json(tmp_path / "unavailable.json", unavailable)
    out = tmp_path / "index.html"
    inputs = ReportInputs(
        summary=str(tmp_path / "summary.csv"),
        unavailable=str(tmp_path / "unavailable.json"),
        bench=tuple(csvs),
        markers=(str(d / "ort.json"),),
    )
    report.render(inputs, out, tmp_path, "abc123")
    shot = tmp_path / "shot.png"
    chromium_screenshot(out.as_uri(), shot, tmp_path / "profile", size="1280,2400")
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_report_shows_what_each_chain_assignment_ran_and_says_when_two_ran_the_same(tmp_path):
    chain = "content=onnxruntime.fp32@cpu;vocoder=onnxruntime.fp32@cpu"
    csvs = [
        synthetic_csv(
            tmp_path / f"{name}.csv",
            backend,
            "fp32",
            {"cpu": p50},
            component="chain",
            series=name,
            extra={"assignment": name, "chain": chain.replace("onnxruntime", backend), "rtf": p50 / 1e3},
            point="1s",
        )
        for name, backend, p50 in (
            ("pytorch", "pytorch", 400.0),
            ("mixed", "onnxruntime", 320.0),
            ("best", "onnxruntime", 1300.0),
        )
    ]
    table, _ = speedups.summarize(csvs, 300)
    ctx = report.render(ReportInputs(bench=tuple(csvs)), tmp_path / "index.html", tmp_path, "abc123", resamples=300)
    html = (tmp_path / "index.html").read_text()
    assert ctx["assignments"] == ["best", "mixed", "pytorch"] and ctx["series"] == []
    assert "<td>mixed</td><td><code>content=onnxruntime.fp32@cpu; vocoder=onnxruntime.fp32@cpu</code>" in html
    mixed = table.filter(pl.col("series") == "mixed").row(0, named=True)
    assert mixed["speedup"] == pytest.approx(1.25, rel=0.05) and mixed["rtf"] == pytest.approx(0.32)
    # `best` ran exactly what `mixed` ran: the report says so instead of leaving two latencies unexplained
    rows = {r["series"]: r for r in ctx["chain"]["rows"]}
    assert rows["best"]["same_as"] == ["mixed"] and rows["pytorch"]["same_as"] == []
    assert "the same series as mixed" in html and re.search(r">1,[0-9]{3}<", html)  # thousands grouped, not 1.3e+03


def test_a_series_is_timed_at_the_decision_point_and_at_the_others_only_where_it_ships(tmp_path):
    """bench.prune, on real ONNX Runtime timings: the decision's benchmark times deploy.point and records what it
    left out; the shipped series' job times the rest on the device kinds it ships on; the report and a later
    comparison say which points of which series were not timed, and why."""
    spec = export_tiny_conv(tmp_path)
    write_json(tmp_path / "ort.json", validate.validate(spec, "onnxruntime", "fp32", tmp_path / "net.onnx"))
    series = ["--spec", spec.to_json(), "--backend", "onnxruntime", "--variant", "fp32"]
    series += ["--artifact", str(tmp_path / "net.onnx"), "--marker", str(tmp_path / "ort.json")]
    argv = [*series, "--threads", "1"]

    def timed(out, points, *extra):
        bench.main([*argv, "--settings", json.dumps({**FIVE_RUNS, "points": points}), *extra, "--out", str(out)])
        return pl.read_csv(out)["point"].to_list() if read_json(f"{out}.json")["status"] == "measured" else None

    decided = str(tmp_path / "decided.csv")
    assert timed(decided, ["opt"], "--deferred", "min", "max") == ["opt"]
    assert "only where it ships" in read_json(f"{decided}.json")["deferred"]["why"]
    pruned = {"points": ["min", "max"], "timed": ["opt"], "series": {"net": ["onnxruntime.fp32"]}}
    assert report.pruned([decided], speedups.summarize([decided])[0]) == pruned
    snap = comparison.snapshot([decided])  # a later comparison says why those points are missing
    assert sorted(snap.filter(pl.col("status") == "pruned")["point"].to_list()) == ["max", "min"]

    shipped = str(tmp_path / "shipped.csv")
    for ships, rows in (("onnxruntime", ["min", "max"]), ("pytorch", [])):
        entry = {"backend": ships, "variant": "fp32", "series": f"{ships}.fp32"}
        write_json(tmp_path / "decision.json", {"model": spec.model, "components": {spec.component: {"cpu": entry}}})
        bench_shipped.main(
            ["--decision", str(tmp_path / "decision.json"), "--outs", json.dumps({spec.component: shipped})]
            + ["--series", json.dumps({spec.component: {"onnxruntime.fp32": series}})]
            + ["--settings", json.dumps({**FIVE_RUNS, "points": ["min", "max"]})]
        )
        assert pl.read_csv(shipped)["point"].to_list() == rows
        if rows:  # what ships was timed at the points its benchmark left out: nothing is missing
            assert report.pruned([decided], speedups.summarize([decided, shipped])[0]) is None
            assert set(comparison.snapshot([decided, shipped])["status"]) == {"measured"}
    assert "ships PyTorch fp32" in read_json(f"{shipped}.json")["note"]
    assert timed(tmp_path / "gpu.csv", ["min", "max"], "--ships", "cuda") is None  # where it cannot run: says so
    assert "ships on none of this host's devices" in read_json(tmp_path / "gpu.csv.json")["reason"]
