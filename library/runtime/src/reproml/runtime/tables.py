"""Tables read against a schema and written as pinned Parquet: a bad table is refused when it
is read, with the file, the column, the problem and the fix named, before any output exists;
prepared tables are written with every Parquet writer option pinned, so the same rows give the
same bytes on every run, clone and shipped Python. The team's data.py says what its schema is
(:class:`TableSchema`); this module reads and writes by it.
"""

import codecs
import csv
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .cells import DATE_FORMATS, DEFAULT_MISSING, DELIMITERS, FALSE_VALUES, TRUE_VALUES
from .errors import DataError
from .io import commit_partial, partial_path


@dataclass(frozen=True)
class TableSchema:
    """What a table must hold. ``kinds`` maps each declared column to numeric, categorical,
    boolean, datetime, drop or target; ``label`` is the target's type (string, integer,
    boolean, or number for regression); ``source`` names the file the fix goes in; ``derived``
    maps computed columns to functions of the raw table; ``model_columns`` are the columns
    the model uses (rows to predict need only these); ``drop_missing_target`` leaves rows
    without a target out instead of refusing the table."""

    kinds: dict[str, str]
    target: str
    label: str
    task: str
    drop: tuple[str, ...] = ()
    missing: tuple[str, ...] = DEFAULT_MISSING
    source: str = "the schema"
    derived: dict[str, Callable[[pa.Table], Any]] = field(default_factory=dict)
    derived_source: str = "the derived columns"
    delimiter: str = ","
    drop_missing_target: bool = False
    model_columns: tuple[str, ...] | None = None

    def used_columns(self) -> set[str]:
        """The declared columns the model uses (every feature column when not given)."""
        if self.model_columns is not None:
            return set(self.model_columns)
        return {name for name, kind in self.kinds.items() if kind not in ("drop", "target")}


CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
# Every option that reaches the bytes of a Parquet file, pinned; the writer's own version is
# pinned by runtime.lock. Statistics and dictionaries are functions of the values alone.
PARQUET_WRITE_OPTIONS = {
    "version": "2.6",
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "row_group_size": 1 << 20,
    "write_page_index": False,
    "store_schema": True,
    "use_compliant_nested_type": True,
}
KIND_TYPES = {
    "numeric": pa.float64(),
    "categorical": pa.string(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us"),
}
LABEL_ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "number": pa.float64(),  # a regression target
}
HEADER_LIMIT = 1 << 20
SNIFF_LINES = 50


def _arrow_type(schema: TableSchema, kind: str) -> pa.DataType:
    if kind == "target":
        return LABEL_ARROW_TYPES[schema.label]
    return KIND_TYPES.get(kind, pa.string())


def read_raw(path: str | Path, schema: TableSchema, with_target: bool = True) -> pa.Table:
    """The raw table at ``path``, every column of its declared kind, checked against the schema,
    with the derived columns the schema declares computed.

    ``with_target=False`` reads rows to predict: only the columns the model uses must be
    there (each missing one is named as such); the dropped (id) columns are read when
    present, and the target and columns nobody declared are not read at all.
    """
    path = Path(path)
    if not path.is_file():
        where = (
            "`dvc pull` it, or bring a table in with `make data SRC=<file or URL> TARGET=<column>`"
        )
        raise DataError(
            f"{path}: no such file. Fix: "
            + (where if with_target else "give the path of the rows to predict.")
        )
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        header = _csv_header(path, schema.delimiter)
        if not set(schema.kinds) & set(header):  # not one column found: the wrong separator?
            sniffed = sniff_delimiter(path)
            if sniffed is not None and sniffed != schema.delimiter:
                raise _shape_error(path, schema, "")
        names = _check_columns(path, header, schema, with_target)
        table = _read_csv(path, header, names, schema)
    elif suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path, schema, with_target)
    else:
        raise DataError(
            f"{path}: {suffix or 'no suffix'} is not a table format this project reads. "
            "Fix: give a .csv or .parquet file."
        )
    table = _derive(path, table, schema, None if with_target else schema.used_columns())
    if with_target:
        table = _without_missing_targets(path, table, schema)
    _check_values(path, table, schema, with_target)
    return table


