"""``make data SRC=... TARGET=...``: bring a table under DVC and write its starting schema.

A local CSV or Parquet file is copied into data/raw/ and tracked with ``dvc add``; a URL or a
bucket path goes through ``dvc import-url``, so the source's version is pinned in git. The
schema (conf/data/<name>.yaml) is inferred from the table by pyarrow and is meant to be
read and edited: it is a starting point, not a verdict. Nothing is left behind on failure,
and a file this run did not create is never deleted, nor replaced without FORCE=1.
"""

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..runtime.cells import DATE_FORMATS, DEFAULT_MISSING, DELIMITERS, FALSE_VALUES, TRUE_VALUES
from ..runtime.errors import DataError
from ..runtime.io import atomic_write_text, commit_partial, partial_path
from ..runtime.params import TASKS
from ..runtime.proc import run
from ..runtime.tables import delimiter_name, refuse_duplicate_names, sniff_delimiter
from .commands import dvc_command
from .settings import team

RAW_DIR = Path("data/raw")
CONF_DATA = Path("conf/data")
CONFIG_FILE = Path("conf/config.yaml")
SUFFIXES = (".csv", ".parquet", ".pq")
ID_NAME = re.compile(r"(?:^|[_\W])id$|^id[_\W]|^(?:uuid|guid|key)$", re.IGNORECASE)
# How an OmegaConf interpolation begins: a value make data writes into conf/ must not hold it.
INTERPOLATION = "${"
DEFAULT_LINE = re.compile(r"^(\s*-\s*data:\s*)\S+(.*)$", re.MULTILINE)


def is_url(source: str) -> bool:
    return "://" in source


def dataset_name(source: str) -> str:
    stem = Path(source.split("?", 1)[0].rstrip("/")).stem
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    return name if name and name[0].isalpha() else f"data_{name}"


def _read_for_inference(path: Path, delimiter: str, target: str | None = None):
    """The table as pyarrow infers it, and (given ``target``) that column as the text the
    file holds, so a label arrow would turn into another type can be seen."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv as arrow_csv

    text = None
    try:
        if path.suffix.lower() == ".csv":
            if path.stat().st_size == 0:
                raise DataError(f"{path}: the file is empty. Fix: give a table with a header.")
            convert = arrow_csv.ConvertOptions(
                null_values=list(DEFAULT_MISSING),
                strings_can_be_null=True,
                true_values=TRUE_VALUES,
                false_values=FALSE_VALUES,
                timestamp_parsers=[arrow_csv.ISO8601, *DATE_FORMATS],
            )
            parse = arrow_csv.ParseOptions(delimiter=delimiter)
            table = arrow_csv.read_csv(path, parse_options=parse, convert_options=convert)
            if target in table.column_names:
                as_text = arrow_csv.ConvertOptions(
                    column_types={target: pa.string()},
                    include_columns=[target],
                    null_values=list(DEFAULT_MISSING),
                    strings_can_be_null=True,
                )
                text = arrow_csv.read_csv(path, parse_options=parse, convert_options=as_text)
                text = text[target]
        else:  # before reading: arrow's own error for a repeated name names no column
            refuse_duplicate_names(path, pq.read_schema(path).names)
            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise _unreadable(path, delimiter, str(error)) from None
    if path.suffix.lower() == ".csv":
        refuse_duplicate_names(path, table.column_names)
    refuse_interpolations(path, table.column_names)
    return table, text


def refuse_interpolations(path: Path, names: list[str]) -> None:
    """A name make data would write into conf/ that Hydra would read as an interpolation
    (``${oc.env:TOKEN}`` puts a secret into params.yaml, which the project commits)."""
    found = [name for name in names if INTERPOLATION in name]
    if found:
        raise DataError(
            f"{path}: the column name {found[0]!r} holds {INTERPOLATION!r}, which Hydra would "
            "resolve when conf/ is composed (an environment variable, another key); nothing "
            "was written. Fix: rename the column in the file."
        )


def _unreadable(path: Path, delimiter: str, message: str) -> DataError:
    """Why arrow could not read the file, and what to do: a file whose rows have more fields
    than its header is most often separated by another character than the one read with."""
    sniffed = sniff_delimiter(path) if path.suffix.lower() == ".csv" else None
    if sniffed is not None and sniffed != delimiter:
        return DataError(
            f"{path}: reading it {delimiter_name(delimiter)}-separated failed ({message.strip()}),"
            f" but it looks {delimiter_name(sniffed)}-separated. Fix: DELIMITER='{sniffed}'."
        )
    return DataError(
        f"{path}: cannot be read as a table: {message.strip()}. Fix: give a CSV (with a header "
        "row, DELIMITER= naming its separator if not a comma) or a Parquet file."
    )


def _kind(name: str, column) -> tuple[str, str]:
    """The kind a column starts as, and, when it goes under drop, why (it is an id, empty,
    or one value in every row: nothing a model can learn from), said of the column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind_of = column.type
    if pa.types.is_dictionary(kind_of):
        kind_of = kind_of.value_type
    if pa.types.is_null(kind_of) or column.null_count == len(column):
        return "drop", "is empty in every row"
    distinct = pc.count_distinct(column).as_py()
    text = pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of)
    if distinct == len(column) and (text or (ID_NAME.search(name) and _whole(column))):
        return (
            "drop",
            "is an id: unique in every row"
            if not text
            else "is unique in every row (an id, or free text)",
        )
    if distinct == 1 and column.null_count == 0:
        return "drop", f"holds one value ({_first_text(column)!r}) in every row"
    if pa.types.is_boolean(kind_of):
        return "boolean", ""
    if pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of):
        return "numeric", ""
    if pa.types.is_timestamp(kind_of) or pa.types.is_date(kind_of):
        return "datetime", ""
    return "categorical", ""


