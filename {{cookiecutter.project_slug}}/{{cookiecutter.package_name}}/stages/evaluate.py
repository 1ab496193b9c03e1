"""evaluate: score the model on the held-out table; write the metrics and the plots that
`dvc plots show` draws: for classification the confusion matrix, ROC, precision-recall and
calibration; for regression predicted against actual, residuals and the error by decile of
the target; for both, permutation importance. The other task's tables are written without
rows (plots.py says why)."""

from pathlib import Path

from .. import plots
from ..config import ProjectConfig
from ..data import read_for_model
from ..metrics import classification_metrics, confusion_rows, regression_metrics
from ..repro.artifacts import load_recorded_model
from ..repro.io import atomic_write_text, write_json


def _classification(model, features, actual, predicted) -> tuple[dict, dict[str, str]]:
    classes, scores, probabilities = plots.class_scores(model, features)
    metrics = classification_metrics(actual, predicted)
    auc = plots.roc_auc_macro(actual, classes, scores)
    if auc is not None:
        metrics["roc_auc_macro"] = auc
    return metrics, {
        "roc": plots.roc_rows(actual, classes, scores),
        "precision_recall": plots.precision_recall_rows(actual, classes, scores),
        "calibration": plots.calibration_rows(actual, classes, scores, probabilities),
        "confusion": confusion_rows(actual, predicted),
    }


def _regression(actual, predicted) -> tuple[dict, dict[str, str]]:
    return regression_metrics(actual, predicted), {
        "predicted_actual": plots.predicted_actual_rows(actual, predicted),
        "residuals": plots.residual_rows(actual, predicted),
        "error_by_decile": plots.error_by_decile_rows(actual, predicted),
    }


def run(config: ProjectConfig) -> dict[str, Path]:
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    features, actual = read_for_model(config.paths.test, config.data)
    predicted = model.predict(features)
    task = config.data.task
    if task == "regression":
        metrics, written = _regression(actual, predicted)
    else:
        metrics, written = _classification(model, features, actual, predicted)
    written["importance"] = plots.importance_rows(model, features, actual, config.seed, task)
    written |= plots.not_drawn(task)
    paths = config.paths
    return {
        "metrics": write_json(paths.metrics, metrics),
        **{name: atomic_write_text(getattr(paths, name), text) for name, text in written.items()},
    }
