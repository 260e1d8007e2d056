"""Gates: the metric registry's directions, keys on the right side, the statistic that predicts unseen files,
and the holes a review found (NaN past the first file, a null limit, a bound on the wrong side)."""

import math

import pytest

from workflow_lib.analysis import gates, metrics
from workflow_lib.analysis.gates import Statistic


def test_the_registry_owns_each_metrics_direction_qualified_names_included():
    assert metrics.get("pesq").higher_is_better and not metrics.get("lsd_db").higher_is_better
    assert metrics.get("speech_pesq") is metrics.get("pesq")  # a plug-in's qualified name
    assert metrics.get("lsd_db").worst([1.0, 3.0, 2.0]) == 3.0 and metrics.get("stoi").worst([0.9, 0.8]) == 0.8
    assert math.isnan(metrics.get("pesq").worst([4.2, float("nan")]))  # not a number is the worst of all
    with pytest.raises(KeyError, match="no metric 'pesqq'"):
        metrics.get("pesqq")


def test_keys_name_a_metric_of_the_kind_on_its_own_side_with_a_number():
    allowed = metrics.kind("audio").metrics
    assert gates.gate_keys({"min_pesq": 4.0, "max_lsd_db": 6.0}, allowed, "x") == []
    assert gates.gate_keys({"minimum_pesq": 4}, allowed, "x")[0].startswith("x.minimum_pesq: not a gate (allowed: ")
    wrong_side = ["x.max_pesq: higher pesq is better, so its gate is a min_"]
    assert gates.gate_keys({"max_pesq": 4.0}, allowed, "x") == wrong_side
    assert "a gate without one is no gate" in gates.gate_keys({"min_pesq": None}, allowed, "x")[0]
    assert gates.gate_keys({"min_pesq": 4.0}, metrics.kind("tensor").metrics, "x")[0].startswith("x.min_pesq: not a")


def test_the_worst_file_decides_and_each_gate_records_its_margin():
    files = [{"pesq": 4.3, "lsd_db": 2.0}, {"pesq": 3.9, "lsd_db": 1.0}, {"pesq": 4.1, "lsd_db": 5.5}]
    verdict = gates.judge(files, {"min_pesq": 4.0, "max_lsd_db": 6.0}, ["a.wav", "b.wav", "c.wav"])
    assert verdict["status"] == "failed" and verdict["reason"] == "pesq 3.9 < 4 (b.wav)"  # the mean (4.1) would pass
    pesq = verdict["gates"]["min_pesq"]
    assert (pesq["worst"], pesq["file"], pesq["margin"]) == (3.9, "b.wav", pytest.approx(-0.1))
    assert pesq["passing"] == pytest.approx(2 / 3) and pesq["values"]["c.wav"] == 4.1
    assert verdict["gates"]["max_lsd_db"]["margin"] == 0.5
    assert gates.relative_margin(verdict) == pytest.approx(-0.025)


def test_a_nan_on_any_file_fails_the_gate():
    """The review's hole: min()/max() skip a NaN that is not first, and the gate passed."""
    for files in ([{"pesq": float("nan")}, {"pesq": 4.4}], [{"pesq": 4.4}, {"pesq": float("nan")}]):
        verdict = gates.judge(files, {"min_pesq": 4.0}, ["a", "b"])
        assert verdict["status"] == "failed" and "not a number" in verdict["reason"]
    assert gates.judge([{"lsd_db": 1.0}, {"lsd_db": math.inf}], {"max_lsd_db": 6.0})["status"] == "failed"
    assert gates.judge([{"snr_db": math.inf}, {"snr_db": math.inf}], {"min_snr_db": 30.0})["status"] == "passed"


def test_the_tolerance_bound_predicts_unseen_files_and_falls_back_to_the_worst_below_min_files():
    tight = [{"pesq": v} for v in (4.30, 4.31, 4.29, 4.32, 4.30, 4.28, 4.31, 4.30)]
    spread = [{"pesq": v} for v in (4.60, 4.05, 4.50, 4.10, 4.55, 4.02, 4.45, 4.12)]  # all pass one by one
    stat = Statistic()
    assert gates.judge(tight, {"min_pesq": 4.2}, statistic=stat)["status"] == "passed"
    wide = gates.judge(spread, {"min_pesq": 4.0}, statistic=stat)
    assert wide["status"] == "failed" and "tolerance bound" in wide["reason"]
    assert wide["gates"]["min_pesq"]["passing"] == 1.0 and wide["gates"]["min_pesq"]["value"] < 4.0
    # the NIST/SEMATECH handbook's example of a one-sided normal tolerance factor: 10 files, 90 %, 95 %: 2.355
    assert gates.tolerance_factor(10, 0.9, 0.95) == pytest.approx(2.355, abs=0.002)
    few = gates.judge(spread[:3], {"min_pesq": 4.0}, statistic=stat)
    assert few["gates"]["min_pesq"]["statistic"] == "worst file" and few["status"] == "passed"


def test_the_per_file_plot_colours_a_chain_gate_by_its_own_direction():
    """Run A5's report drew the chain's copy_synthesis.min_pesq files red above the limit and the one STOI file
    below it green: the plot read the direction from the key's start, which a chain's gate prefixes."""
    import numpy as np
    import polars as pl
    from matplotlib.colors import to_rgba

    from workflow_lib.analysis import plots

    per_file = [{"pesq": v, "lsd_db": d} for v, d in ((4.5, 1.0), (3.9, 7.0), (4.2, 2.0))]
    verdict = gates.judge(per_file, {"min_pesq": 4.0, "max_lsd_db": 6.0}, ["a", "b", "c"])
    chain = {"gates": {f"copy_synthesis.{k}": g for k, g in verdict["gates"].items()}}
    data = plots.PlotData(pl.DataFrame(), pl.DataFrame(), verdicts={"chain": chain, "vocoder": verdict})
    fig = plots.gate_files_plot(data)
    green, red = np.array(to_rgba("tab:green")), np.array(to_rgba("tab:red"))
    for ax in fig.axes:
        colours = ax.collections[0].get_facecolors()
        want = [green, red, green]  # files a, b, c: b fails both gates, whichever way each points
        assert all(np.allclose(c, w) for c, w in zip(colours, want, strict=True)), ax.get_title()
    assert len(fig.axes) == 4