def _whole(column) -> bool:
    """Integers, or decimals that are all whole numbers (an id exported as 1001.0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type):
        return True
    if not pa.types.is_floating(column.type):
        return False
    values = column.drop_null()
    return bool(pc.all(pc.equal(pc.floor(values), values)).as_py())


def _has_time_of_day(column) -> bool:
    """Whether any value of a date column is not at midnight (then its hour is a feature)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_timestamp(column.type):
        return False
    midnight = pc.equal(pc.floor_temporal(column, unit="day"), column)
    return not pc.all(midnight).as_py()


# An integer target with more distinct values than this is a quantity, not a set of classes.
MAX_CLASSES = 20


@dataclass
class TaskChoice:
    """What `make data` decided the target is, and why (``reason`` follows "the target")."""

    task: str
    label: str
    reason: str
    warning: str = ""
    decimals: bool = False  # the target holds decimal numbers: it cannot be class labels


def _distinct_counts(column) -> tuple[int, int]:
    """``(distinct values, values seen in one row only)`` of a column without missing cells."""
    import pyarrow.compute as pc

    counts = pc.value_counts(column.drop_null()).field("counts")
    return len(counts), int(pc.sum(pc.equal(counts, 1)).as_py() or 0)


def _first_text(column) -> str:
    import pyarrow.compute as pc

    return str(pc.drop_null(column)[0].as_py()) if len(column) > column.null_count else ""


