"""evaluate: score the model on the held-out table; write metrics and the confusion plot."""

from pathlib import Path

from ..config import ProjectConfig
from ..dataio import atomic_write_text, read_table, write_json
from ..metrics import classification_metrics, confusion_rows
from ..models import load_recorded_model


def run(config: ProjectConfig) -> dict[str, Path]:
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    _, features, actual = read_table(config.paths.test, config.data.target)
    predicted = model.predict(features)
    return {
        "metrics": write_json(config.paths.metrics, classification_metrics(actual, predicted)),
        "confusion": atomic_write_text(config.paths.confusion, confusion_rows(actual, predicted)),
    }
