"""Predictions for raw rows, in the input format, with the pipeline's verified model."""

import csv
import io
import os
import re
from pathlib import Path

from reproml.runtime.errors import DataError
from reproml.runtime.io import atomic_write_text
from reproml.runtime.model_file import load_recorded_model

from .config import ProjectConfig
from .data import features_frame, read_raw

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


def check_output(rows: str | Path, out: str | Path) -> None:
    """Refuse an output that would destroy the input rows or cannot be a file."""
    rows, out = Path(rows), Path(out)
    if out.is_dir():
        raise DataError(
            f"{out}: is a directory. Fix: give the path of a file to write, e.g. "
            f"{out / 'predictions.csv'}."
        )
    same = out.resolve() == rows.resolve()
    if not same and out.exists() and rows.exists():
        same = os.path.samefile(out, rows)
    if same:
        raise DataError(
            f"{out}: is the input file {rows}; writing there would overwrite the rows. Fix: "
            "give another output path, e.g. predictions.csv."
        )


def predict(config: ProjectConfig, rows: str | Path, out: str | Path) -> Path:
    """Read raw rows (CSV or Parquet, the target optional), write a CSV of their dropped
    columns (ids, to join on) and one ``prediction`` per row: a label as the classes are
    named, or for regression a number (written exactly, as Python writes a float).
    Cells a spreadsheet would run as formulas are written with a leading ``'``."""
    check_output(rows, out)
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    table = read_raw(rows, config.data, with_target=False)
    predicted = model.predict(features_frame(table, config.data))
    kept = [name for name in config.data.drop if name in table.column_names]
    columns = [table[name].to_pylist() for name in kept]
    rows = zip(*columns, predicted.tolist(), strict=True)
    try:
        return atomic_write_text(out, csv_text([[*kept, "prediction"], *rows]))
    except OSError as error:
        raise DataError(
            f"{out}: cannot be written ({error.strerror or error}). Fix: give a path in a "
            "directory you can write to."
        ) from None
