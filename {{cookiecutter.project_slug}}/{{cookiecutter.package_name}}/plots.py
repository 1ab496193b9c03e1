"""The evaluation plots, as small CSV tables that DVC plots draw (``dvc plots show``/``diff``).

Curves are sampled on fixed grids (101 points), so a file's size does not grow with the
test table and two revisions compare point by point; values are written with six decimals,
so the files are byte-identical whenever the model's scores are. Multiclass curves are one
class against the rest; a binary model's curves are those of its positive class.

Each task has its own plots (CLASSIFICATION_PLOTS, REGRESSION_PLOTS; permutation importance is
both's). evaluate writes every table of both, the other task's as a header without rows, which
DVC does not draw, so that dvc.yaml and conf/paths stay the same for both tasks and
`make data` can switch a project from one to the other without touching the pipeline.
"""

import csv
import io

import numpy as np

GRID = np.linspace(0.0, 1.0, 101)
CALIBRATION_BINS = 10
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5
HEADERS = {
    "confusion": ["actual", "predicted"],
    "roc": ["class", "fpr", "tpr"],
    "precision_recall": ["class", "recall", "precision"],
    "calibration": ["class", "predicted", "observed"],
    "predicted_actual": ["actual", "predicted"],
    "residuals": ["predicted", "residual"],
    "error_by_decile": ["decile", "target_from", "target_to", "rows", "mae", "bias"],
}
CLASSIFICATION_PLOTS = ("confusion", "roc", "precision_recall", "calibration")
REGRESSION_PLOTS = ("predicted_actual", "residuals", "error_by_decile")
IMPORTANCE_SCORING = {"classification": "accuracy", "regression": "r2"}


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


def not_drawn(task: str) -> dict[str, str]:
    """The other task's plot tables: a header and no rows (DVC draws nothing for them)."""
    names = REGRESSION_PLOTS if task == "classification" else CLASSIFICATION_PLOTS
    return {name: _csv(HEADERS[name], []) for name in names}


def predicted_actual_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """Every test row's target and prediction, exactly: the predicted-against-actual plot, and
    the predictions a rebuild on another machine is compared with (repro/rebuild.py)."""
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


def class_scores(model, features) -> tuple[list, np.ndarray | None, bool]:
    """``(classes, one score column per class, whether scores are probabilities)``; scores
    are None for a model with neither ``predict_proba`` nor ``decision_function``."""
    classes = list(model.classes_)
    if hasattr(model, "predict_proba"):
        return classes, np.asarray(model.predict_proba(features), dtype=float), True
    if hasattr(model, "decision_function"):
        scores = np.asarray(model.decision_function(features), dtype=float)
        if scores.ndim == 1:  # binary: the positive class's score
            scores = np.column_stack([-scores, scores])
        return classes, scores, False
    return classes, None, False


def _curve_classes(classes: list) -> list[int]:
    return [1] if len(classes) == 2 else list(range(len(classes)))


def roc_rows(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> str:
    """True-positive rate at each false-positive rate of the grid (the best reached there)."""
    from sklearn.metrics import roc_curve

    rows = []
    for index in _curve_classes(classes) if scores is not None else []:
        fpr, tpr, _ = roc_curve(actual == classes[index], scores[:, index])
        at = np.searchsorted(fpr, GRID, side="right") - 1
        rows += [[str(classes[index]), x, float(y)] for x, y in zip(GRID, tpr[at], strict=True)]
    return _csv(HEADERS["roc"], rows)


def precision_recall_rows(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> str:
    """Interpolated precision (the best at this recall or more) at each recall of the grid."""
    from sklearn.metrics import precision_recall_curve

    rows = []
    for index in _curve_classes(classes) if scores is not None else []:
        precision, recall, _ = precision_recall_curve(actual == classes[index], scores[:, index])
        order = np.argsort(recall, kind="stable")
        best_from = np.maximum.accumulate(precision[order][::-1])[::-1]
        at = np.clip(np.searchsorted(recall[order], GRID, side="left"), 0, len(order) - 1)
        values = best_from[at]
        rows += [[str(classes[index]), x, float(y)] for x, y in zip(GRID, values, strict=True)]
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


def importance_rows(model, features, actual: np.ndarray, seed: int, task: str) -> str:
    """Permutation importance (mean drop in the score, accuracy or R², when one input column is
    shuffled) on at most IMPORTANCE_ROWS test rows, seeded: every model has it, and it speaks
    in the table's own column names rather than the encoded ones."""
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    rows = np.arange(len(actual))
    if len(rows) > IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False))
    found = permutation_importance(
        model,
        features.iloc[rows],
        actual[rows],
        n_repeats=IMPORTANCE_REPEATS,
        random_state=seed,
        scoring=IMPORTANCE_SCORING[task],
    )
    pairs = sorted(
        zip(features.columns, found.importances_mean, strict=True),
        key=lambda pair: (-round(float(pair[1]), 6), str(pair[0])),
    )
    return _csv(["feature", "importance"], [[str(name), float(value)] for name, value in pairs])


def roc_auc_macro(actual: np.ndarray, classes: list, scores: np.ndarray | None) -> float | None:
    """Area under the ROC curve, averaged over the curves drawn (None without scores)."""
    from sklearn.metrics import roc_auc_score

    areas = [
        float(roc_auc_score(actual == classes[index], scores[:, index]))
        for index in (_curve_classes(classes) if scores is not None else [])
        if 0 < np.sum(actual == classes[index]) < len(actual)
    ]
    return float(np.mean(areas)) if areas else None
