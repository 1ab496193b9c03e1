"""The plain library as the oracle: run inside a baked project's own environment (its
interpreter, the project on sys.path), for each model family and each demo table of a task the
family has, the project's own stages in this process (prepare, train, evaluate), then a plain
script that calls the library directly on the same split rows with the same parameters and
seed: pandas reads the CSV, scikit-learn's transformers prepare the columns, the library's own
class fits and predicts, scikit-learn's metrics score. Prints one JSON object per line: the
family, the table, and every difference found (empty when the two agree: labels exactly,
probabilities and numbers within float tolerance, every metric within 1e-9; for a float32
network, within float32's).

argv: a JSON object {"families": [...], "tables": {name: csv path}, "work": folder}.
"""

import importlib
import json
import math
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT = Path.cwd()
PACKAGE = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["reproml"]["package"]
sys.path.insert(0, str(PROJECT))
SEED = 42
THREADS = 1
# Probabilities and regression predictions: the same computation in the same library, so
# only the last bits may move. A network computes in float32 (eps 1.2e-7), and skorch's own
# predict_proba runs its forward pass in batches, whose sums round differently.
TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}
FLOAT32_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
METRIC_TOLERANCE = 1e-9
FLOAT32_METRIC_TOLERANCE = 1e-5
TRUE_WORDS = {"true", "yes", "1"}
FALSE_WORDS = {"false", "no", "0"}
# What a plain script sets so the library retrains the same model (its own documentation).
LIBRARY_DEFAULTS = {
    "sklearn": {"random_state": SEED},
    "lightgbm": {
        "random_state": SEED,
        "n_jobs": THREADS,
        "deterministic": True,
        "force_row_wise": True,
    },
    "xgboost": {"random_state": SEED, "n_jobs": THREADS},
    "catboost": {"random_seed": SEED, "thread_count": THREADS, "allow_writing_files": False},
}


def module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def composed_config(table: str, family: str, csv_path: str, work: Path):
    """The project's own composition of conf/ for this table and model, paths under work."""
    from reproml.runtime.params import compose

    paths = {
        "raw_data": csv_path,
        "train": work / "train.parquet",
        "test": work / "test.parquet",
        "model": work / "model.pkl",
        "model_record": work / "model.json",
        "metrics": work / "metrics.json",
        "plots": work / "plots",
    }
    composed = yaml.safe_load(compose("conf", [f"data={table}", f"model={family}"]))
    config = module("config").validate(composed)
    for key, value in paths.items():
        setattr(config.paths, key, str(value))
    return config


def project_run(config) -> dict:
    """prepare, train and evaluate as the pipeline runs them, in this process; evaluate
    without its plot tables (what the oracle compares is the predictions and the metrics;
    the plots' permutation importance alone would cost more than training)."""
    from reproml.runtime.model_file import load_recorded_model

    module("evaluation").PLOTS = {task: {} for task in ("classification", "regression")}
    for stage in ("prepare", "train", "evaluate"):
        module(f"stages.{stage}").run(config)
    model = load_recorded_model(config.paths.model, config.paths.model_record)
    features, actual = module("data").read_for_model(config.paths.test, config.data)
    found = {"predicted": np.asarray(model.predict(features)), "actual": actual}
    if config.data.task == "classification":
        found["proba"] = np.asarray(model.predict_proba(features), dtype=float)
        found["classes"] = list(model.classes_)
    found["metrics"] = json.loads(Path(config.paths.metrics).read_text())
    return found


def split_rows(config) -> tuple[np.ndarray, np.ndarray]:
    """The rows the pipeline trains and tests on: the split is an input of both sides."""
    table = module("data").read_raw(config.paths.raw_data, config.data)
    return module("splits").split(table, config.data, config.split, config.seed, "oracle")