def _without_missing_targets(path: Path, table: pa.Table, schema: TableSchema) -> pa.Table:
    """``table`` without the rows whose target is missing, when the schema says to leave them
    out (``missing_target: drop``); how many is said, never silent."""
    target = table[schema.target]
    if not schema.drop_missing_target or not target.null_count:
        return table
    print(
        f"{path}: left out {target.null_count} of {table.num_rows} rows whose target "
        f"{schema.target!r} is missing ({schema.source}: missing_target: drop)",
        file=sys.stderr,
    )
    return table.filter(pc.is_valid(target))


def sniff_delimiter(path: str | Path) -> str | None:
    """The separator of a CSV file: the candidate (DELIMITERS, most usual first)
    that splits the first lines into the same number of fields, more than one; None when no
    candidate does (a one-column file, or ragged rows)."""
    with Path(path).open(encoding="utf-8", errors="replace", newline="") as handle:
        lines = [line for _, line in zip(range(SNIFF_LINES + 1), handle, strict=False)]
    cut = len(lines) > SNIFF_LINES  # the last row read may be cut inside a quoted value
    lines = lines[:SNIFF_LINES]
    if not lines:
        return None
    best = None
    for candidate in DELIMITERS:
        rows = [row for row in csv.reader(lines, delimiter=candidate) if row]
        widths = {len(row) for row in (rows[:-1] if cut and len(rows) > 1 else rows)}
        if len(widths) == 1 and (width := widths.pop()) > 1 and (best is None or width > best[1]):
            best = (candidate, width)
    return best[0] if best else None


def delimiter_name(delimiter: str) -> str:
    return {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a pipe"}.get(
        delimiter, repr(delimiter)
    )


def _derive(
    path: Path, table: pa.Table, schema: TableSchema, only: set[str] | None = None
) -> pa.Table:
    """``table`` with the derived columns the schema declares (of them, ``only`` those when
    given), each computed from the raw columns and cast to its declared kind."""
    kinds = schema.kinds
    for name, derive in schema.derived.items():
        if name not in kinds or (only is not None and name not in only):
            continue
        try:
            column = derive(table)
            column = column if isinstance(column, pa.ChunkedArray | pa.Array) else pa.array(column)
            column = column.cast(_arrow_type(schema, kinds[name]))
        except Exception as error:  # the team's function: name it, whatever it raised
            raise DataError(
                f"{path}: the derived column {name!r} could not be computed as {kinds[name]}: "
                f"{type(error).__name__}: {error}. Fix: its function in "
                f"{schema.derived_source}, or the kind of {name!r} in {schema.source}."
            ) from None
        if len(column) != table.num_rows:
            raise DataError(
                f"{path}: the derived column {name!r} has {len(column)} values for "
                f"{table.num_rows} rows. Fix: return one value per row from its function in "
                f"{schema.derived_source}."
            )
        table = table.append_column(name, column)
    return table


def _csv_header(path: Path, delimiter: str = ",") -> list[str]:
    with path.open("rb") as handle:
        first = handle.readline(HEADER_LIMIT)
    if not first.strip():
        raise DataError(f"{path}: the file is empty. Fix: give a CSV with a header and rows.")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: the header is not UTF-8 (byte {error.start}). Fix: re-save the file as "
            "UTF-8, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    header = text.removeprefix(codecs.BOM_UTF8.decode()).rstrip("\r\n")
    names = next(csv.reader([header], delimiter=delimiter))
    refuse_duplicate_names(path, names)
    return names


