"""Predictions for raw rows, with the pipeline's verified model: each row's id, its prediction
and, for a classifier, the probability of each class. `make predict IN=... OUT=...` runs it;
with VERSION=, the machinery runs the release's own copy of it, in the release's environment."""

import csv
import io
import re
from pathlib import Path

from reproml.runtime.contract import check_predictions, check_probabilities
from reproml.runtime.errors import DataError
from reproml.runtime.io import atomic_write_text, check_output_path
from reproml.runtime.model_file import load_recorded_model

from .config import ProjectConfig
from .data import features_frame, read_raw
from .evaluation import predict_in_batches

# A spreadsheet runs a cell that begins with one of these as a formula (OWASP, "CSV
# Injection"); a plain number such as -3 or +1.5e-2 is still a number, not a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value):
    """``value``, with a ``'`` in front if a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(rows) -> str:
    """Spreadsheet-safe CSV with "\\n" line ends, in which a cell holding "\\r" is quoted all
    the same: csv quotes only the characters of its own line end, so it is given "\\r\\n"."""
    line, text = io.StringIO(), io.StringIO()
    writer = csv.writer(line, lineterminator="\r\n")
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        text.write(line.getvalue()[:-2] + "\n")
        line.seek(0)
        line.truncate()
    return text.getvalue()


def predict(config: ProjectConfig, rows: str | Path, out: str | Path) -> Path:
    """Read raw rows (CSV or Parquet; only the columns the model uses must be there) and
    write a CSV with one line per row: its id (the dropped id columns the rows have, else
    ``row``, its number in the file from 1), its ``prediction`` (a label as the classes are
    named, or for regression a number, written exactly), and for a classifier with
    probabilities one ``probability_<class>`` column per class. Cells a spreadsheet would run
    as formulas are written with a leading ``'``."""
    check_output_path(rows, out)
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    table = read_raw(rows, config.data, with_target=False)
    features = features_frame(table, config.data)
    task = config.data.task
    predicted = predict_in_batches(model.predict, features)
    predicted = check_predictions(model, predicted, len(features), task, f"predict {rows}")
    ids = [name for name in config.data.drop if name in table.column_names]
    header = [*ids] if ids else ["row"]
    columns = [table[name].to_pylist() for name in ids] or [range(1, len(features) + 1)]
    header.append("prediction")
    columns.append(predicted.tolist())
    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = predict_in_batches(model.predict_proba, features)
        probabilities = check_probabilities(model, probabilities, len(features), f"predict {rows}")
        for index, label in enumerate(model.classes_.tolist()):
            header.append(f"probability_{label}")
            columns.append(probabilities[:, index].astype(float).tolist())
    lines = zip(*columns, strict=True)
    try:
        return atomic_write_text(out, csv_text([header, *lines]))
    except OSError as error:
        raise DataError(
            f"{out}: cannot be written ({error.strerror or error}). Fix: give a path in a "
            "directory you can write to."
        ) from None
