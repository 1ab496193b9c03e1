"""The stages' pure functions: deterministic outputs, canonical model bytes, safe loading."""

import json
import os
import shutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import yaml
from conftest import (
    PACKAGE,
    PROJECT_ROOT,
    machinery,
    model_files_for,
    project_module,
    require_pulled_data,
)

models = machinery("runtime.model_file")
errors = machinery("runtime.errors")
evaluation = project_module("evaluation")
splits = project_module("splits")
PIPELINE = machinery("runtime.pipeline").read(PROJECT_ROOT)
# The team's stages, each after those it depends on (params, the machinery's, runs first).
STAGES = [stage.name for stage in PIPELINE.in_order()][1:]


def run_stage(name, config):
    return import_module(f"{PACKAGE}.stages.{name}").run(config)


def run_pipeline(config, written: set[str]) -> dict[str, bytes]:
    """Every output, by label; a folder's files by their name without .csv (the plots). The
    paths the stages said they wrote go into ``written``. The machinery's params stage runs
    first, as dvc.yaml runs it."""
    load = project_module("config").load_params
    written.add(str(machinery("runtime.params").check_and_stamp(load, "params.yaml")))
    outputs = {}
    for name in STAGES:
        for label, path in run_stage(name, config).items():
            written.add(Path(path).as_posix())
            if path.is_dir():
                outputs |= {file.stem: file.read_bytes() for file in sorted(path.iterdir())}
            else:
                outputs[label] = path.read_bytes()
    return outputs


@pytest.fixture(scope="module")
def written() -> set[str]:
    """The paths the stages said they wrote, filled by ``outputs``."""
    return set()


@pytest.fixture(scope="module")
def outputs(module_workspace, written):
    """The whole pipeline, verify included, run once in a scratch workspace. verify reran
    every stage before it in an isolated process and compared each output byte for byte."""
    config = project_module("config").load_params(module_workspace / "params.yaml")
    return run_pipeline(config, written)


def task(workspace) -> str:
    return project_module("config").load_params(workspace / "params.yaml").data.task


def test_the_pipeline_writes_every_declared_output(outputs, written, module_workspace):
    """The stages write exactly what dvc.yaml declares, a plot folder one table per plot of
    evaluation.PLOTS (the other task's empty)."""
    declared = {out.path for stage in PIPELINE.stages for out in stage.outs}
    assert written == declared
    plots = {name for task_plots in evaluation.PLOTS.values() for name in task_plots}
    folders = [path for path in declared if (module_workspace / path).is_dir()]
    tables = {file.stem for folder in folders for file in (module_workspace / folder).iterdir()}
    assert tables == plots


def test_metrics_are_sorted_and_carry_no_volatile_fields(outputs, module_workspace):
    text = outputs["metrics"].decode()
    metrics = json.loads(text)
    assert list(metrics) == sorted(metrics)
    if task(module_workspace) == "regression":
        assert set(metrics) - {"mape"} == {"rmse", "mae", "r2", "n_test"}
        assert 0.0 < metrics["r2"] <= 1.0 and 0 < metrics["mae"] <= metrics["rmse"]
        return
    assert set(metrics) == {
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "n_test",
        "per_class",
        "roc_auc_macro",
    }
    assert 0.5 < metrics["accuracy"] <= 1.0


def test_verify_reruns_every_stage_before_it_and_compares_every_output(outputs, module_workspace):
    """verify reruns every stage it depends on and compares every output they declare (a
    folder's files one by one): byte for byte, but the metrics key by key, and the model's
    predictions besides."""
    report = json.loads(outputs["verify_report"])
    assert report["result"] == "match"
    paths = project_module("config").load_params(module_workspace / "params.yaml").paths
    verifier = PIPELINE.writer_of(paths.verify_report).name
    rerun = PIPELINE.upstream(verifier)
    assert report["rerun"] == [stage.name for stage in rerun]
    compared = {check["output"]: check["level"] for check in report["checks"]}
    declared = set()
    for out in (out for stage in rerun for out in stage.outs):
        folder = module_workspace / out.path
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        declared |= {f"{out.path}/{file.name}" for file in files} if files else {out.path}
    assert {name for name, level in compared.items() if level == "strict"} == declared - {
        paths.metrics
    }
    assert compared["predictions"] == "portable" and compared[paths.metrics] == "metrics"
    assert all(check["result"] == "match" for check in report["checks"])
    assert str(module_workspace) not in outputs["verify_report"].decode()
    assert "/tmp" not in outputs["verify_report"].decode()


