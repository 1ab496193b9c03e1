"""What a model and its scores must be (the machinery's contract), the scores as
scikit-learn's own functions give them, dates as features, and predict as a server uses it:
a row id, one probability per class, only the columns the model uses, errors in its terms."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PACKAGE, PROJECT_ROOT, machinery, project_module
from test_data import GOOD_ROWS, SCHEMA, csv_bytes, prepare, write_workspace

contract = machinery("runtime.contract")
errors = machinery("runtime.errors")
evaluation = project_module("evaluation")
config_module = project_module("config")
launcher = machinery("runtime.launcher")


class Fitted:
    """A fitted classifier stand-in whose predict returns what it is given."""

    classes_ = np.array(["gold", "silver"], dtype=object)

    def __init__(self, predicted):
        self.predicted = predicted

    def predict(self, features):
        return self.predicted


@pytest.mark.parametrize(
    ("predicted", "message"),
    [
        (np.array([["gold"], ["silver"], ["gold"]], dtype=object), r"shape \(3, 1\) for 3 rows"),
        (np.array(["gold", "silver"], dtype=object), r"shape \(2,\) for 3 rows"),
        (np.array(["gold", "bronze", "gold"], dtype=object), r"not among the classes.*'bronze'"),
        (np.array([0, 1, 0]), r"not among the classes.*0"),
    ],
)
def test_a_prediction_that_breaks_the_contract_is_refused_by_name(predicted, message):
    with pytest.raises(errors.ContractError, match=message) as raised:
        contract.check_predictions(Fitted(predicted), predicted, 3, "classification", "evaluate")
    assert "Fitted.predict" in str(raised.value) and "Fix:" in str(raised.value)
    good = np.array(["gold", "silver", "gold"], dtype=object)
    assert contract.check_predictions(Fitted(good), good, 3, "classification", "x") is not None


def test_a_regressor_must_predict_finite_numbers():
    with pytest.raises(
        errors.ContractError, match=r"1 non-finite predictions \(NaN or infinity\) of 2\."
    ):
        contract.check_predictions(Fitted(None), np.array([1.0, np.nan]), 2, "regression", "x")
    with pytest.raises(errors.ContractError, match="must return numbers"):
        contract.check_predictions(Fitted(None), np.array(["a", "b"]), 2, "regression", "x")


def test_labels_compare_by_value_whatever_array_holds_them():
    """An object array keeps numpy scalars where a typed one gives Python values: a label is
    the same label either way, while 1.0 or True for the class 1 is not."""
    classes = np.array(["a", "b"])
    held = np.array([np.str_("a"), np.str_("b")], dtype=object)
    assert contract.check_predictions(Fitted(held), held, 2, "classification", "x", classes) is held
    for changed in (np.array([1.0, 0.0]), np.array([True, False])):
        with pytest.raises(errors.ContractError, match="not among the classes"):
            contract.check_predictions(Fitted(changed), changed, 2, "classification", "x", [0, 1])


@pytest.mark.parametrize(
    ("probabilities", "message"),
    [
        (np.array([0.2, 0.8, 0.5]), r"shape \(3,\) for 3 rows of 2 classes"),
        (np.array([[0.2, 0.8, 0.0]] * 3), r"shape \(3, 3\) for 3 rows of 2 classes"),
        (np.array([[0.2, 0.8], [0.6, 0.6], [1.0, 0.0]]), r"gave row 2 the values \[0.6, 0.6\]"),
        (np.array([[0.2, 0.8], [1.5, -0.5], [1.0, 0.0]]), r"gave row 2 .*in \[0, 1\]"),
    ],
)
def test_probabilities_must_be_one_column_per_class_summing_to_one(probabilities, message):
    with pytest.raises(errors.ContractError, match=message):
        contract.check_probabilities(Fitted(None), probabilities, 3, "evaluate")
    good = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    assert contract.check_probabilities(Fitted(None), good, 3, "evaluate").shape == (3, 2)


def test_train_refuses_a_model_whose_predict_is_a_column():
    """CatBoost's multiclass predict returned an (n, 1) column: train stops, naming it."""
    import pandas as pd

    features = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    column = Fitted(np.array([["gold"], ["silver"], ["gold"]], dtype=object))
    with pytest.raises(errors.ContractError, match=r"train: Fitted\.predict .* \(3, 1\)"):
        contract.check_fitted(column, features, "classification", "train")


@pytest.mark.parametrize(
    ("metrics", "key"),
    [
        ({"accuracy": 0.38, "f1_macro": 71.98}, "f1_macro"),
        ({"per_class": {"rain": {"precision": 14.0}}}, "per_class.rain.precision"),
        ({"roc_auc_macro": float("nan")}, "roc_auc_macro"),
        ({"rmse": -1.0}, "rmse"),
        ({"r2": 1.5}, "r2"),
        ({"n_test": 4.5}, "n_test"),
    ],
)
def test_a_metric_outside_its_range_is_refused(metrics, key):
    with pytest.raises(errors.ContractError, match=rf"evaluate: metrics\.{key} is"):
        contract.check_metrics(metrics, evaluation.METRIC_RANGES, "evaluate")


