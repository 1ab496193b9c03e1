"""Your features: columns derived from the raw ones, and the preprocessing built from the
table's schema (impute, encode, scale), which is the first step of the fitted pipeline that is
pickled. Edit this to change how columns are prepared for the model; conf/preprocess/ holds
the preprocessing's knobs.

A derived feature is a function of the raw table (pyarrow) that returns one value per row,
added to DERIVED under the column's name, with that name listed under its kind in
conf/data/<name>.yaml's features. data.read_raw computes it for every table it reads (the raw
table prepare splits, and the rows predict labels), so training and serving agree:

    DERIVED = {"charges_per_month": lambda table: pc.divide(table["charges"], table["months"])}

A derived column of one table only goes under that table's name (conf/data/<name>.yaml's
``name``) in DERIVED_BY_TABLE; it takes precedence over DERIVED for that table:

    DERIVED_BY_TABLE = {"cars": {"power_per_kg": lambda t: pc.divide(t["hp"], t["weight"])}}

A datetime column reaches the model as numbers: its year, month, day of the week (Monday 0),
day of the year and, where `make data` saw a time of day, its hour (``date_parts``; which
parts, per column, is `dates:` in conf/data/<name>.yaml). They are computed inside the
pickled pipeline, from the column itself, so evaluate and predict compute them alike.
"""

import functools
from collections.abc import Callable
from typing import Any

from .config import DataConfig, PreprocessConfig

MISSING_CATEGORY = "missing"
# Derived columns, by name: a function of the raw pyarrow table returning the column.
DERIVED: dict[str, Callable[[Any], Any]] = {}
# Derived columns of one table, by the table's name (conf/data/<name>.yaml: name).
DERIVED_BY_TABLE: dict[str, dict[str, Callable[[Any], Any]]] = {}


def derived_for(table: str) -> dict[str, Callable[[Any], Any]]:
    """The derived columns of the table named ``table``: DERIVED, then its own."""
    return {**DERIVED, **DERIVED_BY_TABLE.get(table, {})}


def date_parts(frame, parts: dict[str, list[str]]):
    """The parts ``parts`` names of each datetime column of ``frame``, as float64 columns
    (NaN where the date is missing): year, month, day, day_of_week (Monday 0), day_of_year,
    hour. A plain function, so the pickled pipeline names it, not a copy of its code."""
    import numpy as np

    columns = []
    for name, wanted in parts.items():
        values = frame[name].dt
        found = {
            "year": values.year,
            "month": values.month,
            "day": values.day,
            "day_of_week": values.day_of_week,
            "day_of_year": values.day_of_year,
            "hour": values.hour,
        }
        columns += [np.asarray(found[part], dtype=np.float64) for part in wanted]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def date_part_names(transformer, input_features, parts: dict[str, list[str]]) -> list[str]:
    """``<column>_<part>``: the names of date_parts's columns, in its order (what
    FunctionTransformer's ``feature_names_out`` is called with, ``parts`` bound)."""
    return [f"{name}_{part}" for name, wanted in parts.items() for part in wanted]


def model_dates(schema: DataConfig) -> dict[str, list[str]]:
    """``{datetime column: its parts}`` for the datetime columns that reach the model."""
    found = {name: schema.date_parts(name) for name in schema.features.datetime}
    return {name: parts for name, parts in found.items() if parts}


def preprocessor(schema: DataConfig, options: PreprocessConfig):
    """A ColumnTransformer: impute (and scale) numerics and the parts of dates, impute
    booleans, impute and encode categoricals. Dropped columns do not reach the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    features = schema.features
    transformers = []

    def as_numbers(first: list) -> Pipeline:
        steps = [*first, ("impute", SimpleImputer(strategy=options.numeric_impute))]
        if options.scale_numeric:
            steps.append(("scale", StandardScaler()))
        return Pipeline(steps)

    if features.numeric:
        transformers.append(("numeric", as_numbers([]), list(features.numeric)))
    dates = model_dates(schema)
    if dates:
        names = functools.partial(date_part_names, parts=dates)
        parts = FunctionTransformer(date_parts, kw_args={"parts": dates}, feature_names_out=names)
        transformers.append(("datetime", as_numbers([("parts", parts)]), list(dates)))
    if features.boolean:
        imputer = SimpleImputer(strategy="most_frequent")
        transformers.append(("boolean", imputer, list(features.boolean)))
    if features.categorical:
        if options.categorical_encoding == "onehot":
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        impute = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
        steps = [("impute", impute), ("encode", encoder)]
        transformers.append(("categorical", Pipeline(steps), list(features.categorical)))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
