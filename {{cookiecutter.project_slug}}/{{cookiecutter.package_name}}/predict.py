"""Predictions for raw rows, in the input format, with the pipeline's verified model."""

import csv
import io
from pathlib import Path

from .config import ProjectConfig
from .data import features_frame, read_raw
from .repro.artifacts import load_recorded_model
from .repro.io import atomic_write_text


def predict(config: ProjectConfig, rows: str | Path, out: str | Path) -> Path:
    """Read raw rows (CSV or Parquet, the target optional), write a CSV of their dropped
    columns (ids, to join on) and one ``prediction`` per row, labels as the classes are named."""
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    table = read_raw(rows, config.data, with_target=False)
    predicted = model.predict(features_frame(table, config.data))
    kept = [name for name in config.data.drop if name in table.column_names]
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    writer.writerow([*kept, "prediction"])
    columns = [table[name].to_pylist() for name in kept]
    writer.writerows(zip(*columns, predicted.tolist(), strict=True))
    return atomic_write_text(out, lines.getvalue())