def _table(data: bytes) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(data.decode())))


def test_the_other_tasks_plots_are_empty_files(outputs, module_workspace):
    mine = task(module_workspace)
    for name in set().union(*evaluation.PLOTS.values()) - set(evaluation.PLOTS[mine]):
        assert outputs[name] == b"", name
    # One row per test row (calibration and the curves may be empty without scores).
    predictions = "predicted_actual" if mine == "regression" else "confusion"
    n_test = json.loads(outputs["metrics"])["n_test"]
    assert outputs[predictions].decode().count("\n") == 1 + n_test


def test_regression_tables_cover_every_test_row_and_decile(outputs, module_workspace):
    if task(module_workspace) != "regression":
        pytest.skip("a classification project: its curves are checked below")
    n_test = json.loads(outputs["metrics"])["n_test"]
    predicted = _table(outputs["predicted_actual"])
    assert len(predicted) == n_test == len(_table(outputs["residuals"]))
    deciles = _table(outputs["error_by_decile"])
    assert [int(row["decile"]) for row in deciles] == list(range(1, len(deciles) + 1))
    assert sum(int(row["rows"]) for row in deciles) == n_test


def test_curves_are_on_the_grid_for_each_class_and_bounded(outputs, module_workspace):
    config = project_module("config").load_params(module_workspace / "params.yaml")
    if config.data.task == "regression":
        pytest.skip("a regression project has no class curves")
    classes = json.loads(outputs["metrics"])["per_class"]
    drawn = 1 if len(classes) == 2 else len(classes)
    for name, x, y in (("roc", "fpr", "tpr"), ("precision_recall", "recall", "precision")):
        rows = _table(outputs[name])
        assert len({row["class"] for row in rows}) == drawn
        for label in {row["class"] for row in rows}:
            mine = [row for row in rows if row["class"] == label]
            assert [float(row[x]) for row in mine] == [round(i / 100, 6) for i in range(101)]
            assert all(0.0 <= float(row[y]) <= 1.0 for row in mine)
        if name == "roc":
            tpr = [float(row["tpr"]) for row in rows if row["class"] == rows[0]["class"]]
            assert tpr == sorted(tpr) and tpr[-1] == 1.0
    calibration = _table(outputs["calibration"])
    assert calibration and all(
        0.0 <= float(row[key]) <= 1.0 for row in calibration for key in ("predicted", "observed")
    )
    importance = _table(outputs["importance"])
    columns = project_module("data").model_columns(config.data)
    assert sorted(row["feature"] for row in importance) == sorted(columns)


def test_a_perfect_scorer_has_a_perfect_curve():
    plots = project_module("evaluation")
    actual = np.array(["no", "no", "yes", "yes", "no", "yes"])
    scores = np.column_stack([actual == "no", actual == "yes"]).astype(float)
    roc = _table(plots.roc_rows(actual, ["no", "yes"], scores).encode())
    assert {row["class"] for row in roc} == {"yes"}
    assert all(float(row["tpr"]) == 1.0 for row in roc)
    assert plots.roc_auc_macro(actual, ["no", "yes"], scores) == 1.0
    flipped = 1.0 - scores
    assert plots.roc_auc_macro(actual, ["no", "yes"], flipped) == 0.0
    assert plots.roc_rows(actual, ["no", "yes"], None) == "class,curve,fpr,tpr\n"


def test_split_is_stratified_disjoint_and_complete():
    codes = np.repeat(np.arange(3), [50, 30, 20])
    train, test = splits.stratified(codes, 0.2, seed=7)
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(100))
    assert np.bincount(codes[test]).tolist() == [10, 6, 4]
    again, _ = splits.stratified(codes, 0.2, seed=7)
    assert again.tolist() == train.tolist()
    other, _ = splits.stratified(codes, 0.2, seed=8)
    assert other.tolist() != train.tolist()


def test_a_regression_target_is_stratified_by_its_deciles():
    values = np.random.default_rng(6).exponential(50.0, 400)
    bins = splits.target_bins(values)
    assert bins.min() == 0 and bins.max() == splits.STRATA - 1
    assert np.bincount(bins).tolist() == [40] * 10
    assert splits.target_bins(values[::-1]).tolist() == bins[::-1].tolist()
    _, test = splits.stratified(bins, 0.25, seed=3)
    assert np.bincount(bins[test]).tolist() == [10] * 10
    ties = splits.target_bins(np.repeat([1.0, 2.0], 50))  # ties share a bin
    assert ties.tolist() == [0] * 50 + [1] * 50


