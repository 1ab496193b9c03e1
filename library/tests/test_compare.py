"""`make compare`'s figures against scikit-learn's own on the same rows (the library is the
oracle), its bootstrap seeded and paired, and the movement of predictions."""

import numpy as np
import pytest
from sklearn import metrics

from reproml.tools.compare import changed, scores

RNG = np.random.default_rng(7)
LABELS = RNG.choice(["cat", "dog", "eel"], size=120).tolist()
GUESS_A = [label if RNG.random() < 0.7 else "dog" for label in LABELS]
GUESS_B = [label if RNG.random() < 0.8 else "cat" for label in LABELS]
ACTUAL = RNG.normal(size=150)
VALUES_A = (ACTUAL + RNG.normal(scale=0.5, size=150)).tolist()
VALUES_B = (ACTUAL + RNG.normal(scale=0.3, size=150)).tolist()
LOWER_IS_BETTER = ("rmse", "mae")


def oracle(task: str, actual, predicted) -> dict:
    """The scores as scikit-learn gives them, and a count (not a metric) beside them."""
    if task == "classification":
        return {
            "accuracy": metrics.accuracy_score(actual, predicted),
            "f1_macro": metrics.f1_score(actual, predicted, average="macro"),
            "rows": len(actual),
        }
    return {
        "r2": metrics.r2_score(actual, predicted),
        "rmse": metrics.root_mean_squared_error(actual, predicted),
        "mae": metrics.mean_absolute_error(actual, predicted),
        "rows": len(actual),
    }


def compared(task, actual, a, b, seed=3, resamples=100):
    return scores(oracle, LOWER_IS_BETTER, task, actual, a, b, seed, resamples)


def test_classification_scores_are_scikit_learns_on_the_same_rows():
    found = compared("classification", LABELS, GUESS_A, GUESS_B)
    assert found["accuracy"]["a"] == metrics.accuracy_score(LABELS, GUESS_A)
    assert found["accuracy"]["b"] == metrics.accuracy_score(LABELS, GUESS_B)
    assert found["f1_macro"]["b"] == metrics.f1_score(LABELS, GUESS_B, average="macro")
    for entry in found.values():
        assert entry["difference"] == pytest.approx(entry["b"] - entry["a"])
        low, high = entry["interval"]
        assert low <= entry["difference"] <= high and entry["greater_is_better"]


def test_regression_scores_are_scikit_learns_and_lower_error_is_better():
    found = compared("regression", ACTUAL.tolist(), VALUES_A, VALUES_B)
    assert found["r2"]["a"] == metrics.r2_score(ACTUAL, VALUES_A)
    assert found["rmse"]["b"] == metrics.root_mean_squared_error(ACTUAL, VALUES_B)
    assert found["mae"]["a"] == metrics.mean_absolute_error(ACTUAL, VALUES_A)
    assert not found["rmse"]["greater_is_better"] and found["r2"]["greater_is_better"]
    assert found["rmse"]["interval"][1] < 0, "B is clearly better: the interval excludes 0"


def test_the_interval_is_seeded_and_paired():
    once = compared("classification", LABELS, GUESS_A, GUESS_B, seed=11)
    assert once == compared("classification", LABELS, GUESS_A, GUESS_B, seed=11)
    assert once != compared("classification", LABELS, GUESS_A, GUESS_B, seed=12)
    # Paired: the same model against itself differs by exactly 0 on every draw.
    same = compared("classification", LABELS, GUESS_A, GUESS_A, seed=11)
    assert all(entry["interval"] == [0.0, 0.0] for entry in same.values())


def test_the_share_of_changed_predictions_and_the_distribution_of_change():
    moved = changed("classification", GUESS_A, GUESS_B)
    expected = sum(x != y for x, y in zip(GUESS_A, GUESS_B, strict=True))
    assert moved == {"rows": 120, "changed": expected, "share": expected / 120}
    spread = changed("regression", VALUES_A, VALUES_B)
    delta = np.array(VALUES_B) - np.array(VALUES_A)
    assert spread["quantiles"]["median"] == float(np.median(delta))
    assert spread["mean_absolute_change"] == pytest.approx(float(np.abs(delta).mean()))


def test_only_the_float_scores_are_metrics():
    found = compared("regression", ACTUAL.tolist(), VALUES_A, VALUES_B)
    assert sorted(found) == ["mae", "r2", "rmse"]