def test_classification_scores_are_scikit_learns():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    labels = np.array(["rain", "sun", "fog", "snow"], dtype=object)
    actual = labels[rng.integers(0, 4, 200)]
    predicted = labels[rng.integers(0, 3, 200)]  # "snow" is never predicted
    found = evaluation.classification_metrics(actual, predicted)
    assert found["accuracy"] == metrics.accuracy_score(actual, predicted)
    for average in ("f1", "precision", "recall"):
        score = getattr(metrics, f"{average}_score")
        expected = score(actual, predicted, average="macro", zero_division=0)
        assert found[f"{average}_macro"] == pytest.approx(expected, abs=1e-15)
    report = metrics.classification_report(actual, predicted, output_dict=True, zero_division=0)
    for label in labels:
        assert found["per_class"][label]["f1"] == pytest.approx(report[label]["f1-score"])
        assert found["per_class"][label]["support"] == report[label]["support"]
    contract.check_metrics(found, evaluation.METRIC_RANGES, "evaluate")


DATED = [
    "id,when,level,label",
    "1,2024-03-01 10:30:00,1.0,gold",
    "2,2023-12-31 23:00:00,2.0,silver",
    "3,NA,3.0,gold",
    "4,2022-01-03 00:00:00,4.0,silver",
]


def dated_config(dates=None):
    schema = {
        **SCHEMA,
        "features": config_module.FeatureColumns(numeric=["level"], datetime=["when"]),
        "drop": ["id"],
    }
    if dates is not None:
        schema["dates"] = dates
    return config_module.DataConfig(**schema)


def test_a_date_reaches_the_model_as_its_documented_parts(tmp_path):
    """year, month, day of week (Monday 0), day of year and hour, NaN where missing, as the
    preprocessing computes them inside the pickled pipeline."""
    data, features = project_module("data"), project_module("features")
    path = tmp_path / "dated.csv"
    path.write_text("\n".join(DATED) + "\n")
    parts = ["year", "month", "day_of_week", "day_of_year", "hour"]
    schema = dated_config({"when": parts})
    frame = data.features_frame(data.read_raw(path, schema), schema)
    assert list(frame.columns) == ["level", "when"]
    computed = features.date_parts(frame[["when"]], {"when": parts})
    assert computed[0].tolist() == [2024, 3, 4, 61, 10]
    assert computed[1].tolist() == [2023, 12, 6, 365, 23]
    assert np.isnan(computed[2]).all()
    prepared = features.preprocessor(schema, config_module.PreprocessConfig()).fit(frame)
    assert prepared.transform(frame).shape == (4, 1 + len(parts))
    # Not named: the default parts; named with []: the date stays out of the model.
    default = features.preprocessor(dated_config(), config_module.PreprocessConfig()).fit(frame)
    assert default.transform(frame).shape == (4, 1 + len(config_module.DEFAULT_DATE_PARTS))
    assert data.model_columns(dated_config({"when": []})) == ["level"]


def test_dates_name_datetime_columns_and_known_parts():
    validate = config_module.validate
    params = __import__("yaml").safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for dates, message in (
        ({"nowhere": ["year"]}, "data.dates.nowhere: 'nowhere' is not a datetime column"),
        ({"when": ["year", "fortnight"]}, "data.dates.when: 'fortnight' is not a date part"),
    ):
        schema = {**SCHEMA, "features": {"numeric": ["level"], "datetime": ["when"]}}
        with pytest.raises(errors.ConfigError, match=message):
            validate({**params, "data": {**schema, "dates": dates}})


def test_a_derived_column_of_one_table_is_computed_for_that_table_only(tmp_path):
    """DERIVED_BY_TABLE["people"] reaches the table whose schema is named people, and no
    other: there the same column name is the file's own."""
    import pyarrow.compute as pc

    data, features = project_module("data"), project_module("features")
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes())
    numeric = ["income", "twice"]
    declared = {**SCHEMA, "features": config_module.FeatureColumns(numeric=numeric)}
    declared["drop"] = ["id", "city", "member", "signed"]
    features.DERIVED_BY_TABLE["people"] = {"twice": lambda t: pc.multiply(t["income"], 2.0)}
    try:
        table = data.read_raw(path, config_module.DataConfig(**declared))
        assert table["twice"].to_pylist()[0] == 21.0
        with pytest.raises(errors.DataError, match="declared column 'twice' is missing"):
            data.read_raw(path, config_module.DataConfig(**{**declared, "name": "cars"}))
    finally:
        del features.DERIVED_BY_TABLE["people"]