def refuse_duplicate_names(path: str | Path, names: list[str]) -> None:
    """A column name given twice: which column a schema (or arrow) means is then a guess."""
    counts = Counter(names)
    duplicated = [name for name in counts if counts[name] > 1]
    if duplicated:
        listed = ", ".join(
            f"{name!r} (columns {_and([str(i + 1) for i, n in enumerate(names) if n == name])})"
            for name in duplicated
        )
        one = len(duplicated) == 1
        raise DataError(
            f"{path}: the column name{'' if one else 's'} {listed} appear{'s' if one else ''} "
            "more than once. Fix: rename the repeated columns so that every name is unique."
        )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _check_columns(
    path: Path, names: list[str], schema: TableSchema, with_target: bool
) -> list[str]:
    """The names of the file's columns to read, refused unless every column needed is there:
    every declared one for a table to train on, the model's for rows to predict."""
    kinds = schema.kinds
    derived = [name for name in names if name in schema.derived and name in kinds]
    if derived:
        raise DataError(
            f"{path}: column {derived[0]!r} is in the file and is also derived in "
            f"{schema.derived_source}. Fix: rename the derived column, or drop the file's."
        )
    if not with_target:
        used = schema.used_columns() - set(schema.derived)
        lacking = [column for column in kinds if column in used and column not in names]
        if lacking:
            more = (
                f" (and {len(lacking) - 1} more: {', '.join(lacking[1:4])})" if lacking[1:] else ""
            )
            raise DataError(
                f"{path}: this table lacks column {lacking[0]!r}{more}, which the model uses. "
                "Fix: give rows that have every column the model was trained with."
            )
        # Every declared column the rows have (a derived column may read one the model does
        # not use), never the target and never a column nobody declared.
        return [name for name in names if name in kinds and name != schema.target]
    missing = [column for column in kinds if column not in names and column not in schema.derived]
    if missing:
        raise DataError(
            f"{path}: declared column {missing[0]!r} is missing from the file"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f". Fix: remove it from {schema.source}, or use a file that has it."
        )
    extra = [name for name in names if name not in kinds]
    if extra:
        raise DataError(
            f"{path}: column {extra[0]!r} is not declared in {schema.source}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + ". Fix: add it under features (numeric, categorical, boolean or datetime), "
            "or under drop."
        )
    return names


_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?(.*)", re.DOTALL)


def _read_csv(path: Path, header: list[str], names: list[str], schema: TableSchema) -> pa.Table:
    """The columns ``names`` of the CSV file whose header is ``header``, each of its kind."""
    from pyarrow import csv as arrow_csv

    kinds = schema.kinds
    types = {name: _arrow_type(schema, kinds[name]) for name in names}
    convert = arrow_csv.ConvertOptions(
        column_types=types,
        null_values=list(schema.missing),
        strings_can_be_null=True,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        include_columns=names,
        timestamp_parsers=[arrow_csv.ISO8601, *DATE_FORMATS],
    )
    parse = arrow_csv.ParseOptions(delimiter=schema.delimiter)
    try:
        table = arrow_csv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise _csv_error(path, header, kinds, schema, str(error)) from None
    return table.replace_schema_metadata(None)


_FIELD_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")


def _csv_error(
    path: Path, names: list[str], kinds: dict[str, str], schema: TableSchema, message: str
) -> DataError:
    found = _COLUMN_ERROR.search(message)
    if not found:
        return _shape_error(path, schema, message)
    column = names[int(found.group(1))]
    detail = found.group(3).strip()
    if "invalid UTF8" in detail:
        return DataError(
            f"{path}: column {column!r} holds bytes that are not UTF-8. Fix: re-save the file "
            "as UTF-8."
        )
    kind = kinds[column]
    value = re.search(r"invalid value '(.*)'", detail)
    shown = f" such as {value.group(1)!r}" if value else ""
    if kind == "target" and schema.task == "regression":
        fix = (
            "a regression target must hold numbers: choose a numeric target, or set "
            "`task: classification` and the label type of the classes (string, integer, boolean)"
        )
    elif kind == "target":
        fix = f"set data.label to the type of the labels ({', '.join(LABEL_ARROW_TYPES)})"
    else:
        fix = (
            f"add the marker to `missing` if it means a missing value, or declare {column!r} "
            "under another kind"
        )
    return DataError(
        f"{path}: column {column!r} is declared {kind}"
        + (f" ({schema.label})" if kind == "target" else "")
        + f", but holds values{shown} that are not. Fix: in {schema.source}, {fix}."
    )


