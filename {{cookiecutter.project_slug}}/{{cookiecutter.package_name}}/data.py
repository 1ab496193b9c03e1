"""The team's tables: the schema of conf/data/<name>.yaml as the machinery's table reader
takes it, the raw and prepared tables read through it (reproml.runtime.tables checks
every column and writes pinned Parquet), and the DataFrame and labels scikit-learn gets.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa

from reproml.runtime import tables
from reproml.runtime.tables import TableSchema, read_prepared

from .config import DataConfig
from .features import derived_for, model_dates


def column_kinds(schema: DataConfig) -> dict[str, str]:
    """``{column: kind}`` for every declared column: feature kinds, ``drop`` and ``target``."""
    kinds = {column: "drop" for column in schema.drop}
    for kind, columns in vars(schema.features).items():
        kinds.update({column: kind for column in columns})
    kinds[schema.target] = "target"
    return kinds


def model_columns(schema: DataConfig) -> list[str]:
    """The columns the model sees, in a fixed order: every feature column, but datetime
    columns whose `dates:` entry is empty."""
    features = schema.features
    return [*features.numeric, *model_dates(schema), *features.boolean, *features.categorical]


def table_schema(schema: DataConfig) -> TableSchema:
    """What the machinery's table reader checks a raw table against, from conf/data."""
    return TableSchema(
        kinds=column_kinds(schema),
        target=schema.target,
        label=schema.label,
        task=schema.task,
        drop=tuple(schema.drop),
        missing=tuple(schema.missing),
        source=f"conf/data/{schema.name}.yaml",
        derived=derived_for(schema.name),
        derived_source="features.DERIVED or DERIVED_BY_TABLE (features.py)",
        delimiter=schema.delimiter,
        drop_missing_target=schema.missing_target == "drop",
        model_columns=tuple(model_columns(schema)),
    )


def read_raw(path: str | Path, schema: DataConfig, with_target: bool = True) -> pa.Table:
    """The raw table at ``path``, every column of its declared kind, checked against the
    schema, with the derived features (features.DERIVED) the schema lists computed: prepare
    and predict read raw rows only through here, so both compute them alike.

    ``with_target=False`` reads rows to predict: only the columns the model uses must be
    there; the target, dropped (id) columns and columns nobody declared may be absent or
    present, and are not read, but for the ids.
    """
    return tables.read_raw(path, table_schema(schema), with_target)


def read_for_model(path: str | Path, schema: DataConfig):
    """``(features DataFrame, labels)`` of a prepared table. The Arrow table is released (and
    its memory returned) before the caller fits or predicts, so it does not add to the peak."""
    table = read_prepared(path)
    target = labels(table, schema)
    frame = features_frame(table, schema)
    del table
    pa.default_memory_pool().release_unused()
    return frame, target


def features_frame(table: pa.Table, schema: DataConfig):
    """The model's input as a pandas DataFrame: numeric and boolean columns as float64 with
    NaN for missing, categorical columns as objects with NaN for missing, which is what
    scikit-learn's imputers and encoders expect, datetime columns as datetime64 with NaT."""
    import pandas as pd

    columns = {}
    for name in model_columns(schema):
        column = table[name]
        if name in schema.features.categorical:
            columns[name] = pd.Series(_shared_strings(column), dtype=object, copy=False)
        elif name in schema.features.datetime:
            values = column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
            columns[name] = pd.Series(values, dtype="datetime64[us]", copy=False)
        else:
            numbers = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            columns[name] = pd.Series(numbers, dtype=np.float64, copy=False)
    return pd.DataFrame(columns, copy=False)


def _shared_strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string column as an object array whose cells share one str per distinct value (and
    NaN for missing): 8 bytes a cell instead of a new Python string each."""
    encoded = column.combine_chunks().dictionary_encode()
    distinct = np.array([*encoded.dictionary.to_pylist(), np.nan], dtype=object)
    missing = len(encoded.dictionary)
    return distinct[encoded.indices.fill_null(missing).to_numpy()]


def labels(table: pa.Table, schema: DataConfig) -> np.ndarray:
    """The target column as numpy: strings stay strings, so classes keep their names; a
    regression target is float64."""
    column = table[schema.target]
    if schema.label == "string":
        return _shared_strings(column)
    return column.to_numpy()
