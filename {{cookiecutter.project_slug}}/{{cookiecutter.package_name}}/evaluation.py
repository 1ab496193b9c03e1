"""How the model does on the held-out rows: its scores (metrics.json) and its plot tables
(one CSV file each in the plots folder, which DVC plots draws: ``dvc plots show``/``diff``).

Add a plot: write a function of an :class:`Evaluation` that returns CSV text, and add one line
for it to PLOTS under its task. evaluate writes it to ``<plots folder>/<name>.csv``, verify
compares it, and ``dvc plots show`` draws it (dvc.yaml's top-level ``plots:`` can name its axes
and template).

Scores come from scikit-learn's own functions (sklearn.metrics), whose definitions are the
ones people compare with; classes keep their names. The machinery's contract
(reproml.runtime.contract) refuses predictions that are not one label or number per row,
and scores outside their ranges, before anything is written. Curves are
sampled on fixed grids (101 points), so a file's size does not grow with the test table and two
revisions compare point by point; values are written with six decimals, so the files are
byte-identical whenever the model's scores are. Multiclass curves are one class against the
rest; a binary model's curves are those of its positive class. A ROC or precision-recall row
also names its curve for the plot's legend, with scikit-learn's area of the same scores to
three decimals (``malignant (AUC 0.993)``, ``malignant (AP 0.990)``); the templates in
plots/templates draw the rest (the diagonals, y = x, the counts in the confusion cells).
"""

import csv
import io
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from reproml.runtime.contract import COUNT

# The range of every score scores() writes, per-class ones included: evaluate stops when one
# falls outside (reproml.runtime.contract). Add one here when you add a score.
METRIC_RANGES = {
    **dict.fromkeys(
        ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc_macro"), (0.0, 1.0)
    ),
    **dict.fromkeys(("f1", "precision", "recall"), (0.0, 1.0)),
    **dict.fromkeys(("rmse", "mae", "mape"), (0.0, math.inf)),
    "r2": (-math.inf, 1.0),
    **dict.fromkeys(("n_test", "support"), COUNT),
}
# The scores where lower is better (errors): `make compare` and the release criteria read a
# change of these the other way round.
LOWER_IS_BETTER = ("rmse", "mae", "mape")
# The score `make release` never lets fall below prod's beyond its interval, per task.
PRIMARY_SCORE = {"classification": "accuracy", "regression": "r2"}
GRID = np.linspace(0.0, 1.0, 101)
CALIBRATION_BINS = 10
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5
# Cells (rows times columns) per predict call when scoring the shuffled copies: bounds the
# memory they take (2e6 float64 cells are 16 MB).
IMPORTANCE_BATCH_CELLS = 2_000_000
# Test rows per predict call: the copies a pipeline makes of its input (imputer, encoder,
# scaler) then take memory for this many rows, not for the whole test table.
PREDICT_BATCH_ROWS = 65_536
HEADERS = {
    "confusion": ["actual", "predicted"],
    "roc": ["class", "curve", "fpr", "tpr"],
    "precision_recall": ["class", "curve", "recall", "precision"],
    "calibration": ["class", "predicted", "observed"],
    "predicted_actual": ["actual", "predicted"],
    "residuals": ["predicted", "residual"],
    "error_by_decile": ["decile", "target_from", "target_to", "rows", "mae", "bias"],
}