def test_group_split_keeps_every_group_on_one_side():
    groups = np.random.default_rng(3).integers(0, 40, 500)
    train, test = splits.by_group(groups, 0.25, seed=1)
    assert np.union1d(train, test).tolist() == list(range(500))
    assert not set(groups[train].tolist()) & set(groups[test].tolist())
    assert 0.15 < test.size / 500 < 0.4


def test_time_split_puts_every_test_row_after_every_train_row():
    times = np.random.default_rng(4).integers(2000, 2024, 300)
    train, test = splits.by_time(times, 0.25)
    assert np.union1d(train, test).tolist() == list(range(300))
    assert times[test].min() > times[train].max()
    with pytest.raises(ValueError, match="same time"):
        splits.by_time(np.full(10, 5), 0.25)


def test_a_derived_feature_is_computed_alike_in_prepare_and_in_predict(config, workspace):
    """A column in features.DERIVED, declared under its kind, is computed from the raw columns
    when prepare reads the raw table and when predict reads raw rows: the model trained on the
    prepared table gives the same predictions on the raw rows."""
    import csv

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    features, data = project_module("features"), project_module("data")
    source = config.data.features.numeric[0]
    features.DERIVED["derived_twice"] = lambda table: pc.multiply(table[source], 2.0)
    try:
        config.data.features.numeric.append("derived_twice")
        run_stage("prepare", config)
        run_stage("train", config)
        test = data.read_prepared(config.paths.test)
        doubled = pc.multiply(test[source].cast("double"), 2.0)
        assert test["derived_twice"].to_pylist() == doubled.to_pylist()
        # The same rows as a user would bring them: without the derived column.
        rows = workspace / "rows.parquet"
        pq.write_table(test.drop_columns(["derived_twice"]), rows)
        out = project_module("predict").predict(config, rows, workspace / "predicted.csv")
        predicted = [row["prediction"] for row in csv.DictReader(out.open())]
        model = models.load_recorded_model(config.paths.model, config.paths.model_record)
        expected = model.predict(data.features_frame(test, config.data)).tolist()
        assert predicted == [str(value) for value in expected]
    finally:
        del features.DERIVED["derived_twice"]


def test_predicting_in_batches_gives_the_bytes_of_one_call(config, workspace, monkeypatch):
    """evaluate predicts the test table a batch of rows at a time, so the model's copies of
    its input stay small; batches of a few rows give the same metrics and plot tables."""
    run_stage("prepare", config)
    run_stage("train", config)

    def evaluated(batch_rows: int) -> dict[str, bytes]:
        monkeypatch.setattr(evaluation, "PREDICT_BATCH_ROWS", batch_rows)
        written = run_stage("evaluate", config)
        tables = sorted(written["plots"].iterdir())
        return {"metrics": written["metrics"].read_bytes()} | {
            path.name: path.read_bytes() for path in tables
        }

    assert evaluated(7) == evaluated(1 << 30)


def test_seed_flows_from_config(config, workspace):
    run_stage("prepare", config)
    first = run_stage("train", config)["model"].read_bytes()
    config.seed += 1
    run_stage("prepare", config)
    assert run_stage("train", config)["model"].read_bytes() != first


def test_the_record_is_what_loading_checks(config, workspace):
    run_stage("prepare", config)
    run_stage("train", config)
    record = models.read_record(config.paths.model_record)
    assert record["drift"] == []
    model_file = workspace / config.paths.model
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(errors.ModelFileError, match="refusing to load"):
        models.load_recorded_model(config.paths.model, config.paths.model_record)


def test_prediction_takes_raw_rows_and_refuses_a_tampered_model(config, workspace):
    import csv

    predict = project_module("predict")
    run_stage("prepare", config)
    run_stage("train", config)
    raw = (workspace / config.paths.raw_data).read_text(encoding="utf-8").splitlines()
    header = next(csv.reader(raw[:1]))
    keep = [index for index, name in enumerate(header) if name != config.data.target]
    rows = workspace / "new.csv"
    with rows.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for line in csv.reader(raw[:6]):
            writer.writerow([line[index] for index in keep])
    out = predict.predict(config, rows, workspace / "predictions.csv")
    predicted = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert len(predicted) == 5
    if config.data.task == "regression":
        numbers = [float(row["prediction"]) for row in predicted]  # numbers, not labels
        assert np.isfinite(numbers).all()
    else:
        known = {row[header.index(config.data.target)] for row in csv.reader(raw[1:])}
        assert {row["prediction"] for row in predicted} <= known
    model_file = workspace / config.paths.model
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(errors.ModelFileError, match="refusing to load"):
        predict.predict(config, rows, workspace / "again.csv")


