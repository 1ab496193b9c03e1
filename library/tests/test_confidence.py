"""Release confidence (confidence.py): each part of the documented formula, read from the
evidence a verified release has, and what lowers it."""

from datetime import UTC, datetime, timedelta

from reproml.tools import confidence, criteria

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BASELINE = {"release": "model@v1.0.0", "commit": "a" * 40}


def rebuild(result: str, days_ago: float, environment: str = "e1", varied: bool = False) -> dict:
    finished = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "rebuild",
        "result": result,
        "finished": finished,
        "environment": {"hash": environment},
        "varied_environment": varied,
    }


def passed_decision(low: float, high: float) -> dict:
    metrics = {
        "accuracy": {
            "a": 0.90,
            "b": 0.93,
            "difference": 0.03,
            "interval": [low, high],
            "greater_is_better": True,
        }
    }
    return criteria.decide(metrics, {"accuracy": {"threshold": 0.8}}, "accuracy", BASELINE, 100)


def test_full_evidence_scores_100_and_each_part_is_named():
    rebuilds = [
        rebuild("match", 1, "e1"),
        rebuild("match", 2, "e2"),
        rebuild("match", 3, "e3", varied=True),
    ]
    found = confidence.score(rebuilds, passed_decision(0.01, 0.05), [], NOW)
    assert found["score"] == 100
    assert found["parts"] == {"reproduced": 40, "coverage": 15, "recency": 15, "gate": 30}
    assert "3/3 rebuilds MATCH" in found["says"]
    assert "3 environments, field and lab" in found["says"]
    assert "gate passed with margin vs model@v1.0.0" in found["says"]


def test_no_evidence_scores_0():
    found = confidence.score([], None, [], NOW)
    assert found["score"] == 0
    assert "no rebuild checked" in found["says"] and "no gate recorded" in found["says"]


def test_a_mismatch_an_equivalent_and_a_timeout_each_count_as_the_formula_says():
    rebuilds = [rebuild("match", 1), rebuild("equivalent", 1), rebuild("mismatch", 1)]
    rebuilds.append(rebuild("timeout", 1))  # checked nothing: neither success nor failure
    found = confidence.score(rebuilds, None, [], NOW)
    assert found["parts"]["reproduced"] == round(40 * 1.5 / 3, 2)
    assert "1/3 rebuilds MATCH" in found["says"]


def test_recency_falls_in_a_straight_line_from_30_to_180_days():
    def recency(days: float) -> float:
        return confidence.score([rebuild("match", days)], None, [], NOW)["parts"]["recency"]

    assert recency(10) == recency(30) == 15
    assert recency(105) == 7.5
    assert recency(180) == recency(400) == 0
    # A failed rebuild is not a recent proof.
    assert confidence.score([rebuild("mismatch", 1)], None, [], NOW)["parts"]["recency"] == 0


def test_the_gate_part_reads_the_margin_and_an_override_gives_nothing():
    with_margin = confidence.score([], passed_decision(0.01, 0.05), [], NOW)
    on_the_edge = confidence.score([], passed_decision(-0.02, 0.05), [], NOW)
    assert with_margin["parts"]["gate"] == 30 and on_the_edge["parts"]["gate"] == 22.5
    assert "gate passed on its limit" in on_the_edge["says"]
    worse = {
        "accuracy": {
            "a": 0.9,
            "b": 0.6,
            "difference": -0.3,
            "interval": [-0.4, -0.2],
            "greater_is_better": True,
        }
    }
    overridden = criteria.decide(worse, {}, "accuracy", BASELINE, 100, override="hotfix")
    found = confidence.score([], overridden, [], NOW)
    assert found["parts"]["gate"] == 0 and "gate overridden" in found["says"]
    # No release in prod and no threshold: the gate passed, but measured nothing.
    unmeasured = criteria.decide(worse, {}, "accuracy", None, 100)
    assert confidence.score([], unmeasured, [], NOW)["parts"]["gate"] == 15


def test_incidents_multiply_the_score_down_unreproducible_ones_most():
    rebuilds = [rebuild("match", 1, "e1"), rebuild("match", 1, "e2"), rebuild("match", 1, "e3")]
    decision = passed_decision(0.01, 0.05)
    clean = confidence.score(rebuilds, decision, [], NOW)["score"]
    other = confidence.score(rebuilds, decision, [{"cause": "other"}], NOW)
    unreproducible = confidence.score(rebuilds, decision, [{"cause": "unreproducible"}], NOW)
    assert clean == 95  # field only: no lab rebuild (5 points)
    assert other["score"] == round(95 * 0.8) and unreproducible["score"] == round(95 * 0.5)
    assert "1 incidents (1 unreproducible)" in unreproducible["says"]


def test_a_decision_of_odd_shape_scores_without_a_traceback():
    odd = {
        "passed": True,
        "override": None,
        "baseline": "model@v1.0.0",
        "metrics": {"accuracy": {}},
        "rules": [{"rule": "not_worse_beyond_interval", "score": ["accuracy"], "passed": True}],
    }
    found = confidence.score([], odd, [], NOW)
    assert found["parts"]["gate"] == 22.5 and "on its limit vs thresholds only" in found["says"]
