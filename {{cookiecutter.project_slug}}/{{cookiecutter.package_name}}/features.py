"""Your features: columns derived from the raw ones, and the preprocessing built from the
table's schema (impute, encode, scale), which is the first step of the fitted pipeline that is
pickled. Edit this to change how columns are prepared for the model; conf/preprocess/ holds
the preprocessing's knobs.

A derived feature is a function of the raw table (pyarrow) that returns one value per row,
added to DERIVED under the column's name, with that name listed under its kind in
conf/data/<name>.yaml's features. data.read_raw computes it for every table it reads (the raw
table prepare splits, and the rows predict labels), so training and serving agree:

    DERIVED = {"charges_per_month": lambda table: pc.divide(table["charges"], table["months"])}
"""

from collections.abc import Callable
from typing import Any

from .config import DataConfig, PreprocessConfig

MISSING_CATEGORY = "missing"
# Derived columns, by name: a function of the raw pyarrow table returning the column.
DERIVED: dict[str, Callable[[Any], Any]] = {}


def preprocessor(schema: DataConfig, options: PreprocessConfig):
    """A ColumnTransformer: impute (and scale) numerics, impute booleans, impute and encode
    categoricals. Datetime and dropped columns do not reach the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    features = schema.features
    transformers = []
    if features.numeric:
        steps = [("impute", SimpleImputer(strategy=options.numeric_impute))]
        if options.scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), list(features.numeric)))
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