def test_predictions_cannot_run_as_spreadsheet_formulas():
    predict = project_module("predict")
    safe = predict.spreadsheet_safe
    formulas = {"=1+1": "'=1+1", "+A1": "'+A1", "-x": "'-x", "@SUM(A1)": "'@SUM(A1)"}
    formulas |= {"\tx": "'\tx", "\rx": "'\rx"}
    assert {cell: safe(cell) for cell in formulas} == formulas
    numbers_and_text = ["-12", "-1.5", "+3e-2", "id-7", -4, -0.5, True]
    assert [safe(value) for value in numbers_and_text] == numbers_and_text
    # A carriage return inside a cell is quoted, so it cannot end the row.
    assert predict.csv_text([["id", "prediction"], ["\rx", -1]]) == 'id,prediction\n"\'\rx",-1\n'


MODEL_BYTES = """
import hashlib, importlib.util, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from importlib import import_module
import yaml
package = sys.argv[2]
config_module = import_module(package + ".config")
data = import_module(package + ".data")
artifacts = import_module("reproml.runtime.model_file")
models = import_module(package + ".models")
params = yaml.safe_load(Path(sys.argv[3]).read_text())
mixed = {
    "name": "mixed", "file": "mixed.csv", "target": "churn",
    "task": "classification", "label": "string",
    "features": {"numeric": ["tenure_months", "monthly_charges", "age", "support_calls"],
                 "categorical": ["region", "plan", "contract"],
                 "boolean": ["paperless_billing", "has_partner"], "datetime": ["signup_date"]},
    "drop": ["customer_id", "household", "year"], "missing": ["", "NA"],
}
tables = {"numeric": (params["data"], str(Path(sys.argv[1]) / params["paths"]["raw_data"])),
          "mixed": (mixed, str(Path(sys.argv[1]) / "tests" / "fixtures" / "mixed.csv"))}
def model_for(model_file, task):
    # The model file with its class for task; None without one, or without its library.
    model = yaml.safe_load(model_file.read_text())
    if "_by_task_" in model:
        if task not in model["_by_task_"]:
            return None
        model["_target_"] = model["_by_task_"][task]
    if importlib.util.find_spec(model["_target_"].rsplit(".", 1)[0]) is None:
        return None
    return model
digests = {}
for model_file in sorted(Path(sys.argv[5]).glob("*.yaml")):
    for kind, (schema, raw) in tables.items():
        model = model_for(model_file, schema["task"])
        if model is None:
            continue
        for encoding in ("onehot", "ordinal"):
            values = {**params, "data": schema, "model": model}
            values["preprocess"] = {**params["preprocess"], "categorical_encoding": encoding}
            config = config_module.validate(values)
            table = data.read_raw(raw, config.data)
            pipeline = models.build(config)
            pipeline.fit(data.features_frame(table, config.data), data.labels(table, config.data))
            key = f"{model_file.stem}/{kind}/{encoding}"
            digests[key] = hashlib.sha256(artifacts.model_bytes(pipeline)).hexdigest()
print(json.dumps(digests))
"""


def test_model_bytes_are_canonical_for_every_model_and_data_kind(tmp_path):
    """Every shipped model file, on a numeric and a mixed-type table, with either encoding:
    two processes with other hash seeds, time zones and working directories, same bytes."""
    require_pulled_data()

    def digests(seed: str, zone: str) -> dict:
        workdir = tmp_path / seed
        workdir.mkdir()
        command = [
            sys.executable,
            "-c",
            MODEL_BYTES,
            str(PROJECT_ROOT),
            PACKAGE,
            str(PROJECT_ROOT / "params.yaml"),
            str(workdir),
            str(PROJECT_ROOT / "conf" / "model"),
        ]
        env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": zone}
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, env=env, check=True
        )
        return json.loads(result.stdout)

    first = digests("1", "UTC")
    # Every model file this project can train, on its own table and on the mixed
    # classification table, with either encoding.
    task = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["data"]["task"]
    assert set(first) == {
        f"{path.stem}/{kind}/{encoding}"
        for kind, files in (
            ("numeric", model_files_for(task)),
            ("mixed", model_files_for("classification")),
        )
        for path in files
        for encoding in ("onehot", "ordinal")
    }
    assert digests("2", "Pacific/Chatham") == first


