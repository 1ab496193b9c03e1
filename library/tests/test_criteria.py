"""The release criteria's rules (MLflow's MetricThreshold semantics, each score's own
direction), the primary score's protection that needs no criteria, and overrides."""

import pytest

from reproml.runtime.errors import ConfigError
from reproml.tools import criteria
from reproml.tools.errors import RegistryError

BASELINE = {"release": "model@v1.0.0", "commit": "a" * 40}


def entry(a: float, b: float, low: float, high: float, greater: bool = True) -> dict:
    return {
        "a": a,
        "b": b,
        "difference": b - a,
        "interval": [low, high],
        "greater_is_better": greater,
    }


def rules(decision: dict) -> dict[tuple[str, str], bool | None]:
    return {(r["score"], r["rule"]): r["passed"] for r in decision["rules"]}


def test_a_primary_score_worse_beyond_its_interval_is_refused_with_no_criteria_at_all():
    worse = {"accuracy": entry(0.97, 0.61, -0.41, -0.31)}
    decision = criteria.decide(worse, {}, "accuracy", BASELINE, 120)
    assert not decision["passed"]
    said = criteria.refusal(decision)
    assert "accuracy went from 0.9700 to 0.6100" in said and "not_worse_beyond_interval" in said
    assert "model@v1.0.0" in said and "OVERRIDE=" in said
    # Worse, but within noise: the interval reaches 0, so it is not refused.
    noisy = {"accuracy": entry(0.97, 0.95, -0.05, 0.01)}
    assert criteria.decide(noisy, {}, "accuracy", BASELINE, 120)["passed"]


def test_each_rule_reads_the_scores_direction():
    metrics = {
        "f1_macro": entry(0.80, 0.84, 0.01, 0.07),
        "rmse": entry(10.0, 9.0, -1.5, -0.5, greater=False),
    }
    declared = {
        "f1_macro": {"threshold": 0.85, "min_absolute_change": 0.02, "max_drop": 0.0},
        "rmse": {"threshold": 9.5, "min_relative_change": 0.05, "max_drop": 0.0},
    }
    found = rules(criteria.decide(metrics, declared, "f1_macro", BASELINE, 50))
    assert found[("f1_macro", "threshold")] is False  # 0.84 < 0.85
    assert found[("f1_macro", "min_absolute_change")] is True  # +0.04 >= 0.02
    assert found[("f1_macro", "max_drop")] is True  # the interval holds no drop
    assert found[("rmse", "threshold")] is True  # an error: 9.0 <= 9.5
    assert found[("rmse", "min_relative_change")] is True  # 10% lower error
    assert found[("rmse", "max_drop")] is True
    worse_error = {"rmse": entry(10.0, 10.4, -0.2, 1.0, greater=False)}
    drop = rules(criteria.decide(worse_error, {"rmse": {"max_drop": 0.5}}, "rmse", BASELINE, 50))
    assert drop[("rmse", "max_drop")] is False  # the interval reaches an error 1.0 higher


def test_without_a_release_in_prod_only_thresholds_are_checked():
    metrics = {"accuracy": {"b": 0.9, "greater_is_better": True}}
    declared = {"accuracy": {"threshold": 0.95, "min_absolute_change": 0.0}}
    decision = criteria.decide(metrics, declared, "accuracy", None, 30)
    assert rules(decision) == {
        ("accuracy", "threshold"): False,
        ("accuracy", "min_absolute_change"): None,
    }
    assert decision["baseline"] is None and "no baseline" in criteria.refusal(decision)


def test_an_override_passes_a_failed_decision_and_is_recorded_and_checked():
    worse = {"accuracy": entry(0.97, 0.61, -0.41, -0.31)}
    overridden = criteria.decide(worse, {}, "accuracy", BASELINE, 120, "hotfix for ticket 12")
    assert criteria.refusal(overridden) is None
    assert overridden["override"] == "hotfix for ticket 12"
    assert criteria.check_form(overridden) == []
    assert "OVERRIDDEN" in criteria.summary(overridden)
    stripped = {**overridden, "override": None}
    assert criteria.check_form(stripped) == [
        "the statement's release_decision refused the release and names no override"
    ]
    with pytest.raises(RegistryError, match="OVERRIDE= is empty"):
        criteria.require_reason("  ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("criteria: [1]\n", "criteria: expected a mapping"),
        ("criteria: {accuracy: {treshold: 0.9}}\n", "criteria.accuracy.treshold: not a rule"),
        ("criteria: {accuracy: {threshold: high}}\n", "'high' is not a finite number"),
        ("criteria: {accuracy: {max_drop: -1}}\n", "is not a number of 0 or more"),
        ("criteria: {accuracy: {threshold: .nan}}\n", "is not a finite number"),
        ("criteria: {accuracy: [}\n", "is not valid YAML"),
        ("criterion: {accuracy: {threshold: 0.9}}\n", "the key 'criterion' is not one"),
        ("- accuracy\n", "expected a mapping"),
    ],
)
def test_bad_criteria_are_named_with_the_file_the_key_and_the_fix(tmp_path, text, problem):
    path = tmp_path / "default.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="Fix: ") as refused:
        criteria.load(path)
    assert problem in str(refused.value) and str(path) in str(refused.value)


def test_a_criterion_on_a_score_evaluate_does_not_give_is_named():
    with pytest.raises(ConfigError, match=r"criteria\.auc: evaluate gives no such score"):
        criteria.decide(
            {"accuracy": entry(0.9, 0.9, 0, 0)}, {"auc": {"threshold": 0.5}}, "x", None, 1
        )


def test_a_relative_change_from_zero_follows_the_direction_and_stays_json():
    import json

    gained = {"r2": entry(0.0, 0.3, 0.1, 0.5)}
    lost = {"r2": entry(0.0, -0.3, -0.5, -0.1)}
    declared = {"r2": {"min_relative_change": 0.05}}
    assert rules(criteria.decide(gained, declared, "r2", BASELINE, 9))[
        ("r2", "min_relative_change")
    ]
    decision = criteria.decide(lost, declared, "r2", BASELINE, 9)
    assert rules(decision)[("r2", "min_relative_change")] is False
    json.dumps(decision, allow_nan=False)


def test_a_primary_score_evaluate_does_not_give_is_named():
    with pytest.raises(ConfigError, match=r"PRIMARY_SCORE names 'auc'.*Fix: "):
        criteria.decide({"accuracy": entry(0.9, 0.9, 0, 0)}, {}, "auc", BASELINE, 1)


def test_a_prod_model_that_cannot_score_the_rows_refuses_unless_overridden():
    refused = criteria.unscorable(BASELINE, "no column 'age'")
    assert "model@v1.0.0 cannot score this commit's test rows (no column 'age')" in (
        criteria.refusal(refused)
    )
    overridden = criteria.unscorable(BASELINE, "no column 'age'", "the schema changed, ADR 7")
    assert criteria.refusal(overridden) is None and criteria.check_form(overridden) == []
