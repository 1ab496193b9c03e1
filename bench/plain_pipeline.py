"""The yardstick: the pipeline a user would write without the template, in one script.

pyarrow reads the CSV, a stratified split is written to Parquet and read back, a scikit-learn
pipeline (the same imputers, scaler or encoder and the same estimator with the same
parameters) is fitted and pickled, and accuracy and F1 (or R² and MAE) are written as JSON.
No schema checks, no records, no verify, no curves. It reads the baked project's
params.yaml only to train the same model on the same columns; `--trains 2` fits the model
twice, which is what verify must add at the least.

    python plain_pipeline.py <params.yaml> <output dir> [--trains N] [--stage NAME]

``--stage prepare|train|evaluate`` runs one step, so the same code can also be run as a
plain three-stage dvc.yaml (one process per stage), the yardstick the issue measured.
"""

import argparse
import importlib
import json
import pickle
import sys
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from pyarrow import csv as arrow_csv
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


def estimator(model: dict, seed: int):
    module, _, name = model["_target_"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    kwargs = {key: value for key, value in model.items() if not key.startswith("_")}
    if "random_state" in cls().get_params():
        kwargs.setdefault("random_state", seed)
    return cls(**kwargs)


def pipeline(params: dict, textual: set[str]) -> Pipeline:
    """``textual``: the boolean columns pyarrow read as text ("yes"/"no"), encoded with the
    categorical ones, as a user would."""
    features, options = params["data"]["features"], params["preprocess"]
    booleans = [c for c in features.get("boolean") or [] if c not in textual]
    categories = (features.get("categorical") or []) + sorted(textual)
    numeric = [("impute", SimpleImputer(strategy=options["numeric_impute"]))]
    if options["scale_numeric"]:
        numeric.append(("scale", StandardScaler()))
    if options["categorical_encoding"] == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    categorical = [("impute", SimpleImputer(strategy="constant", fill_value="missing"))]
    columns = [
        ("numeric", Pipeline(numeric), features.get("numeric") or []),
        ("boolean", SimpleImputer(strategy="most_frequent"), booleans),
        (
            "categorical",
            Pipeline([*categorical, ("encode", encoder)]),
            categories,
        ),
    ]
    preprocess = ColumnTransformer([c for c in columns if c[2]], sparse_threshold=0.0)
    return Pipeline(
        [("preprocess", preprocess), ("model", estimator(params["model"], params["seed"]))]
    )


def prepare(params: dict, root: Path, out: Path) -> None:
    """Read the CSV, split it, write both parts as Parquet."""
    data = params["data"]
    frame = arrow_csv.read_csv(root / params["paths"]["raw_data"]).to_pandas()
    frame = frame.drop(columns=[c for c in data.get("drop") or [] if c in frame])
    train, test = train_test_split(
        frame,
        test_size=params["split"].get("test_size", 0.25),
        random_state=params["seed"],
        stratify=frame[data["target"]] if data["task"] == "classification" else None,
    )
    train.to_parquet(out / "train.parquet")
    test.to_parquet(out / "test.parquet")


def train(params: dict, out: Path, trains: int) -> None:
    """Fit the model ``trains`` times on the training part and pickle it."""
    target = params["data"]["target"]
    frame = pq.read_table(out / "train.parquet").to_pandas()
    textual = {
        c
        for c in params["data"]["features"].get("boolean") or []
        if not (is_bool_dtype(frame[c]) or is_numeric_dtype(frame[c]))
    }
    for _ in range(trains):
        model = pipeline(params, textual).fit(frame.drop(columns=[target]), frame[target])
    (out / "model.pkl").write_bytes(pickle.dumps(model))


def evaluate(params: dict, out: Path) -> None:
    """Score the pickled model on the test part: accuracy and F1, or R² and MAE."""
    target = params["data"]["target"]
    model = pickle.loads((out / "model.pkl").read_bytes())
    test = pq.read_table(out / "test.parquet").to_pandas()
    predicted = model.predict(test.drop(columns=[target]))
    actual = test[target]
    if params["data"]["task"] == "classification":
        metrics = {
            "accuracy": accuracy_score(actual, predicted),
            "f1_macro": f1_score(actual, predicted, average="macro"),
        }
    else:
        metrics = {"r2": r2_score(actual, predicted), "mae": mean_absolute_error(actual, predicted)}
    (out / "metrics.json").write_text(json.dumps(metrics))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("params")
    parser.add_argument("out")
    parser.add_argument("--trains", type=int, default=1)
    parser.add_argument(
        "--stage",
        choices=("all", "prepare", "train", "evaluate"),
        default="all",
        help="one step only: what a plain dvc.yaml of three scripts runs per stage",
    )
    args = parser.parse_args(argv)
    params = yaml.safe_load(Path(args.params).read_text())
    root, out = Path(args.params).parent, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "prepare"):
        prepare(params, root, out)
    if args.stage in ("all", "train"):
        train(params, out, args.trains)
    if args.stage in ("all", "evaluate"):
        evaluate(params, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