# ---- the plots as drawn -------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def _legend_entries(rows: list[dict]) -> dict[str, str]:
    """``{class: its legend entry}`` of a curve table: one entry per class."""
    entries = {(row["class"], row["curve"]) for row in rows}
    assert len(entries) == len({label for label, _ in entries}), entries
    return dict(entries)


@pytest.mark.filterwarnings("ignore:No positive samples:sklearn.exceptions.UndefinedMetricWarning")
def test_curve_legends_name_each_class_with_scikit_learns_area():
    """The legend entry of each one-vs-rest curve is scikit-learn's roc_auc_score (or
    average_precision_score) of the scores the curve is drawn from, to three decimals."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(5)
    classes = ["ant", "bee", "cat"]
    actual = np.array(classes)[rng.integers(0, 3, 300)]
    scores = rng.random((300, 3)) + 0.8 * np.column_stack([actual == name for name in classes])
    for rows_of, area_of, name in (
        (evaluation.roc_rows, roc_auc_score, "AUC"),
        (evaluation.precision_recall_rows, average_precision_score, "AP"),
    ):
        text = rows_of(actual, classes, scores)
        assert rows_of(actual, classes, scores) == text  # the same bytes on a rerun
        expected = {
            label: f"{label} ({name} {area_of(actual == label, scores[:, index]):.3f})"
            for index, label in enumerate(classes)
        }
        assert _legend_entries(_table(text.encode())) == expected
    # A binary model's curve is its positive class's; a class the test rows lack has no area.
    binary = _table(evaluation.roc_rows(actual == "bee", [False, True], scores[:, :2]).encode())
    assert set(_legend_entries(binary)) == {"True"}
    with_dog = np.column_stack([scores, rng.random(300)])
    absent = _table(evaluation.roc_rows(actual, [*classes, "dog"], with_dog).encode())
    assert _legend_entries(absent)["dog"] == "dog (AUC undefined)"


def test_the_legend_areas_are_those_of_the_evaluated_model(outputs, module_workspace):
    """roc.csv's and precision_recall.csv's legend entries are scikit-learn's areas of the
    evaluated model's one-vs-rest scores on the test rows."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    config = project_module("config").load_params(module_workspace / "params.yaml")
    if config.data.task == "regression":
        pytest.skip("a regression project has no class curves")
    model = models.load_recorded_model(config.paths.model, config.paths.model_record)
    features, actual = project_module("data").read_for_model(config.paths.test, config.data)
    classes, scores, _ = evaluation.class_scores(model, features)
    curve_classes = [1] if len(classes) == 2 else range(len(classes))
    for table, area_of, name in (
        ("roc", roc_auc_score, "AUC"),
        ("precision_recall", average_precision_score, "AP"),
    ):
        assert _legend_entries(_table(outputs[table])) == {
            str(classes[index]): (
                f"{classes[index]} ({name} "
                f"{area_of(actual == classes[index], scores[:, index]):.3f})"
            )
            for index in curve_classes
        }


@pytest.fixture(scope="module")
def drawn(outputs, module_workspace, tmp_path_factory) -> dict[str, ElementTree.ElementTree]:
    """This run's plots as `make plots` draws them, by table name: DVC fills in the templates
    dvc.yaml names (`dvc plots show --json`) and vl-convert renders each one to SVG."""
    repo = tmp_path_factory.mktemp("drawn")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copyfile(module_workspace / name, repo / name)
    shutil.copytree(PROJECT_ROOT / "plots" / "templates", repo / "plots" / "templates")
    shutil.copytree(module_workspace / "plots" / "tables", repo / "plots" / "tables")
    proc = machinery("tools.commands")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DVC_NO_ANALYTICS", "1")
        proc.run_checked(proc.dvc_command("init", "--no-scm", "-q"), RuntimeError, cwd=repo)
        machinery("tools.offline_plots").render(repo, [], Path("svg"))
    return {
        path.name.removeprefix("plots_tables_").partition(".csv")[0]: ElementTree.parse(path)
        for path in sorted((repo / "svg").glob("*.svg"))
    }


def _texts(svg: ElementTree.ElementTree, group_class: str) -> list[ElementTree.Element]:
    """The text elements under the SVG groups of one class (a layer's ``<name>_marks``, or
    ``role-legend-label``)."""
    return [
        text
        for group in svg.iter(f"{SVG}g")
        if group_class in group.get("class", "").split()
        for text in group.iter(f"{SVG}text")
    ]