def infer_task(path: Path, target: str, column, task: str | None = None) -> TaskChoice:
    """Classification or regression, from the target column (or ``task`` if given).

    Text and booleans are classes. Decimal numbers are a quantity. An integer target is
    classes when it has at most MAX_CLASSES distinct values and most of them occur more than
    once (0/1, ratings, digit codes); otherwise a quantity (a mass in whole grams, a count of
    days). A classification whose classes are mostly single rows is named, never silent.
    """
    import pyarrow as pa

    kind_of = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    rows = len(column) - column.null_count
    distinct, singletons = _distinct_counts(column)
    counted = f"{distinct} distinct values in {rows} rows"
    if distinct == 0:
        raise DataError(
            f"{path}: the target {target!r} is missing in every row. Fix: choose another "
            "TARGET=, or fill the column in."
        )
    if distinct < 2:
        what = "class" if task != "regression" else "value"
        raise DataError(
            f"{path}: the target {target!r} has one {what} ({_first_text(column)!r}) in every "
            "row; a model needs at least two to learn anything. Fix: choose another TARGET=, "
            f"or a table whose rows hold more than one {what}."
        )
    number = pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of)
    if task == "regression" and not number:
        shown = (
            "true/false"
            if pa.types.is_boolean(kind_of)
            else f"text such as {_first_text(column)!r}"
        )
        raise DataError(
            f"{path}: the target {target!r} holds {shown}; a regression target must hold "
            "numbers. Fix: TASK=classification (or leave TASK= out), or choose a numeric "
            "TARGET=."
        )
    if task == "classification" and pa.types.is_floating(kind_of):
        raise DataError(
            f"{path}: the target {target!r} holds decimal numbers, which cannot be read as "
            "class labels. Fix: TASK=regression (or leave TASK= out), or store the classes as "
            "integers or text."
        )
    if pa.types.is_boolean(kind_of):
        choice = TaskChoice("classification", "boolean", "holds true/false values")
    elif not number:
        choice = TaskChoice("classification", "string", f"holds text ({counted})")
    elif pa.types.is_floating(kind_of):
        choice = TaskChoice(
            "regression", "number", f"holds decimal numbers ({counted})", decimals=True
        )
    elif task == "regression":
        choice = TaskChoice("regression", "number", f"holds integers with {counted}")
    elif task == "classification" or (distinct <= MAX_CLASSES and singletons * 2 <= distinct):
        choice = TaskChoice("classification", "integer", f"holds integers with {counted}")
    else:
        why = f"more than {MAX_CLASSES}" if distinct > MAX_CLASSES else "mostly single rows"
        choice = TaskChoice(
            "regression", "number", f"holds integers with {counted} ({why}: a quantity)"
        )
    if choice.task == "classification" and singletons * 2 > distinct:
        choice.warning = (
            f"{singletons} of the {distinct} classes of {target!r} occur in one row only: a "
            "classifier cannot learn a class from one row, and the stratified split puts each "
            "such row in the test set, where its class was never seen. Check that TARGET= is "
            "the column you mean."
        )
    return choice


def how_to_change(choice: TaskChoice, name: str) -> str:
    """The sentence `make data` prints after its choice: how to choose the other task, or
    why the target cannot be the other kind."""
    if choice.label in ("string", "boolean"):
        return (
            "Text and true/false values can only be classes: for regression, choose a "
            "numeric TARGET=."
        )
    if choice.decimals:
        return (
            "Decimal numbers cannot be class labels: to classify, store the classes as integers "
            "or text and run `make data` again with FORCE=1."
        )
    other, label = (
        ("regression", "number")
        if choice.task == "classification"
        else ("classification", "integer")
    )
    return (
        f"To treat it as {other}: set `task: {other}` and `label: {label}` in "
        f"conf/data/{name}.yaml, or run `make data` again with TASK={other} FORCE=1."
    )


@dataclass
class Inference:
    """What `make data` read from a table: the starting schema, the task chosen, what
    reaches the model from each column (``reach``: column, kind, what), and the problems it
    found and what it did about each (``notes``), all printed."""

    schema: dict
    task: TaskChoice
    reach: list[tuple[str, str, str]]
    notes: list[str]


def infer_schema(path: Path, target: str, name: str, file: str, task: str | None = None) -> dict:
    """The starting schema of the table at ``path``: each column's kind as pyarrow reads it."""
    return _infer(path, target, name, file, task).schema


