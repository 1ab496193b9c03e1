"""evaluate: score the model on the held-out table; write the metrics and the plots (confusion,
ROC, precision-recall, calibration and permutation importance) that `dvc plots show` draws."""

from pathlib import Path

from .. import plots
from ..config import ProjectConfig
from ..data import read_for_model
from ..metrics import classification_metrics, confusion_rows
from ..repro.artifacts import load_recorded_model
from ..repro.io import atomic_write_text, write_json


def run(config: ProjectConfig) -> dict[str, Path]:
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    features, actual = read_for_model(config.paths.test, config.data)
    predicted = model.predict(features)
    classes, scores, probabilities = plots.class_scores(model, features)
    metrics = classification_metrics(actual, predicted)
    auc = plots.roc_auc_macro(actual, classes, scores)
    if auc is not None:
        metrics["roc_auc_macro"] = auc
    paths = config.paths
    written = {
        "roc": plots.roc_rows(actual, classes, scores),
        "precision_recall": plots.precision_recall_rows(actual, classes, scores),
        "calibration": plots.calibration_rows(actual, classes, scores, probabilities),
        "importance": plots.importance_rows(model, features, actual, config.seed),
        "confusion": confusion_rows(actual, predicted),
    }
    return {
        "metrics": write_json(paths.metrics, metrics),
        **{name: atomic_write_text(getattr(paths, name), text) for name, text in written.items()},
    }
