"""Predictions for new rows with the pipeline's model, loaded only after its hash checks out."""

from pathlib import Path

import numpy as np

from .config import ProjectConfig
from .dataio import atomic_write_text
from .models import load_recorded_model


def predict(config: ProjectConfig, features_csv: str | Path, out: str | Path) -> Path:
    """Read a CSV with the training features (a header, no target), write one label per row."""
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    features = np.loadtxt(features_csv, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    labels = model.predict(features)
    return atomic_write_text(out, "prediction\n" + "".join(f"{label}\n" for label in labels))
