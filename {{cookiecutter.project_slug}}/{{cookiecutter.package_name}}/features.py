"""Preprocessing built from the table's schema. It is the first step of the fitted pipeline
that is pickled, so the model takes raw rows as they come and ``predict`` needs no other code.

Edit this to change how columns are prepared for the model; conf/preprocess/ holds its knobs.
"""

from .config import DataConfig, PreprocessConfig

MISSING_CATEGORY = "missing"


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
