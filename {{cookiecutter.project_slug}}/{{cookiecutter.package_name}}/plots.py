"""The evaluation plots, as small CSV tables that DVC plots draw (``dvc plots show``/``diff``).

Curves are sampled on fixed grids (101 points), so a file's size does not grow with the
test table and two revisions compare point by point; values are written with six decimals,
so the files are byte-identical whenever the model's scores are. Multiclass curves are one
class against the rest; a binary model's curves are those of its positive class.
"""

import csv
import io

import numpy as np

GRID = np.linspace(0.0, 1.0, 101)
CALIBRATION_BINS = 10
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{value:.6f}" if isinstance(value, float) else value for value in row])
    return out.getvalue()


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
    return _csv(["class", "fpr", "tpr"], rows)


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
    return _csv(["class", "recall", "precision"], rows)


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
    return _csv(["class", "predicted", "observed"], rows)


def importance_rows(model, features, actual: np.ndarray, seed: int) -> str:
    """Permutation importance (mean drop in accuracy when one input column is shuffled) on at
    most IMPORTANCE_ROWS test rows, seeded: every model has it, and it speaks in the table's
    own column names rather than the encoded ones."""
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
        scoring="accuracy",
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