def _layer(svg: ElementTree.ElementTree, name: str) -> list[ElementTree.Element]:
    """What a template's layer ``name`` drew: the items of its ``<name>_marks`` group."""
    return [
        item
        for group in svg.iter(f"{SVG}g")
        if f"{name}_marks" in group.get("class", "").split()
        for item in group
    ]


def test_every_drawn_plot_is_titled_in_words(drawn, module_workspace):
    """Each plot carries the title dvc.yaml gives it, not DVC's default (the file's path)."""
    plots = set(evaluation.PLOTS[task(module_workspace)])
    # Only a model with probabilities has a calibration table.
    assert set(drawn) <= plots and plots - set(drawn) <= {"calibration"}
    declared = yaml.safe_load((module_workspace / "dvc.yaml").read_text())["plots"]
    titles = {
        Path(path).stem: entry.get("title")
        for item in declared
        if isinstance(item, dict)
        for path, entry in item.items()
    }
    for name, svg in drawn.items():
        shown = [text.text for text in _texts(svg, "role-title-text")]
        assert titles[name] in shown, (name, shown)
        assert not [title for title in shown if ".csv" in title or "/" in title], (name, shown)


def test_the_confusion_matrix_shows_the_count_in_every_cell(drawn, outputs, module_workspace):
    if task(module_workspace) == "regression":
        pytest.skip("a regression project has no confusion matrix")
    rows = _table(outputs["confusion"])
    labels = {row[side] for row in rows for side in ("actual", "predicted")}
    expected = {
        (actual, predicted): sum(
            row["actual"] == actual and row["predicted"] == predicted for row in rows
        )
        for actual in labels
        for predicted in labels
    }
    shown = {}
    for text in _texts(drawn["confusion"], "counts_marks"):
        # Vega labels each mark for screen readers: "predicted class: 1; actual class: 0; rows: 3"
        said = dict(part.split(": ") for part in text.get("aria-label").split("; "))
        shown[(said["actual class"], said["predicted class"])] = int(text.text)
    assert shown == expected


def _rule_from_corner_to_corner(svg: ElementTree.ElementTree, layer: str) -> None:
    """The layer drew one line, from the bottom-left corner of a square plot to its top-right
    (the diagonal of a plot whose axes both run from 0 to 1)."""
    [line] = _layer(svg, layer)
    width, height = float(line.get("x2")), -float(line.get("y2"))
    assert width == height > 0 and line.get("transform") == f"translate(0,{height:g})"


def test_roc_and_calibration_draw_their_diagonal_and_legends_name_the_areas(
    drawn, outputs, module_workspace
):
    if task(module_workspace) == "regression":
        pytest.skip("a regression project has no class curves")
    legend = {text.text for text in _texts(drawn["roc"], "role-legend-label")}
    assert set(_legend_entries(_table(outputs["roc"])).values()) <= legend
    assert "chance (AUC 0.500)" in legend
    _rule_from_corner_to_corner(drawn["roc"], "diagonal")
    legend = {text.text for text in _texts(drawn["precision_recall"], "role-legend-label")}
    assert set(_legend_entries(_table(outputs["precision_recall"])).values()) <= legend
    if "calibration" in drawn:
        _rule_from_corner_to_corner(drawn["calibration"], "diagonal")
        legend = {text.text for text in _texts(drawn["calibration"], "role-legend-label")}
        assert "perfectly calibrated" in legend


def test_predicted_against_actual_draws_y_equals_x_on_equal_axes(drawn, module_workspace):
    if task(module_workspace) != "regression":
        pytest.skip("a classification project has no predicted-against-actual plot")
    svg = drawn["predicted_actual"]
    axes = [
        group.get("aria-label")
        for group in svg.iter(f"{SVG}g")
        if "role-axis" in group.get("class", "").split()
        and "linear scale" in (group.get("aria-label") or "")
    ]
    [x_axis, y_axis] = sorted(axes)
    assert x_axis.startswith("X-axis") and y_axis.startswith("Y-axis")
    assert x_axis.partition("values from")[2] == y_axis.partition("values from")[2] != ""
    # The line's two ends, in pixels: equal scales put y = x at 45 degrees.
    [line] = _layer(svg, "identity")
    start, end = (
        [float(value) for value in point.split(",")] for point in line.get("d")[1:].split("L")
    )
    assert end[0] - start[0] == pytest.approx(start[1] - end[1]) and end[0] > start[0]
    legend = {text.text for text in _texts(svg, "role-legend-label")}
    assert "predicted = actual" in legend
