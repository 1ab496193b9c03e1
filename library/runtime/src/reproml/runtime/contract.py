"""What a trained model and its scores must be, checked where they are made: train checks the
fitted model's predictions, evaluate the test predictions and every metric. A model can be
reproducibly wrong (CatBoost's multiclass ``predict`` returned an (n, 1) column, and the
metrics of the broadcast comparison said accuracy 0.38 and an F1 of 72): verify would match it
and release would tag it. These checks stop the stage with a message naming the model, the
problem and the fix, so neither ever sees such a model.
"""

import math
from typing import Any

import numpy as np

from .errors import ContractError

# Rows of the training table train predicts to check the fitted model's output: enough to see
# its shape and labels, a fixed cost whatever the table's size.
FIT_CHECK_ROWS = 1000
# The range of a metric that counts rows: a whole number, 0 or more.
COUNT = "count"
# How far a probability may stray from [0, 1], and a row's sum from 1, by float rounding.
PROBABILITY_SLACK = 1e-6


def _named(model: Any) -> str:
    """The estimator's class name, through a pipeline and the machinery's adapter."""
    steps = getattr(model, "steps", None)
    if steps:
        model = steps[-1][1]
    model = getattr(model, "estimator", model) if hasattr(model, "encode_labels") else model
    return type(model).__name__


def check_predictions(
    model: Any, predicted: Any, rows: int, task: str, where: str, classes: Any = None
) -> np.ndarray:
    """``predicted`` as a 1-D array, refused unless it holds one prediction per row: a label
    among the classes the model was trained on, or for regression a finite number."""
    name = _named(model)
    values = np.asarray(predicted)
    if values.ndim != 1 or values.shape[0] != rows:
        raise ContractError(
            f"{where}: {name}.predict returned an array of shape {values.shape} for {rows} "
            f"rows; a {'regressor' if task == 'regression' else 'classifier'} must return one "
            f"prediction per row (shape ({rows},)). Fix: make predict return a 1-D array (the "
            "machinery adapts the shipped libraries in reproml.runtime.determinism; a class "
            "of your own must do it itself)."
        )
    if task == "regression":
        if values.dtype.kind not in "biuf":
            raise ContractError(
                f"{where}: {name}.predict returned {values.dtype} values; a regressor must "
                "return numbers. Fix: pick a regressor in conf/model/ (task: regression)."
            )
        bad = int(np.count_nonzero(~np.isfinite(values.astype(float))))
        if bad:
            raise ContractError(
                f"{where}: {name}.predict returned {bad} non-finite predictions (NaN or "
                f"infinity) of {rows}. Fix: check the model's parameters (a learning rate too "
                "high diverges) and the features' scale (conf/preprocess: scale_numeric)."
            )
        return values
    known = np.asarray(getattr(model, "classes_", []) if classes is None else classes)
    strange = [label for label in _distinct(values) if not _among(label, known)]
    if strange:
        shown = ", ".join(repr(label) for label in strange[:3])
        raise ContractError(
            f"{where}: {name}.predict returned labels that are not among the classes it was "
            f"trained on ({shown}; the classes are "
            f"{', '.join(repr(label) for label in known.tolist()[:10])}). Fix: make predict "
            "return labels of classes_ (a class of your own must decode what it predicts)."
        )
    return values


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (an object array keeps numpy scalars where
    a typed one gives Python values), so labels compare by value and kind alike."""
    return value.item() if isinstance(value, np.generic) else value


def _distinct(values: np.ndarray) -> list:
    try:
        found = np.unique(values).tolist()
    except TypeError:  # labels of mixed types: compare them one by one
        found = values.tolist()
    return list(dict.fromkeys(_plain(value) for value in found))


def _among(label: Any, known: np.ndarray) -> bool:
    """``label`` is one of ``known``: equal, and of the same kind (a classifier trained on
    the labels 0 and 1 that predicts 1.0 or True has changed its labels' type)."""
    return any(
        label == other and type(label) is type(other)
        for other in (_plain(value) for value in known.tolist())
    )


def check_probabilities(model: Any, probabilities: Any, rows: int, where: str) -> np.ndarray:
    """``probabilities`` as an array, refused unless it holds one row per input row and one
    column per class of ``classes_`` (in that order: each column is named by its class), each
    a probability in [0, 1], each row summing to 1."""
    name, classes = _named(model), len(getattr(model, "classes_", []))
    values = np.asarray(probabilities, dtype=float)
    if values.shape != (rows, classes):
        raise ContractError(
            f"{where}: {name}.predict_proba returned shape {values.shape} for {rows} rows of "
            f"{classes} classes; it must return one column per class of classes_, in its "
            f"order (shape ({rows}, {classes})). Fix: make predict_proba return that (the "
            "machinery adapts the shipped libraries; a class of your own must do it itself)."
        )
    slack = PROBABILITY_SLACK
    outside = ~np.isfinite(values) | (values < -slack) | (values > 1 + slack)
    unsummed = np.abs(values.sum(axis=1) - 1) > slack * max(1, classes)
    wrong = outside.any(axis=1) | unsummed
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise ContractError(
            f"{where}: {name}.predict_proba gave row {row + 1} the values "
            f"{values[row].tolist()[:6]}: a row must hold probabilities in [0, 1] that sum to "
            "1. Fix: make predict_proba return probabilities (a score that is not one belongs "
            "in decision_function)."
        )
    return values


def check_fitted(model: Any, features: Any, task: str, where: str) -> None:
    """A stage's check of the model it fitted: its predictions on the first FIT_CHECK_ROWS
    rows it was fitted on must keep the contract above."""
    sample = features.iloc[:FIT_CHECK_ROWS]
    check_predictions(model, model.predict(sample), len(sample), task, where)


def check_metrics(
    metrics: dict[str, Any], ranges: dict[str, Any], where: str, prefix: str = ""
) -> dict[str, Any]:
    """``metrics``, refused unless every score lies in the closed range ``ranges`` gives its
    key (``(low, high)``; COUNT for a count of rows), however deep it is nested (per-class
    scores). A key without a range is not checked: the team's scoring code declares them."""
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            check_metrics(value, ranges, where, f"{name}.")
            continue
        bounds = ranges.get(key)
        if bounds == COUNT:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise _out_of_range(where, name, value, "a count (a whole number, 0 or more)")
            continue
        if bounds is None:
            continue
        low, high = bounds
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or math.isnan(number) or not low <= number <= high:
            span = f"[{low:g}, {high:g}]".replace("inf", "∞")
            raise _out_of_range(where, name, value, f"a score in {span}")
    return metrics


def _out_of_range(where: str, key: str, value: Any, expected: str) -> ContractError:
    return ContractError(
        f"{where}: metrics.{key} is {value!r}, which is not {expected}: the predictions or "
        "the scoring are wrong, so this model is not scored. Fix: check what the model's "
        "predict returns (one label or number per row) and the code that scores it."
    )