def _csv(header: list[str], rows: list[list], exact: bool = False) -> str:
    """Floats with six decimals, or ``exact`` (the shortest text that reads back to the same
    bits, for tables that compare predictions)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [f"{value:.6f}" if isinstance(value, float) and not exact else value for value in row]
        )
    return out.getvalue()


def predicted_actual_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """Every test row's target and prediction, exactly: the predicted-against-actual plot, and
    the predictions a rebuild on another machine is compared with."""
    rows = zip(actual.astype(float).tolist(), predicted.astype(float).tolist(), strict=True)
    return _csv(HEADERS["predicted_actual"], [list(row) for row in rows], exact=True)


def residual_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """Residual (actual minus predicted) against the prediction: a pattern means the model
    misses something systematic."""
    residuals = actual.astype(float) - predicted.astype(float)
    rows = zip(predicted.astype(float).tolist(), residuals.tolist(), strict=True)
    return _csv(HEADERS["residuals"], [list(row) for row in rows])


def error_by_decile_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """Mean absolute error and bias (mean of predicted minus actual) in each decile of the
    target: where in the target's range the model is worse. Tied values share a decile."""
    import pandas as pd

    frame = pd.DataFrame({"actual": actual.astype(float), "predicted": predicted.astype(float)})
    frame["decile"] = pd.qcut(frame["actual"], 10, labels=False, duplicates="drop") + 1
    frame["error"] = frame["predicted"] - frame["actual"]
    frame["absolute"] = frame["error"].abs()
    grouped = frame.groupby("decile", sort=True).agg(
        target_from=("actual", "min"),
        target_to=("actual", "max"),
        rows=("actual", "size"),
        mae=("absolute", "mean"),
        bias=("error", "mean"),
    )
    rows = [
        [
            int(decile),
            float(row.target_from),
            float(row.target_to),
            int(row.rows),
            float(row.mae),
            float(row.bias),
        ]
        for decile, row in grouped.iterrows()
    ]
    return _csv(HEADERS["error_by_decile"], rows)


def predict_in_batches(method, features) -> np.ndarray:
    """``method`` (``predict``, ``predict_proba``, ``decision_function``) over the rows,
    PREDICT_BATCH_ROWS at a time, so the model's working copies are bounded by the batch.
    Each row's prediction depends on that row alone; a numeric library may still round a
    row differently in a batch of another size, but the batches are fixed, so every run
    gives the same bytes."""
    if len(features) <= PREDICT_BATCH_ROWS:
        return np.asarray(method(features))
    return np.concatenate(
        [
            np.asarray(method(features.iloc[start : start + PREDICT_BATCH_ROWS]))
            for start in range(0, len(features), PREDICT_BATCH_ROWS)
        ]
    )


def class_scores(model, features) -> tuple[list, np.ndarray | None, bool]:
    """``(classes, one score column per class, whether scores are probabilities)``; scores
    are None for a model with neither ``predict_proba`` nor ``decision_function``."""
    classes = list(model.classes_)
    if hasattr(model, "predict_proba"):
        scores = predict_in_batches(model.predict_proba, features)
        return classes, scores.astype(float, copy=False), True
    if hasattr(model, "decision_function"):
        scores = predict_in_batches(model.decision_function, features).astype(float, copy=False)
        if scores.ndim == 1:  # binary: the positive class's score
            scores = np.column_stack([-scores, scores])
        return classes, scores, False
    return classes, None, False


def _curve_classes(classes: list) -> list[int]:
    return [1] if len(classes) == 2 else list(range(len(classes)))


def _legend_entry(label, area_name: str, area: float | None) -> str:
    """A curve's name in the plot's legend: its class and its area to three decimals, so the
    text is the same whenever the scores are (``malignant (AUC 0.993)``)."""
    return f"{label} ({area_name} {'undefined' if area is None else f'{area:.3f}'})"