def test_a_semicolon_table_is_read_when_its_schema_says_so_and_named_when_not(tmp_path):
    text = csv_bytes().replace(b",", b";")
    write_workspace(tmp_path, text)
    refused = prepare(tmp_path)
    assert refused.returncode == 1
    assert "separated by a semicolon, not a comma" in refused.stderr
    assert "delimiter: ';'" in refused.stderr and "Traceback" not in refused.stderr
    write_workspace(tmp_path, text, {**SCHEMA, "delimiter": ";"})
    assert prepare(tmp_path).returncode == 0


def test_rows_without_a_target_are_left_out_when_the_schema_says_so_and_counted(tmp_path):
    rows = [*GOOD_ROWS, "9,rome,1.0,yes,2023-02-02,NA", "10,oslo,2.0,no,2023-02-03,"]
    write_workspace(tmp_path, csv_bytes(rows=rows), {**SCHEMA, "missing_target": "drop"})
    result = prepare(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "left out 2 of 10 rows whose target 'label' is missing" in result.stderr
    data = project_module("data")
    kept = sum(
        data.read_prepared(tmp_path / "out" / name).num_rows
        for name in ("train.parquet", "test.parquet")
    )
    assert kept == len(GOOD_ROWS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained and evaluated by the real stages (one process, as verify runs them) on
    the small people table, and its config; shared by the tests below, which only read it."""
    import yaml

    folder = tmp_path_factory.mktemp("trained")
    params = write_workspace(folder, csv_bytes())
    # The people table's task is classification, whatever this project's model is.
    values = yaml.safe_load(params.read_text())
    values["model"] = {"_target_": "sklearn.linear_model.LogisticRegression", "max_iter": 500}
    params.write_text(yaml.safe_dump(values))
    text = params.read_text().replace("models/", f"{folder}/models/")
    text = text.replace("plots/tables", f"{folder}/plots/tables")
    params.write_text(text.replace("metrics/", f"{folder}/metrics/"))
    stages = ["prepare", "train", "evaluate"]
    command = [sys.executable, "-m", PACKAGE, "stage", *stages, "--params", str(params)]
    env = {**launcher.pinned_environment(dict(os.environ)), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return config_module.load_params(params)


def predicted_rows(config, rows: str, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(rows)
    out = project_module("predict").predict(config, path, tmp_path / "predicted.csv")
    return list(csv.DictReader(out.open()))


def test_predict_writes_an_id_and_each_classs_probability_from_the_columns_the_model_uses(
    trained, tmp_path
):
    config = trained
    model = machinery("runtime.model_file").load_recorded_model(
        config.paths.model, config.paths.model_record
    )
    # The label is absent, the columns are in another order, and an unknown one is extra.
    rows = (
        "extra,member,signed,city,income,id\nz,yes,2020-01-02,paris,10.5,A7\nz,no,NA,rome,NA,B8\n"
    )
    found = predicted_rows(config, rows, tmp_path)
    assert [row["id"] for row in found] == ["A7", "B8"]
    classes = model.classes_.tolist()
    assert list(found[0]) == ["id", "prediction", *(f"probability_{c}" for c in classes)]
    for row in found:
        probabilities = [float(row[f"probability_{c}"]) for c in classes]
        assert sum(probabilities) == pytest.approx(1.0)
        assert row["prediction"] == classes[int(np.argmax(probabilities))]
    # Without an id column: the row's number in the file.
    without_id = "member,signed,city,income\nyes,2020-01-02,paris,10.5\n"
    assert [row["row"] for row in predicted_rows(config, without_id, tmp_path)] == ["1"]


def test_predict_names_the_column_the_model_uses_that_the_rows_lack(trained, tmp_path):
    config = trained
    with pytest.raises(errors.DataError) as refused:
        predicted_rows(config, "member,signed,city\nyes,2020-01-02,paris\n", tmp_path)
    said = str(refused.value)
    assert "this table lacks column 'income', which the model uses" in said
    assert "conf/data" not in said  # a server cannot change the schema of a trained model


def test_a_score_out_of_its_range_stops_evaluate_before_it_writes(trained, monkeypatch):
    """A scoring bug (an F1 of 72): evaluate refuses it by name and its outputs stay as the
    last good run wrote them."""
    metrics, plots = Path(trained.paths.metrics), Path(trained.paths.plots)
    before = metrics.read_bytes(), sorted(path.name for path in plots.iterdir())
    contract.check_metrics(json.loads(before[0]), evaluation.METRIC_RANGES, "the fixture's run")
    scores = evaluation.scores
    monkeypatch.setattr(evaluation, "scores", lambda result: {**scores(result), "f1_macro": 72.0})
    with pytest.raises(errors.ContractError, match=r"evaluate: metrics\.f1_macro is 72\.0"):
        project_module("stages.evaluate").run(trained)
    assert (metrics.read_bytes(), sorted(path.name for path in plots.iterdir())) == before