def _infer(
    path: Path,
    target: str,
    name: str,
    file: str,
    task: str | None,
    delimiter: str | None = None,
    missing_target: str | None = None,
) -> Inference:
    notes = []
    schema_file = f"conf/data/{name}.yaml"
    if delimiter is None and path.suffix.lower() == ".csv":
        delimiter = sniff_delimiter(path) or ","
        if delimiter != ",":
            notes.append(
                f"the file's fields are separated by {delimiter_name(delimiter)}, not commas: "
                f"`delimiter: {delimiter!r}` in {schema_file} says so to every read."
            )
    delimiter = delimiter or ","
    table, text = _read_for_inference(path, delimiter, target)
    if target not in table.column_names:
        raise DataError(
            f"{path}: there is no column {target!r}. Fix: TARGET= one of "
            f"{', '.join(table.column_names)}."
        )
    column = table[target]
    if column.null_count and column.null_count < len(column):
        notes.append(_missing_target(path, target, column, missing_target))
    choice = infer_task(path, target, column, task)
    notes += _keep_labels(choice, target, text)
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": [], "boolean": [], "datetime": []}
    drop, dates, reach = [], {}, []
    for column_name in table.column_names:
        if column_name == target:
            reach.append((column_name, "target", f"what the model predicts ({choice.label})"))
            continue
        kind, why = _kind(column_name, table[column_name])
        if kind == "drop":
            drop.append(column_name)
            reach.append((column_name, "drop", f"nothing: it {why}"))
            if not why.startswith("is an id"):
                notes.append(
                    f"column {column_name!r} {why}, so it is under drop (it cannot inform the "
                    f"model). Fix, to use it anyway: move it under its kind in {schema_file}."
                )
            continue
        kinds[kind].append(column_name)
        if kind == "datetime":
            parts = list(team().date_parts)
            if _has_time_of_day(table[column_name]):
                parts.append("hour")
            dates[column_name] = parts
            what = f"its {', '.join(parts)} as numbers (dates: in {schema_file}; [] keeps it out)"
        else:
            what = {
                "numeric": "the number",
                "boolean": "true/false as 1/0",
                "categorical": f"its categories ({pc_distinct(table[column_name])} distinct)",
            }[kind]
        reach.append((column_name, kind, what))
    schema = {
        "name": name,
        "file": file,
        "target": target,
        "task": choice.task,
        "label": choice.label,
        "features": kinds,
        "drop": drop,
        "missing": list(DEFAULT_MISSING),
    }
    if dates:
        schema["dates"] = dates
    if delimiter != ",":
        schema["delimiter"] = delimiter
    if column.null_count:
        schema["missing_target"] = "drop"
    return Inference(schema, choice, reach, notes)


def pc_distinct(column) -> int:
    import pyarrow.compute as pc

    return pc.count_distinct(column).as_py()


def _missing_target(path: Path, target: str, column, missing_target: str | None) -> str:
    """Refuse a target with missing values unless MISSING_TARGET=drop; then say how many rows
    every read leaves out."""
    import pyarrow.compute as pc

    count, rows = column.null_count, len(column)
    if missing_target != "drop":
        first = int(pc.index(pc.is_null(column), True).as_py()) + 1
        raise DataError(
            f"{path}: the target {target!r} is missing in {count} of {rows} rows (the first is "
            f"data row {first}); a model cannot learn from a row without one. Fix: fill them "
            f"in, or run `make data` again with MISSING_TARGET=drop to leave those {count} rows "
            "out (the schema then says `missing_target: drop`)."
        )
    return (
        f"the target {target!r} is missing in {count} of {rows} rows: prepare leaves them out "
        "and says so (`missing_target: drop`)."
    )


def _keep_labels(choice: "TaskChoice", target: str, text) -> list[str]:
    """Labels stay what the file says: a class arrow would read as another type (yes/no as
    true/false, 007 as 7) keeps its text (label: string), and the change is named."""
    import pyarrow.compute as pc

    if text is None or choice.task != "classification" or choice.label == "string":
        return []
    values = [value for value in pc.unique(text.drop_null()).to_pylist()]
    if choice.label == "boolean":  # a boolean label is written back as True or False
        kept = all(value in ("True", "False") for value in values)
    else:
        kept = all(_round_trips(value) for value in values)
    if kept:
        return []
    shown = ", ".join(repr(value) for value in sorted(values)[:4])
    became = "true/false" if choice.label == "boolean" else "integers"
    choice.label = "string"
    choice.reason = f"holds the labels {shown} (kept as text)"
    return [
        f"the target {target!r} holds {shown}: read as {became}, these labels would change, so "
        "they stay text (label: string) and keep their names in metrics and predictions."
    ]


