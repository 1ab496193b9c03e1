"""evaluate: score the model on the held-out table; write metrics and the confusion plot."""

from pathlib import Path

from ..config import ProjectConfig
from ..data import read_for_model
from ..metrics import classification_metrics, confusion_rows
from ..repro.artifacts import load_recorded_model
from ..repro.io import atomic_write_text, write_json


def run(config: ProjectConfig) -> dict[str, Path]:
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    features, actual = read_for_model(config.paths.test, config.data)
    predicted = model.predict(features)
    return {
        "metrics": write_json(config.paths.metrics, classification_metrics(actual, predicted)),
        "confusion": atomic_write_text(config.paths.confusion, confusion_rows(actual, predicted)),
    }
