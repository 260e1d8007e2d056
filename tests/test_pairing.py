"""Two candidates timed against each other in alternating rounds, each warm in a process of its own."""

import pytest

from workflow_lib.analysis import pairing

SLEEP = "pairing_builders:sleeper"


def test_the_decision_needs_six_rounds_and_knows_ties_from_wins():
    policy = pairing.PairPolicy(min_rounds=6)
    assert pairing.decision([0.5] * 5, policy) is None  # no CI from fewer than six
    assert pairing.ratio_ci([0.5] * 5) is None
    assert pairing.decision([0.5, 0.52, 0.49, 0.51, 0.5, 0.5], policy) == "a"  # A takes half of B's time
    assert pairing.decision([2.0, 2.1, 1.9, 2.0, 2.05, 1.95], policy) == "b"
    assert pairing.decision([1.0, 1.01, 0.99, 1.0, 1.005, 0.995], policy) == "tie"
    assert pairing.decision([0.9, 1.1, 0.8, 1.2, 0.95, 1.05], policy) is None  # straddles 1, wider than the band
    # B faster by 2 % (the CI excludes 1 and reaches past the band): a difference smaller than the band is a tie
    slightly = [1.01, 1.02, 1.05, 1.015, 1.04, 1.02, 1.035, 1.012, 1.06, 1.018]
    assert pairing.ratio_ci(slightly) == (1.012, 1.05) and pairing.decision(slightly, policy) == "tie"
    assert pairing.decision([0.95, 0.92, 0.96, 0.90, 0.952, 0.94, 0.95, 0.97, 0.93, 0.95], policy) == "a"  # 5 %


def test_a_tie_goes_to_the_larger_search_margin_then_to_fewer_quantized_nodes_then_to_the_canonical_key():
    """decide_between, the one decision between two: real workers of the same speed tie, and what breaks the
    tie is known before any evaluation file is read."""
    policy = pairing.PairPolicy(min_rounds=6, max_seconds=3)
    same = {"builder": SLEEP, "args": {"ms": 2.0}}
    by_margin = pairing.decide_between(
        pairing.Contender("x", same, 0.1, 5), pairing.Contender("y", dict(same), 0.3, 5), policy
    )
    assert by_margin["outcome"] == "tie" and by_margin["winner"] == "y" and "margin" in by_margin["tie_broken_by"]
    by_nodes = pairing.decide_between(
        pairing.Contender("x", same, None, 9), pairing.Contender("y", dict(same), 0.2, 4), policy
    )
    assert by_nodes["winner"] == "y" and "fewer quantized nodes" in by_nodes["tie_broken_by"]
    assert "a_ms" not in by_nodes  # raw rounds are not part of a decision record
    for first, second in (("p", "q"), ("q", "p")):  # the rest: what they are, not which was ranked first
        by_key = pairing.decide_between(
            pairing.Contender(first, same, 0.2, 4, f"key {first}"),
            pairing.Contender(second, dict(same), 0.2, 4, f"key {second}"),
            policy,
        )
        assert by_key["winner"] == "p" and "canonical key (key p)" in by_key["tie_broken_by"]
    fast = pairing.decide_between(
        pairing.Contender("x", {"builder": SLEEP, "args": {"ms": 1.0}}, 0.0, 9),
        pairing.Contender("y", {"builder": SLEEP, "args": {"ms": 8.0}}, 1.0, 0),
        pairing.PairPolicy(min_rounds=6, max_seconds=10),
    )
    assert fast["winner"] == "x" and "tie_broken_by" not in fast  # a real difference in speed is not overruled


def test_neither_side_always_runs_first_in_a_round(tmp_path):
    """The review's hole: A always ran before B, so a side that gains from running first always did."""
    log = tmp_path / "order.log"
    a = {"builder": "pairing_builders:logger", "args": {"path": str(log), "name": "a"}}
    b = {"builder": "pairing_builders:logger", "args": {"path": str(log), "name": "b"}}
    record = pairing.compare(a, b, pairing.PairPolicy(min_rounds=6, max_rounds=6, warmup=0, max_seconds=5), ("a", "b"))
    calls = log.read_text().split()
    rounds = [calls[i : i + 2] for i in range(0, 2 * record["rounds"], 2)]
    assert ["a", "b"] in rounds and ["b", "a"] in rounds


def test_real_processes_alternate_and_find_the_faster(tmp_path):
    policy = pairing.PairPolicy(min_rounds=10, max_seconds=20)
    fast = {"builder": SLEEP, "args": {"ms": 5.0}}
    slow = {"builder": SLEEP, "args": {"ms": 15.0}}
    record = pairing.compare(fast, slow, policy, ("fast", "slow"))
    assert record["outcome"] == "a" and record["winner"] == "fast" and record["rounds"] >= 10
    assert record["ratio"] == pytest.approx(1 / 3, rel=0.3) and record["ci"][1] < 1
    assert len(record["a_ms"]) == len(record["b_ms"]) == record["rounds"]
    same = pairing.compare(fast, dict(fast), pairing.PairPolicy(min_rounds=10, max_seconds=5), ("x", "y"))
    assert same["outcome"] == "tie"  # within the band, or still undecided when its time box ran out


def test_a_candidate_that_cannot_be_built_is_an_error_naming_it():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        pairing.compare(
            {"builder": "pairing_builders:broken", "args": {}},
            {"builder": SLEEP, "args": {"ms": 1.0}},
            pairing.PairPolicy(),
            ("a", "b"),
        )