def _round_trips(value: str) -> bool:
    try:
        return str(int(value)) == value.strip()
    except ValueError:
        return False


def schema_text(schema: dict, source: str) -> str:
    header = (
        f"# Schema of data/raw/{schema['file']}, inferred by `make data` from {source}.\n"
        "# Check every column's kind (numeric, categorical, boolean, datetime; drop = ids and\n"
        "# columns the model must not see), the task (classification or regression), the\n"
        "# label type and the missing-value markers, then run `make params`. Reading the\n"
        "# table checks it against this file.\n"
    )
    return header + yaml.safe_dump(schema, sort_keys=False, default_flow_style=False)


def _dvc(*args: str):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    command = dvc_command(*args)
    return run(command, env=env)


def bring_in(
    source: str,
    target: str,
    name: str | None = None,
    force: bool = False,
    task: str | None = None,
    delimiter: str | None = None,
    missing_target: str | None = None,
) -> dict:
    """Track ``source`` with DVC under data/raw/ and write conf/data/<name>.yaml; make it the
    default dataset. Returns what was written, and what was inferred (:class:`Inference`:
    the task chosen for the target, ``task`` if given, what reaches the model from each
    column, and each problem found). ``delimiter`` names a CSV's separator (default:
    sniffed); ``missing_target="drop"`` accepts a target missing in some rows, which every
    read then leaves out.

    A file in the way that this run did not create (data/raw/<file>, its .dvc file, the
    schema) is refused unless ``force``; what ``force`` replaces is set aside first and put
    back if the run fails, and a failure removes only what the run itself created.
    """
    name = name or dataset_name(source)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise DataError(f"NAME={name!r}: use lowercase letters, digits and underscores.")
    if task is not None and task not in TASKS:
        raise DataError(f"TASK={task!r}: is not one of {', '.join(TASKS)}. Fix: TASK=regression.")
    if delimiter is not None and delimiter not in DELIMITERS:
        shown = ", ".join(repr(choice) for choice in DELIMITERS)
        raise DataError(f"DELIMITER={delimiter!r}: is not one of {shown}. Fix: DELIMITER=';'.")
    if missing_target not in (None, "drop", "refuse"):
        raise DataError(f"MISSING_TARGET={missing_target!r}: the one choice is drop.")
    options = {"task": task, "delimiter": delimiter, "missing_target": missing_target}
    file = Path(source.split("?", 1)[0].rstrip("/")).name
    if Path(file).suffix.lower() not in SUFFIXES:
        raise DataError(f"{source}: not a .csv or .parquet file. Fix: convert it first.")
    if INTERPOLATION in file:
        raise DataError(
            f"{source}: the file name holds {INTERPOLATION!r}, which Hydra would resolve in "
            "conf/. Fix: rename the file."
        )
    schema_path = CONF_DATA / f"{name}.yaml"
    destination = RAW_DIR / file
    dvc_file = destination.with_name(file + ".dvc")
    # Bringing a file already at data/raw/<file> under DVC: it is the source, not in the way.
    in_place = not is_url(source) and _same_file(Path(source), destination)
    in_the_way = [
        path
        for path in (destination, dvc_file, schema_path)
        if os.path.lexists(path) and not (path == destination and in_place)
    ]
    if in_the_way and not force:
        one = len(in_the_way) == 1
        raise DataError(
            f"{' and '.join(str(path) for path in in_the_way)} already exist{'s' if one else ''}"
            f"; nothing was changed. Fix: move {'it' if one else 'them'} away, choose another "
            f"NAME= or file name, or pass FORCE=1 to replace {'it' if one else 'them'}."
        )
    ignore = RAW_DIR / ".gitignore"
    ignored = ignore.read_bytes() if ignore.is_file() else None
    existed = {path for path in (destination, dvc_file) if os.path.lexists(path)}
    set_aside: dict[Path, Path] = {}  # what FORCE=1 replaces, kept until the run succeeds
    try:
        for path in in_the_way:
            if path != schema_path:
                kept = path.with_name(f".{path.name}.before-make-data")
                os.replace(path, kept)
                set_aside[path] = kept
        if is_url(source):
            inferred = _import_url(source, destination, target, name, file, options)
        else:
            inferred = _add_local(Path(source), destination, in_place, target, name, file, options)
    except BaseException:
        for path in (destination, dvc_file, partial_path(destination)):
            if os.path.lexists(path) and (path not in existed or path in set_aside):
                path.unlink()
        for path, kept in set_aside.items():
            os.replace(kept, path)
        # DVC may already have listed the file in .gitignore: put it back as it was.
        if ignored is None:
            ignore.unlink(missing_ok=True)
        else:
            ignore.write_bytes(ignored)
        raise
    for kept in set_aside.values():
        kept.unlink()
    atomic_write_text(schema_path, schema_text(inferred.schema, source))
    config = CONFIG_FILE.read_text(encoding="utf-8")
    atomic_write_text(CONFIG_FILE, DEFAULT_LINE.sub(rf"\g<1>{name}\g<2>", config, count=1))
    return {"schema": schema_path, "data": destination, "dvc_file": dvc_file, "inferred": inferred}


