"""Regression as a task kind: what `make data` infers from a target, the schema's `task`, the
regression metrics and plot tables, and the EQUIVALENT rule for regressors, as units; then one
tier-3 project (the diabetes demo with ridge) driven through its real commands."""

import csv
import importlib
import json
import math
import sys

import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import TEMPLATE, bake, run
from test_end_to_end import Project, restore_committed_state

UNIT_PACKAGE = "regression_unit"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The template's package, importable as it is (its modules carry no template variable),
    and the machinery, installed from library/: ``package("config")``,
    ``package("reproml.runtime.errors")``. Only the package is imported afresh: the machinery
    is the one every test shares (a second copy would split its caches and error classes)."""
    root = tmp_path_factory.mktemp("package")
    sources = TEMPLATE / "{{cookiecutter.project_slug}}"
    (root / UNIT_PACKAGE).symlink_to(sources / "{{cookiecutter.package_name}}", True)

    def forget() -> None:
        for name in [n for n in sys.modules if n.split(".")[0] == UNIT_PACKAGE]:
            del sys.modules[name]

    forget()
    sys.path.insert(0, str(root))
    try:
        yield lambda name: importlib.import_module(
            name if name.startswith("reproml.") else f"{UNIT_PACKAGE}.{name}"
        )
    finally:
        sys.path.remove(str(root))
        forget()


def infer(package, values, task=None):
    return package("reproml.tools.ingest").infer_task(
        "table.csv", "y", pa.chunked_array([values]), task
    )


def test_an_integer_target_with_many_distinct_values_is_regression(package):
    """A body mass in whole grams: 94 distinct values in 342 rows is a quantity, not 94
    classes."""
    masses = [2700 + 25 * (index % 94) for index in range(342)]
    choice = infer(package, masses)
    assert (choice.task, choice.label, choice.warning) == ("regression", "number", "")
    assert "94 distinct values in 342 rows" in choice.reason
    change = package("reproml.tools.ingest").how_to_change(choice, "penguins")
    assert "task: classification" in change and "conf/data/penguins.yaml" in change
    assert "TASK=classification FORCE=1" in change


def test_few_classes_are_classification_and_decimals_are_regression(package):
    assert (infer(package, [0, 1, 2] * 30).task, infer(package, [0, 1, 2] * 30).label) == (
        "classification",
        "integer",
    )
    assert infer(package, ["gold", "silver"] * 20).label == "string"
    assert infer(package, [True, False] * 20).label == "boolean"
    decimals = infer(package, [0.5 * index for index in range(40)])
    assert (decimals.task, decimals.label) == ("regression", "number")
    assert "Decimal numbers cannot be class labels" in package(
        "reproml.tools.ingest"
    ).how_to_change(decimals, "x")
    forced = infer(package, [1, 2, 3, 4] * 10, task="regression")
    assert (forced.task, forced.label) == ("regression", "number")


def test_mostly_singleton_classes_are_never_taken_silently(package):
    names = [f"patient-{index}" for index in range(25)] + ["a", "a", "b", "b", "c"]
    text = infer(package, names)
    assert text.task == "classification"
    assert "26 of the 28 classes of 'y' occur in one row only" in text.warning
    # Integers: few values, but mostly single rows, are a quantity.
    integers = infer(package, [*range(12), 50, 50, 60, 60])
    assert integers.task == "regression" and "mostly single rows" in integers.reason
    forced = infer(package, [*range(12), 50, 50], task="classification")
    assert forced.task == "classification" and "occur in one row only" in forced.warning


@pytest.mark.parametrize(
    ("values", "task", "needles"),
    [
        (["adelie", "gentoo"] * 10, "regression", ["'y' holds text such as 'adelie'", "Fix:"]),
        (["yes"] * 20, None, ["'y' has one class ('yes')", "Fix: choose another TARGET="]),
        ([0.5, 1.5] * 10, "classification", ["decimal numbers", "Fix: TASK=regression"]),
        ([None, None], None, ["'y' is missing in every row", "Fix:"]),
    ],
)
def test_a_target_that_cannot_be_the_task_is_named_with_the_fix(package, values, task, needles):
    errors = package("reproml.runtime.errors")
    with pytest.raises(errors.DataError) as raised:
        infer(package, pa.array(values, pa.null() if values[0] is None else None), task)
    message = str(raised.value)
    assert message.startswith("table.csv: the target 'y'")
    assert all(needle in message for needle in needles), message


def test_the_schema_requires_a_task_that_fits_the_label(package):
    config, errors = package("config"), package("reproml.runtime.errors")
    shipped = TEMPLATE / "{{cookiecutter.project_slug}}" / "conf"
    raw = {
        "seed": 1,
        "data": yaml.safe_load((shipped / "data" / "diabetes.yaml").read_text()),
        "split": {"kind": "stratified", "test_size": 0.25},
        "preprocess": {},
        "paths": {
            key: value.replace("${data.file}", "diabetes.csv")
            for key, value in yaml.safe_load(
                (shipped / "paths" / "default.yaml").read_text()
            ).items()
        },
        "model": {"_target_": "sklearn.linear_model.Ridge"},
    }
    assert config.validate(raw).data.task == "regression"
    no_task = {**raw, "data": {k: v for k, v in raw["data"].items() if k != "task"}}
    with pytest.raises(errors.ConfigError, match=r"data\.task: missing.*conf/data/diabetes\.yaml"):
        config.validate(no_task)
    for task, label, needle in [
        ("regression", "integer", r"task: regression needs label: number.*Fix:"),
        ("classification", "number", r"label: number is a regression target.*Fix:"),
        ("clustering", "number", r"data\.task: 'clustering' is not one of"),
    ]:
        wrong = {**raw, "data": {**raw["data"], "task": task, "label": label}}
        with pytest.raises(errors.ConfigError, match=needle):
            config.validate(wrong)


def test_every_shipped_schema_declares_its_task():
    tasks = {
        path.stem: yaml.safe_load(path.read_text())["task"]
        for path in (TEMPLATE / "{{cookiecutter.project_slug}}" / "conf" / "data").glob("*.yaml")
    }
    assert tasks.pop("diabetes") == "regression"
    assert set(tasks.values()) == {"classification"}


def test_regression_metrics_are_scikit_learns(package):
    from sklearn import metrics as sk

    metrics = package("evaluation")
    actual, predicted = np.array([3.0, 5.0, 2.5, 7.0]), np.array([2.5, 5.0, 3.0, 8.0])
    scores = metrics.regression_metrics(actual, predicted)
    assert scores == {
        "rmse": pytest.approx(math.sqrt(sk.mean_squared_error(actual, predicted))),
        "mae": pytest.approx(0.5),
        "r2": pytest.approx(sk.r2_score(actual, predicted)),
        "mape": pytest.approx(sk.mean_absolute_percentage_error(actual, predicted)),
        "n_test": 4,
    }
    with_zero = metrics.regression_metrics(np.array([0.0, 1.0]), np.array([0.1, 1.0]))
    assert "mape" not in with_zero  # undefined where a target is zero


def test_regression_plot_tables_and_the_other_tasks_empty_ones(package):
    plots = package("evaluation")
    actual = np.arange(1.0, 101.0)
    predicted = actual + np.where(actual > 50, 2.0, -1.0)
    deciles = list(csv.DictReader(plots.error_by_decile_rows(actual, predicted).splitlines()))
    assert [row["decile"] for row in deciles] == [str(n) for n in range(1, 11)]
    assert [row["rows"] for row in deciles] == ["10"] * 10
    assert float(deciles[0]["bias"]) == -1.0 and float(deciles[-1]["mae"]) == 2.0
    exact = list(csv.DictReader(plots.predicted_actual_rows(actual / 3, actual).splitlines()))
    assert float(exact[0]["actual"]) == 1 / 3  # every bit, for the EQUIVALENT rule
    residuals = list(csv.DictReader(plots.residual_rows(actual, predicted).splitlines()))
    assert float(residuals[0]["residual"]) == 1.0
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    features = pd.DataFrame({"x": actual})
    model = LinearRegression().fit(features, actual)
    result = plots.Evaluation(model, features, actual, predicted, "regression", seed=0)
    tables = plots.plot_tables(result)
    assert tables["residuals.csv"] == plots.residual_rows(actual, predicted)
    assert tables["importance.csv"].startswith("feature,importance\nx,")
    only_classification = set(plots.PLOTS["classification"]) - set(plots.PLOTS["regression"])
    assert {name for name, text in tables.items() if text == ""} == {
        f"{name}.csv" for name in only_classification
    }


def test_the_equivalent_rule_for_regression_is_relative(package):
    verification = package("reproml.runtime.verification")
    equivalence = package("reproml.tools.equivalence")
    plots = package("evaluation")
    actual = np.array([120.0, 250.0, 310.0])
    predicted = np.array([118.25, 260.5, 305.0])
    committed = plots.predicted_actual_rows(actual, predicted)
    tolerance = verification.prediction_tolerance(predicted)
    assert tolerance == pytest.approx(verification.PORTABLE_TOLERANCE * 305.0)
    nudged = plots.predicted_actual_rows(actual, predicted + tolerance / 2)
    assert committed != nudged  # other bytes ...
    assert equivalence.same_within_tolerance("t.csv", committed, nudged)  # ... same predictions
    moved = plots.predicted_actual_rows(actual, predicted + np.array([0, 0, tolerance * 3]))
    assert not equivalence.same_within_tolerance("t.csv", committed, moved)
    other_rows = plots.predicted_actual_rows(actual + 1, predicted)
    assert not equivalence.same_within_tolerance("t.csv", committed, other_rows)
    # A committed table anyone could have edited into garbage is not the same, not a traceback.
    assert not equivalence.same_within_tolerance("t.csv", "actual,predicted\n1,x\n", committed)
    # The other task's plot tables are empty files on both sides: the same, not unparsable.
    assert equivalence.same_within_tolerance("t.csv", "", "")
    assert not equivalence.same_within_tolerance("t.csv", "", committed)
    assert equivalence.numbers_close({"rmse": 5000.0}, {"rmse": 5000.0 + 1e-7})
    assert not equivalence.numbers_close({"rmse": 5000.0}, {"rmse": 5000.01})
    assert not equivalence.numbers_close({"accuracy": 0.9}, {"accuracy": 0.9 + 2e-9})


# ---- tier 3: the diabetes demo with ridge, through the real commands ----------------------


def write_table(path, header: list[str], rows: list[list]) -> str:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def refused_by_name(result, *needles: str) -> None:
    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert "Traceback" not in said, said
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("regression")
def test_the_regression_demo_rebuilds_and_refuses_bad_targets(tmp_path):
    path = bake(tmp_path / "bake", dataset="diabetes", model="ridge", project_slug="reg-demo")
    project = Project(path)
    project.make("setup")
    project.make("repro")
    report = json.loads((path / "reports/verify.json").read_text())
    assert report["result"] == "match"
    portable = next(check for check in report["checks"] if check["level"] == "portable")
    assert portable == {**portable, "result": "match", "implied_by": "identical bytes"}
    metrics = json.loads((path / "metrics/metrics.json").read_text())
    assert set(metrics) == {"rmse", "mae", "r2", "mape", "n_test"} and metrics["r2"] > 0.3
    assert (path / "plots/tables/confusion.csv").read_text() == ""  # the other task's
    assert {"prepare", "train", "evaluate"} <= set(report["rerun"])

    raw = list(csv.reader((path / "data/raw/diabetes.csv").read_text().splitlines()))
    rows = write_table(tmp_path / "new.csv", raw[0][:-1], [row[:-1] for row in raw[1:6]])
    predicted = tmp_path / "predicted.csv"
    command = [".venv/bin/python", "-m", "reproml.tools", "predict", rows, str(predicted)]
    run(command, cwd=path)
    values = [row["prediction"] for row in csv.DictReader(predicted.read_text().splitlines())]
    assert len(values) == 5 and all(25 < float(value) < 346 for value in values)

    # Trained on another machine (its record names another kernel and CPU level): the bytes
    # differ, every prediction is within the regression tolerance, so EQUIVALENT (exit 3).
    project.git("add", "-A")
    project.git("commit", "-qm", "Train the regressor")
    record_file = path / "models/model.json"
    record = json.loads(record_file.read_text())
    record["environment"]["cpu"] = {"vendor": "GenuineIntel", "isa": "x86-64-v2"}
    try:
        record_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        project.dvc("commit", "--force")
        project.git("commit", "-qam", "a model trained on another machine")
        command = [".venv/bin/python", "-m", "reproml.tools", "rebuild", "HEAD", "--no-record"]
        rebuilt = run(command, cwd=path, check=False)
        assert rebuilt.returncode == 3, rebuilt.stdout + rebuilt.stderr
        assert "EQUIVALENT" in rebuilt.stdout and "x86-64-v2" in rebuilt.stdout
        assert "each number within 1e-09 times the largest |value| of its column" in rebuilt.stdout
    finally:
        project.git("reset", "-q", "--hard", "HEAD~1")
        restore_committed_state(project)

    # Bad targets through `make data`: named (file, column, fix), nothing changed.
    before = run(["git", "status", "--porcelain"], cwd=path).stdout
    species = write_table(
        tmp_path / "species.csv", ["flipper", "species"], [[i, "adelie"] for i in range(30)]
    )
    strings = write_table(
        tmp_path / "islands.csv",
        ["flipper", "island"],
        [[i, ["biscoe", "dream"][i % 2]] for i in range(30)],
    )
    one_class = project.make("data", env={"SRC": species, "TARGET": "species"}, check=False)
    refused_by_name(one_class, "species.csv: the target 'species' has one class ('adelie')", "Fix:")
    env = {"SRC": strings, "TARGET": "island", "TASK": "regression"}
    as_regression = project.make("data", env=env, check=False)
    refused_by_name(
        as_regression,
        "islands.csv: the target 'island' holds text such as 'biscoe'",
        "must hold numbers. Fix: TASK=classification",
    )
    assert run(["git", "status", "--porcelain"], cwd=path).stdout == before
    assert not (path / "conf/data/islands.yaml").exists()

    # Whole grams with many values: regression, and `make data` says so and how to change it.
    masses = write_table(
        tmp_path / "penguins.csv",
        ["flipper", "body_mass_g"],
        [[180 + i % 40, 2700 + 25 * (i % 94)] for i in range(342)],
    )
    brought = project.make("data", env={"SRC": masses, "TARGET": "body_mass_g"})
    assert "task: regression (label: number), inferred" in brought.stdout
    assert "94 distinct values in 342 rows" in brought.stdout
    assert "TASK=classification FORCE=1" in brought.stdout
    schema = yaml.safe_load((path / "conf/data/penguins.yaml").read_text())
    assert (schema["task"], schema["label"]) == ("regression", "number")
