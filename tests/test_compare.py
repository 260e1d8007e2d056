"""This run against a baseline run: the rank test, and every mark on synthetic snapshots."""

import json

import numpy as np
import polars as pl
import pytest

from workflow_lib.analysis import comparison

VERSIONS = json.dumps({"onnxruntime": "1.32.0", "torch": "2.13.0"})


def _row(ms, series="onnxruntime.fp32@cpu", status="measured", fidelity="", versions=VERSIONS, sha="abc", cpu="x"):
    return {
        "model": "m",
        "component": "c",
        "backend": "onnxruntime",
        "variant": "fp32",
        "device": "cpu",
        "point": "opt",
        "series": series,
        "status": status,
        "fidelity": fidelity,
        "artifact_sha256": sha,
        "versions": versions,
        "cpu": cpu,
        "samples_ms": list(ms),
    }


def _ms(center, n=30, seed=0):
    return center * np.random.default_rng(seed).uniform(0.97, 1.03, n)


def test_the_rank_test_separates_shifted_samples_and_not_equal_ones():
    a, b = _ms(10, seed=1), _ms(10, seed=2)
    assert comparison.mann_whitney_p(a, b) > 0.05
    assert comparison.mann_whitney_p(a, a * 1.2) < 1e-6
    assert comparison.mann_whitney_p(np.ones(5), np.ones(5)) == 1.0  # all tied: nothing to say


@pytest.mark.parametrize(
    "new, old, mark",
    [
        (_row(_ms(10, seed=1)), _row(_ms(10, seed=2)), "unchanged"),
        (_row(_ms(15)), _row(_ms(10, seed=3)), "regressed"),
        (_row(_ms(6)), _row(_ms(10, seed=3)), "improved"),
        (_row(_ms(10.5)), _row(_ms(10, seed=3)), "unchanged"),  # 5 %: significant, but below the factor
        (
            _row(_ms(15), versions=json.dumps({"onnxruntime": "1.33.0", "torch": "2.13.0"})),
            _row(_ms(10)),
            "not comparable",
        ),
        (_row(_ms(15), sha="def"), _row(_ms(10)), "not comparable"),
        (_row([], status="unavailable"), _row(_ms(10)), "newly failing"),
        (_row(_ms(10), fidelity="failed"), _row(_ms(10), fidelity="passed"), "newly failing"),
        (_row(_ms(10), fidelity="passed"), _row(_ms(10), fidelity="failed"), "fixed"),
    ],
)
def test_each_mark(new, old, mark):
    result = comparison.compare_one(new, old)
    assert result["mark"] == mark, result["why"]
    if mark == "not comparable":
        assert "changed" in result["why"]  # says which: the artifact, a runtime version or the host


def test_a_run_compared_with_itself_reports_no_change_and_an_unmeasured_series_is_matched():
    rows = [_row(_ms(10)), _row(_ms(20), series="openvino.fp32@cpu")]
    snap = pl.DataFrame(rows, schema=comparison.SNAPSHOT, orient="row")
    assert set(comparison.compare(snap, snap)["mark"]) == {"unchanged"}
    gone = {**_row([], status="unavailable"), "device": "*", "point": "*", "series": "*"}
    later = pl.DataFrame([rows[1], gone], schema=comparison.SNAPSHOT, orient="row")
    table = comparison.compare(later, snap)
    assert table["mark"].to_list() == ["newly failing", "unchanged"]  # worst first
    assert table.row(0, named=True)["series"] == "onnxruntime.fp32@cpu"