def summary(written: dict, target: str, task_given: bool) -> tuple[str, str | None]:
    """What `make data` says: what it wrote, the task and why, what reaches the model from each
    column, and what to do next; and a warning for stderr, if the task choice has one."""
    inferred = written["inferred"]
    choice, schema = inferred.task, written["schema"]
    how = "as TASK= says" if task_given else "inferred"
    lines = [
        f"tracked {written['data']} with DVC ({written['dvc_file']})",
        f"wrote {schema} (a starting schema) and made it the default dataset",
        f"task: {choice.task} (label: {choice.label}), {how}: the target {target!r}",
        f"  {choice.reason}.",
        how_to_change(choice, schema.stem),
        f"What reaches the model from each column (change it in {schema}):",
    ]
    width = max(len(column) for column, _, _ in inferred.reach)
    lines += [f"  {column:<{width}}  {kind:<11}  {what}" for column, kind, what in inferred.reach]
    lines += [f"note: {note}" for note in inferred.notes]
    lines.append(
        f"Next: check the kinds in {schema}, then `make params` and `make repro`; "
        f"commit {schema}, {written['dvc_file']}, conf/config.yaml and params.yaml."
    )
    return "\n".join(lines), choice.warning


def _same_file(source: Path, destination: Path) -> bool:
    try:
        return source.resolve() == destination.resolve() or source.samefile(destination)
    except OSError:
        return False


def _add_local(
    source: Path,
    destination: Path,
    in_place: bool,
    target: str,
    name: str,
    file: str,
    options: dict,
) -> Inference:
    if not source.is_file():
        raise DataError(f"{source}: no such file. Fix: give the path of a CSV or Parquet file.")
    inferred = _infer(source, target, name, file, **options)
    if not in_place:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial_path(destination))
        commit_partial(destination)
    added = _dvc("add", "-q", str(destination))
    if added.returncode != 0:
        raise DataError(f"`dvc add {destination}` failed:\n{added.stdout}{added.stderr}")
    return inferred


def _import_url(
    source: str, destination: Path, target: str, name: str, file: str, options: dict
) -> Inference:
    destination.parent.mkdir(parents=True, exist_ok=True)
    imported = _dvc("import-url", "--force", source, str(destination))
    if imported.returncode != 0:
        raise DataError(
            f"`dvc import-url {source}` failed; data/raw/ is as it was:\n"
            f"{imported.stdout}{imported.stderr}"
        )
    return _infer(destination, target, name, file, **options)


def run_data(args: argparse.Namespace) -> int:
    """`make data`: the table under DVC, its schema written, and what was inferred said."""
    options = {"delimiter": args.delimiter, "missing_target": args.missing_target}
    written = bring_in(args.source, args.target, args.name, args.force, args.task, **options)
    text, warning = summary(written, args.target, task_given=bool(args.task))
    print(text)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