def _shape_error(path: Path, schema: TableSchema, message: str) -> DataError:
    """A file arrow cannot split into the header's columns: name the separator it seems to
    use when that is not the schema's, else the row counts arrow gives."""
    sniffed = sniff_delimiter(path)
    said = _FIELD_COUNT.search(message)
    if sniffed is not None and sniffed != schema.delimiter:
        return DataError(
            f"{path}: its rows are separated by {delimiter_name(sniffed)}, not "
            f"{delimiter_name(schema.delimiter)} as {schema.source} says. Fix: set "
            f"`delimiter: {sniffed!r}` there (`make data` sniffs it), or save the file "
            f"{delimiter_name(schema.delimiter)}-separated."
        )
    if said:
        return DataError(
            f"{path}: a row has {said.group(2)} fields where the header has {said.group(1)} "
            "(a separator inside an unquoted value, or a ragged row). Fix: quote values that "
            "hold the separator, or repair the row."
        )
    return DataError(f"{path}: not a well-formed CSV table: {message.strip()}")


def _read_parquet(path: Path, schema: TableSchema, with_target: bool) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as error:
        empty = path.stat().st_size == 0
        problem = "the file is empty" if empty else f"not a readable Parquet file ({error})"
        raise DataError(f"{path}: {problem}. Fix: give a Parquet file with rows.") from None
    refuse_duplicate_names(path, names)
    names = _check_columns(path, names, schema, with_target)
    table = pq.read_table(path, columns=names).replace_schema_metadata(None)
    kinds = schema.kinds
    columns = []
    for name in names:
        wanted = _arrow_type(schema, kinds[name])
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not _fits(column.type, kinds[name], wanted):
            dated = pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)
            hint = " (datetime: its year, month, ... reach the model)" if dated else ""
            raise DataError(
                f"{path}: column {name!r} is declared {kinds[name]} but is stored as "
                f"{column.type}. Fix: declare it under the kind that fits in {schema.source}"
                f"{hint}."
            )
        columns.append(column.cast(wanted) if column.type != wanted else column)
    return pa.table(columns, names=names)


def _fits(stored: pa.DataType, kind: str, wanted: pa.DataType) -> bool:
    if kind in ("categorical", "drop"):
        return True
    if kind == "numeric":
        return pa.types.is_integer(stored) or pa.types.is_floating(stored)
    if kind == "datetime":
        return pa.types.is_timestamp(stored) or pa.types.is_date(stored)
    if pa.types.is_integer(wanted):
        return pa.types.is_integer(stored)
    if pa.types.is_floating(wanted):  # a regression target: integers are numbers too
        return pa.types.is_integer(stored) or pa.types.is_floating(stored)
    if pa.types.is_string(wanted):
        return pa.types.is_string(stored) or pa.types.is_large_string(stored)
    return stored == wanted


def _check_values(path: Path, table: pa.Table, schema: TableSchema, with_target: bool) -> None:
    if table.num_rows == 0:
        raise DataError(f"{path}: the file has a header but no rows. Fix: give a table with rows.")
    if not with_target:  # rows to predict: a value missing in each is the imputer's to fill
        return
    for name in table.column_names:
        column = table[name]
        if column.null_count == table.num_rows and name not in (schema.target, *schema.drop):
            raise DataError(
                f"{path}: column {name!r} is missing in every row. Fix: move it under drop in "
                f"{schema.source}, or fill it in."
            )
    target = table[schema.target]
    if target.null_count:
        first = int(pc.index(pc.is_null(target), True).as_py()) + 1
        raise DataError(
            f"{path}: the target {schema.target!r} is missing in {target.null_count} of "
            f"{table.num_rows} rows (the first is data row {first}). Fix: label or remove those "
            f"rows, or set `missing_target: drop` in {schema.source} to leave them out."
        )
    distinct = pc.count_distinct(target).as_py()
    if distinct < 2:
        what = "value; a regression" if schema.task == "regression" else "class; a classifier"
        raise DataError(
            f"{path}: the target {schema.target!r} has {distinct} {what} needs at least two. "
            "Fix: check the target column, or the rows the file holds."
        )


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    """Write ``table`` with the pinned writer options, atomically."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, partial_path(path), **PARQUET_WRITE_OPTIONS)
    return commit_partial(path)


def read_prepared(path: str | Path) -> pa.Table:
    """A prepared table, as prepare wrote it."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no prepared table here. Fix: `dvc repro` (or `dvc pull`).")
    return pq.read_table(path)