def plain_frame(csv_path: str, data) -> tuple[pd.DataFrame, pd.Series]:
    """The table as a plain pandas script reads it: features by kind, the target as is."""
    frame = pd.read_csv(
        csv_path,
        sep=data.delimiter,
        na_values=list(data.missing),
        keep_default_na=False,
        dtype=str,
    )
    if data.missing_target == "drop":
        frame = frame[frame[data.target].notna()].reset_index(drop=True)
    features = pd.DataFrame(index=frame.index)
    kinds = data.features
    for name in kinds.numeric:
        features[name] = pd.to_numeric(frame[name]).astype(float)
    for name in kinds.datetime:
        dates = pd.to_datetime(frame[name])
        parts = {
            "year": dates.dt.year,
            "month": dates.dt.month,
            "day": dates.dt.day,
            "day_of_week": dates.dt.day_of_week,
            "day_of_year": dates.dt.day_of_year,
            "hour": dates.dt.hour,
        }
        for part in data.date_parts(name):
            features[f"{name}_{part}"] = parts[part].astype(float)
    for name in kinds.boolean:
        words = frame[name].str.lower()
        features[name] = np.where(words.isin(TRUE_WORDS), 1.0, np.nan)
        features.loc[words.isin(FALSE_WORDS), name] = 0.0
    for name in kinds.categorical:
        features[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
    target = frame[data.target]
    label = {"integer": "int64", "number": "float64"}.get(data.label)
    if data.label == "boolean":
        target = target.str.lower().isin(TRUE_WORDS)
    elif label:
        target = pd.to_numeric(target).astype(label)
    return features, target


def plain_preprocessing(data):
    """The ColumnTransformer a user writes: impute and scale numbers (date parts among them),
    impute booleans, impute and one-hot encode categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kinds = data.features
    dates = [f"{n}_{p}" for n in kinds.datetime for p in data.date_parts(n)]
    blocks = [
        (
            "numeric",
            kinds.numeric,
            make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
        ),
        ("datetime", dates, make_pipeline(SimpleImputer(strategy="median"), StandardScaler())),
        ("boolean", kinds.boolean, SimpleImputer(strategy="most_frequent")),
        (
            "categorical",
            kinds.categorical,
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            ),
        ),
    ]
    used = [(name, step, list(columns)) for name, columns, step in blocks if columns]
    return ColumnTransformer(used, remainder="drop", sparse_threshold=0.0)


def plain_estimator(config, n_inputs: int, n_classes: int):
    """The library's own class with the model file's parameters and the library's seed and
    thread settings; for the network, skorch's own NeuralNet classes around the project's
    module (the network definition is the team's, the training loop skorch's)."""
    from hydra.utils import get_class

    model = {k: v for k, v in config.model.items() if not (k.startswith("_") and k.endswith("_"))}
    target = config.model["_target_"]
    if target.endswith(("NetClassifier", "NetRegressor")):
        return plain_network(config, model, n_inputs, n_classes)
    cls = get_class(target)
    library = cls.__module__.split(".")[0]
    defaults = LIBRARY_DEFAULTS[library]
    if library in (
        "sklearn",
        "xgboost",
    ):  # only the keys the class takes (LogisticRegression's seed)
        defaults = {key: value for key, value in defaults.items() if key in cls().get_params()}
    return cls(**model, **defaults)


def plain_network(config, model: dict, n_inputs: int, n_classes: int):
    import torch
    from hydra.utils import get_class
    from skorch import NeuralNetClassifier, NeuralNetRegressor

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    network = dict(model.pop("module"))
    module_class = get_class(network.pop("_target_"))
    network.pop("_partial_", None)
    classifier = config.data.task == "classification"
    return (NeuralNetClassifier if classifier else NeuralNetRegressor)(
        module_class,
        **{f"module__{key}": value for key, value in network.items()},
        module__n_inputs=n_inputs,
        module__n_outputs=n_classes if classifier else 1,
        criterion=torch.nn.CrossEntropyLoss if classifier else torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=model["lr"],
        max_epochs=model["max_epochs"],
        batch_size=model["batch_size"],
        iterator_train__shuffle=True,
        train_split=None,
        device="cpu",
        verbose=0,
    )


def plain_run(config, csv_path: str) -> dict:
    """What a user's own script computes on the same rows."""
    from sklearn.preprocessing import LabelEncoder

    train, test = split_rows(config)
    features, target = plain_frame(csv_path, config.data)
    prepare = plain_preprocessing(config.data)
    x_train = prepare.fit_transform(features.iloc[train])
    x_test = prepare.transform(features.iloc[test])
    y_train, y_test = target.iloc[train].to_numpy(), target.iloc[test].to_numpy()
    classification = config.data.task == "classification"
    encoder = LabelEncoder().fit(y_train) if classification else None
    estimator = plain_estimator(config, x_train.shape[1], len(encoder.classes_) if encoder else 1)
    target_name = config.model["_target_"]
    network = target_name.endswith(("NetClassifier", "NetRegressor"))
    codes_only = "xgboost" in target_name or (network and classification)
    if network:
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if not classification:
        mean, scale = float(y_train.mean()), float(y_train.std() or 1.0)
        fit_target = (
            ((y_train - mean) / scale).astype(np.float32).reshape(-1, 1) if network else y_train
        )
        estimator.fit(x_train, fit_target)
        predicted = np.ravel(estimator.predict(x_test)).astype(float)
        if network:
            predicted = predicted * scale + mean
        return {"predicted": predicted, "actual": y_test}
    estimator.fit(x_train, encoder.transform(y_train) if codes_only else y_train)
    predicted = np.ravel(estimator.predict(x_test))
    if codes_only:
        predicted = encoder.classes_[predicted.astype(int)]
    proba = np.asarray(estimator.predict_proba(x_test), dtype=float)
    classes = encoder.classes_ if codes_only else estimator.classes_
    return {"predicted": predicted, "actual": y_test, "proba": proba, "classes": list(classes)}


def sklearn_metrics(found: dict, task: str) -> dict:
    """The scores scikit-learn's own functions give for the oracle's predictions."""
    from sklearn import metrics

    actual, predicted = found["actual"], found["predicted"]
    if task == "regression":
        scores = {
            "rmse": metrics.root_mean_squared_error(actual, predicted),
            "mae": metrics.mean_absolute_error(actual, predicted),
            "r2": metrics.r2_score(actual, predicted),
        }
        if not np.any(actual == 0):
            scores["mape"] = metrics.mean_absolute_percentage_error(actual, predicted)
        return scores
    scores = {
        "accuracy": metrics.accuracy_score(actual, predicted),
        "f1_macro": metrics.f1_score(actual, predicted, average="macro", zero_division=0),
        "precision_macro": metrics.precision_score(
            actual, predicted, average="macro", zero_division=0
        ),
        "recall_macro": metrics.recall_score(actual, predicted, average="macro", zero_division=0),
    }
    report = metrics.classification_report(actual, predicted, output_dict=True, zero_division=0)
    for label in sorted(set(actual.tolist()) | set(predicted.tolist()), key=str):
        row = report[str(label)]
        for key in ("precision", "recall"):
            scores[f"per_class.{label}.{key}"] = row[key]
        scores[f"per_class.{label}.f1"] = row["f1-score"]
    classes, proba = found["classes"], found["proba"]
    if len(classes) == 2:
        scores["roc_auc_macro"] = metrics.roc_auc_score(actual == classes[1], proba[:, 1])
    elif set(actual.tolist()) == set(classes):
        scores["roc_auc_macro"] = metrics.roc_auc_score(
            actual, proba, multi_class="ovr", average="macro", labels=classes
        )
    return scores


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(ours: dict, plain: dict, task: str, float32: bool) -> list[str]:
    """Where the pipeline and the plain script disagree (``float32``: a network's outputs,
    compared within float32's tolerance)."""
    tolerance = FLOAT32_TOLERANCE if float32 else TOLERANCE
    metric_tolerance = FLOAT32_METRIC_TOLERANCE if float32 else METRIC_TOLERANCE
    found = []
    if not np.array_equal(ours["actual"].astype(object), plain["actual"].astype(object)):
        found.append("the test targets differ (rows or label types)")
    mine, theirs = ours["predicted"], plain["predicted"]
    if mine.shape != theirs.shape:
        found.append(f"predictions have shape {mine.shape}, the library's {theirs.shape}")
    elif task == "classification":
        flips = [
            (a, b)
            for a, b in zip(mine.tolist(), theirs.tolist(), strict=True)
            if a != b or type(a) is not type(b)
        ]
        if flips:
            found.append(f"{len(flips)} labels differ, e.g. {flips[0][0]!r} vs {flips[0][1]!r}")
    elif not np.allclose(mine.astype(float), theirs, **tolerance):
        found.append(f"predictions differ by {np.max(np.abs(mine - theirs)):.3g}")
    if task == "classification":
        if [str(c) for c in ours["classes"]] != [str(c) for c in plain["classes"]]:
            found.append(f"classes {ours['classes']} vs the library's {plain['classes']}")
        elif not np.allclose(ours["proba"], plain["proba"], **tolerance):
            found.append(
                f"probabilities differ by {np.max(np.abs(ours['proba'] - plain['proba'])):.3g}"
            )
    written = flat(ours["metrics"])
    for key, expected in sklearn_metrics(plain, task).items():
        value = written.get(key)
        if not isinstance(value, int | float) or not math.isclose(
            value, float(expected), rel_tol=metric_tolerance, abs_tol=metric_tolerance
        ):
            found.append(f"metrics.{key} is {value!r}, scikit-learn gives {float(expected)!r}")
    return found


def main() -> int:
    spec = json.loads(sys.argv[1])
    work = Path(spec["work"])
    for family in spec["families"]:
        tasks = set(
            (yaml.safe_load((PROJECT / "conf/model" / f"{family}.yaml").read_text()))["_by_task_"]
        )
        for table, csv_path in spec["tables"].items():
            schema = yaml.safe_load((PROJECT / "conf/data" / f"{table}.yaml").read_text())
            if schema["task"] not in tasks:
                continue
            folder = work / f"{family}-{table}"
            folder.mkdir(parents=True, exist_ok=True)
            config = composed_config(table, family, csv_path, folder)
            network = config.model["_target_"].endswith(("NetClassifier", "NetRegressor"))
            try:
                ours, plain = project_run(config), plain_run(config, csv_path)
                found = differences(ours, plain, schema["task"], float32=network)
            except Exception as error:  # the project refused or crashed: that is the finding
                found = [f"{type(error).__name__}: {error}"]
            line = {"family": family, "table": table, "task": schema["task"], "differences": found}
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