def roc_rows(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> str:
    """True-positive rate at each false-positive rate of the grid (the best reached there),
    each curve named with its AUC: scikit-learn's ``roc_auc_score`` of the same scores, not
    the area under the sampled grid (undefined when the test rows hold one side only)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    rows = []
    for index in _curve_classes(classes) if scores is not None else []:
        truth = actual == classes[index]
        fpr, tpr, _ = roc_curve(truth, scores[:, index])
        both_sides = 0 < truth.sum() < truth.size
        area = float(roc_auc_score(truth, scores[:, index])) if both_sides else None
        curve = _legend_entry(classes[index], "AUC", area)
        at = np.searchsorted(fpr, GRID, side="right") - 1
        rows += [
            [str(classes[index]), curve, x, float(y)] for x, y in zip(GRID, tpr[at], strict=True)
        ]
    return _csv(HEADERS["roc"], rows)


def precision_recall_rows(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> str:
    """Interpolated precision (the best at this recall or more) at each recall of the grid,
    each curve named with its average precision: scikit-learn's ``average_precision_score``
    of the same scores (undefined without a positive test row)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    rows = []
    for index in _curve_classes(classes) if scores is not None else []:
        truth = actual == classes[index]
        precision, recall, _ = precision_recall_curve(truth, scores[:, index])
        area = float(average_precision_score(truth, scores[:, index])) if truth.any() else None
        curve = _legend_entry(classes[index], "AP", area)
        order = np.argsort(recall, kind="stable")
        best_from = np.maximum.accumulate(precision[order][::-1])[::-1]
        at = np.clip(np.searchsorted(recall[order], GRID, side="left"), 0, len(order) - 1)
        values = best_from[at]
        rows += [
            [str(classes[index]), curve, x, float(y)] for x, y in zip(GRID, values, strict=True)
        ]
    return _csv(HEADERS["precision_recall"], rows)


def calibration_rows(
    actual: np.ndarray, classes: list, scores: np.ndarray | None, probabilities: bool
) -> str:
    """Observed frequency against mean predicted probability, in ten equal-width bins (bins
    with no prediction are left out). Empty unless the model gives probabilities."""
    from sklearn.calibration import calibration_curve

    rows = []
    for index in _curve_classes(classes) if scores is not None and probabilities else []:
        observed, predicted = calibration_curve(
            actual == classes[index], scores[:, index], n_bins=CALIBRATION_BINS
        )
        rows += [
            [str(classes[index]), float(x), float(y)]
            for x, y in zip(predicted, observed, strict=True)
        ]
    return _csv(HEADERS["calibration"], rows)


def _importance_score(task: str, actual: np.ndarray, predicted: np.ndarray) -> float:
    """What a shuffled column costs the model: accuracy, or R² for a regressor."""
    if task == "regression":
        from sklearn.metrics import r2_score

        return float(r2_score(actual, predicted))
    return float(np.mean(actual == predicted))


def importance_rows(model, features, actual: np.ndarray, seed: int, task: str) -> str:
    """Permutation importance: the mean drop in the score (accuracy, or R²) when one input
    column is shuffled, over IMPORTANCE_REPEATS seeded shuffles, on at most IMPORTANCE_ROWS
    test rows. Every model has it, and it speaks in the table's own column names rather than
    the encoded ones.

    scikit-learn's ``permutation_importance`` defines it the same way but calls ``predict``
    once per column and shuffle (150 calls for 30 columns), each paying the pipeline's
    per-call cost; here the shuffled copies (each column keeping its dtype) are stacked and
    predicted a few at a time, at most IMPORTANCE_BATCH_CELLS cells per call, so memory stays
    bounded whatever the table's width."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = np.arange(len(actual))
    if len(rows) > IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False))
    sample, target = features.iloc[rows].reset_index(drop=True), actual[rows]
    baseline = _importance_score(task, target, np.asarray(model.predict(sample)))
    shuffled = [column for column in sample.columns for _ in range(IMPORTANCE_REPEATS)]
    per_batch = max(1, IMPORTANCE_BATCH_CELLS // max(1, sample.size))
    drops: dict[str, list[float]] = {column: [] for column in sample.columns}
    for start in range(0, len(shuffled), per_batch):
        batch = shuffled[start : start + per_batch]
        copies = []
        for column in batch:
            copy = sample.copy()
            order = rng.permutation(len(rows))
            copy[column] = sample[column].take(order).reset_index(drop=True)
            copies.append(copy)
        predicted = np.asarray(model.predict(pd.concat(copies, ignore_index=True)))
        for index, column in enumerate(batch):
            part = predicted[index * len(rows) : (index + 1) * len(rows)]
            drops[column].append(baseline - _importance_score(task, target, part))
    pairs = sorted(
        ((column, float(np.mean(values))) for column, values in drops.items()),
        key=lambda pair: (-round(pair[1], 6), str(pair[0])),
    )
    return _csv(["feature", "importance"], [[str(name), value] for name, value in pairs])


def roc_auc_macro(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> float | None:
    """Area under the ROC curve, averaged over the curves drawn (None without scores)."""
    from sklearn.metrics import roc_auc_score

    areas = [
        float(roc_auc_score(actual == classes[index], scores[:, index]))
        for index in (_curve_classes(classes) if scores is not None else [])
        if 0 < np.sum(actual == classes[index]) < len(actual)
    ]
    return float(np.mean(areas)) if areas else None


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, macro-averaged precision, recall and F1, and the same per class by name, as
    scikit-learn's own functions compute them (the classes are those of either side, as
    ``f1_score(average="macro")`` takes them; a class never predicted scores 0)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    classes = sorted(set(np.unique(actual).tolist()) | set(np.unique(predicted).tolist()), key=str)
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=classes, zero_division=0.0
    )
    per_class = {
        str(label): {
            "f1": float(f1[index]),
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "support": int(support[index]),
        }
        for index, label in enumerate(classes)
    }
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        "f1_macro": float(np.mean(f1)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "n_test": int(actual.shape[0]),
        "per_class": per_class,
    }


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE and R² in the target's units, and MAPE (a fraction, not a percentage) unless
    a target is zero, where it is undefined: it is then left out rather than reported as huge."""
    from sklearn import metrics

    scores = {
        "rmse": float(metrics.root_mean_squared_error(actual, predicted)),
        "mae": float(metrics.mean_absolute_error(actual, predicted)),
        "r2": float(metrics.r2_score(actual, predicted)),
        "n_test": int(actual.shape[0]),
    }
    if not np.any(actual == 0):
        scores["mape"] = float(metrics.mean_absolute_percentage_error(actual, predicted))
    return scores


def confusion_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """One ``actual,predicted`` row per test row, as CSV: the input of DVC's confusion plot."""
    rows = [list(row) for row in zip(actual.tolist(), predicted.tolist(), strict=True)]
    return _csv(HEADERS["confusion"], rows, exact=True)


@dataclass
class Evaluation:
    """A fitted model's predictions on the held-out rows: what every score and plot reads."""

    model: Any
    features: Any
    actual: np.ndarray
    predicted: np.ndarray
    task: str
    seed: int

    @cached_property
    def class_scores(self) -> tuple[list, np.ndarray | None, bool]:
        return class_scores(self.model, self.features)


def scores(result: Evaluation) -> dict:
    """metrics.json: the task's scores (and a classifier's ROC AUC when it has scores)."""
    if result.task == "regression":
        return regression_metrics(result.actual, result.predicted)
    found = classification_metrics(result.actual, result.predicted)
    auc = roc_auc_macro(result.actual, *result.class_scores[:2])
    if auc is not None:
        found["roc_auc_macro"] = auc
    return found


def predicted_scores(task: str, actual: np.ndarray, predicted: np.ndarray) -> dict:
    """The task's scores of predicted labels or values alone (what `make compare` scores
    both versions with, on the same rows)."""
    if task == "regression":
        return regression_metrics(actual, predicted)
    return classification_metrics(actual, predicted)


def _importance(result: Evaluation) -> str:
    return importance_rows(result.model, result.features, result.actual, result.seed, result.task)


# The plot tables of each task, by file name (without .csv): one line per plot.
PLOTS = {
    "classification": {
        "confusion": lambda r: confusion_rows(r.actual, r.predicted),
        "roc": lambda r: roc_rows(r.actual, *r.class_scores[:2]),
        "precision_recall": lambda r: precision_recall_rows(r.actual, *r.class_scores[:2]),
        "calibration": lambda r: calibration_rows(r.actual, *r.class_scores),
        "importance": _importance,
    },
    "regression": {
        "predicted_actual": lambda r: predicted_actual_rows(r.actual, r.predicted),
        "residuals": lambda r: residual_rows(r.actual, r.predicted),
        "error_by_decile": lambda r: error_by_decile_rows(r.actual, r.predicted),
        "importance": _importance,
    },
}


def plot_tables(result: Evaluation) -> dict[str, str]:
    """``{file name: CSV text}`` of every plot of the task. The other task's plots are empty
    files, which DVC draws nothing for: dvc.yaml's plots: can then name every plot of both
    tasks, and `make data` can switch a project's task without touching it."""
    others = {name for task, plots in PLOTS.items() if task != result.task for name in plots}
    tables = {f"{name}.csv": "" for name in sorted(others - set(PLOTS[result.task]))}
    return tables | {f"{name}.csv": table(result) for name, table in PLOTS[result.task].items()}
