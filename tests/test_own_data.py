"""Tier 3: a team's own table and model, the way the baked README tells a user to bring them.

A mixed-type table (string categories, `NA`, a string label that is not the last column, an
id column, a year) goes through `make data` and `make repro` as CSV and as Parquet, and
`make rebuild` in a clone of its own as CSV; then a custom estimator class is trained from a
YAML file alone.
Last, bad input through the real commands (`make data`, `predict`, a model file, `make rebuild`
and `make release`): each refused by name, with nothing half-written and nothing lost.
"""

import csv
import hashlib
import json
import re

import numpy as np
import pytest
import yaml
from conftest import CHOICES, UV, bake, project_package, run
from interpreters import find_interpreter
from test_end_to_end import Project, experiment_models

pytestmark = pytest.mark.slow
ROWS = 400
CUSTOM_ESTIMATOR = '''

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class CentroidClassifier(ClassifierMixin, BaseEstimator):
    """Nearest class centroid, the centroids shrunk towards the overall mean."""

    def __init__(self, shrink=0.0):
        self.shrink = shrink

    def fit(self, features, labels):
        features = np.asarray(features, dtype=float)
        self.classes_, index = np.unique(labels, return_inverse=True)
        centre = features.mean(axis=0)
        means = np.stack([features[index == k].mean(axis=0) for k in range(len(self.classes_))])
        self.centroids_ = centre + (1.0 - self.shrink) * (means - centre)
        return self

    def predict(self, features):
        features = np.asarray(features, dtype=float)
        distances = ((features[:, None, :] - self.centroids_[None]) ** 2).sum(axis=-1)
        return self.classes_[distances.argmin(axis=1)]
'''


def team_table() -> tuple[list[str], list[list[str]]]:
    """What a team's export looks like: the label in the middle, NA for missing values."""
    rng = np.random.default_rng(11)
    header = ["patient_id", "clinic", "age", "outcome", "smoker", "year", "dose"]
    rows = []
    for index in range(ROWS):
        age = int(rng.integers(20, 85))
        smoker = bool(rng.random() < 0.3)
        dose = float(np.round(rng.normal(5, 2), 3))
        risk = 0.04 * (age - 50) + 1.2 * smoker - 0.3 * dose + rng.normal(0, 0.7)
        rows.append(
            [
                f"P-{index:05d}",
                "NA" if rng.random() < 0.05 else str(rng.choice(["north", "south", "east"])),
                "NA" if rng.random() < 0.05 else str(age),
                "relapse" if risk > -1.0 else "recovered",
                "yes" if smoker else "no",
                str(int(rng.integers(2015, 2024))),
                repr(dose),
            ]
        )
    return header, rows


def write_source(directory, kind: str) -> str:
    header, rows = team_table()
    path = directory / f"clinic_visits.{kind}"
    if kind == "csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
        to_float = [None if v == "NA" else float(v) for v in columns["age"]]
        table = pa.table(
            {
                "patient_id": columns["patient_id"],
                "clinic": [None if v == "NA" else v for v in columns["clinic"]],
                "age": pa.array(to_float, pa.float64()),
                "outcome": columns["outcome"],
                "smoker": [v == "yes" for v in columns["smoker"]],
                "year": pa.array([int(v) for v in columns["year"]], pa.int64()),
                "dose": pa.array([float(v) for v in columns["dose"]], pa.float64()),
            }
        )
        pq.write_table(table, path)
    return str(path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_teams_own_table_rebuilds_byte_for_byte(kind, tmp_path):
    project = Project(bake(tmp_path / "bake", project_slug="own-data", package_name="own_data"))
    project.make("setup")
    source = write_source(tmp_path, kind)

    brought = project.make("data", env={"SRC": source, "TARGET": "outcome"})
    assert "conf/data/clinic_visits.yaml" in brought.stdout
    schema = yaml.safe_load((project.path / "conf/data/clinic_visits.yaml").read_text())
    assert schema["drop"] == ["patient_id"] and schema["label"] == "string"
    assert schema["features"]["categorical"] == ["clinic"]
    assert set(schema["features"]["numeric"]) == {"age", "year", "dose"}
    assert schema["features"]["boolean"] == ["smoker"]
    assert (project.path / f"data/raw/clinic_visits.{kind}.dvc").is_file()

    project.make("params")
    project.make("repro")
    # verify reran every stage in isolation: the prepared tables, the model, the metrics and
    # the plot tables came out byte for byte the same.
    report = json.loads((project.path / "reports/verify.json").read_text())
    assert report["result"] == "match" and "prepare" in report["rerun"]
    metrics = json.loads((project.path / "metrics/metrics.json").read_text())
    assert set(metrics["per_class"]) == {"recovered", "relapse"}

    rows = tmp_path / "new-rows.csv"
    header, table = team_table()
    keep = [i for i, name in enumerate(header) if name != "outcome"]
    rows.write_text(
        "\n".join(",".join(row[i] for i in keep) for row in [header, *table[:8]]) + "\n"
    )
    predicted = project.path / "predictions.csv"
    run(
        [".venv/bin/python", "-m", "reproml.tools", "predict", str(rows), str(predicted)],
        cwd=project.path,
    )
    lines = list(csv.DictReader(predicted.read_text().splitlines()))
    assert [line["patient_id"] for line in lines] == [row[0] for row in table[:8]]
    assert {line["prediction"] for line in lines} <= {"recovered", "relapse"}

    project.git("add", "-A")
    project.git("commit", "-qm", "Train the model")
    if kind == "parquet":  # what differs is how the table is read, which verify reran above
        group_and_time_splits(project)
        return
    # The rebuild in a clone of its own, in the environment of the commit's lock, with the
    # data fetched from the remote (the fresh-clone flow of the README is test_end_to_end's).
    project.dvc("push")
    rebuilt = project.make("rebuild")
    assert ": MATCH" in rebuilt.stdout
    custom_estimator_from_yaml(project)


def prepared_years(project: Project) -> tuple[set, set]:
    import pyarrow.parquet as pq

    train = pq.read_table(project.path / "data/prepared/train.parquet")["year"].to_pylist()
    test = pq.read_table(project.path / "data/prepared/test.parquet")["year"].to_pylist()
    return set(train), set(test)


def group_and_time_splits(project: Project) -> None:
    """conf/split/ options through `dvc exp run`: no group on both sides; every test row later
    than every train row; a group column with missing values refused by name."""
    project.dvc("exp", "run", "-S", "split=group", "-S", "split.column=year")
    train, test = prepared_years(project)
    assert train and test and not train & test
    project.dvc("exp", "run", "-S", "split=time", "-S", "split.column=year")
    train, test = prepared_years(project)
    assert min(test) > max(train)
    refused = project.dvc(
        "exp", "run", "-S", "split=group", "-S", "split.column=clinic", check=False
    )
    assert refused.returncode != 0
    assert "split column 'clinic' is missing in" in refused.stdout + refused.stderr


def test_a_table_at_a_url_is_imported_with_its_source_pinned(tmp_path):
    """`make data` with a URL goes through `dvc import-url` (served on loopback here); a wrong
    TARGET leaves nothing behind."""
    import http.server
    import threading
    from functools import partial

    served = tmp_path / "served"
    served.mkdir()
    write_source(served, "csv")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        project = Project(bake(tmp_path / "bake", project_slug="by-url", package_name="by_url"))
        project.make("setup")
        url = f"http://127.0.0.1:{server.server_address[1]}/clinic_visits.csv"
        before = run(["git", "status", "--porcelain"], cwd=project.path).stdout
        wrong = project.make("data", env={"SRC": url, "TARGET": "nope"}, check=False)
        assert wrong.returncode != 0
        assert "there is no column 'nope'" in wrong.stderr and "Traceback" not in wrong.stderr
        assert run(["git", "status", "--porcelain"], cwd=project.path).stdout == before
        assert not (project.path / "data/raw/clinic_visits.csv").exists()

        project.make("data", env={"SRC": url, "TARGET": "outcome"})
    finally:
        server.shutdown()
        thread.join()
    recorded = yaml.safe_load((project.path / "data/raw/clinic_visits.csv.dvc").read_text())
    assert recorded["deps"][0]["path"] == url
    assert recorded["outs"][0]["md5"]
    project.make("params")
    project.make("repro")
    assert json.loads((project.path / "reports/verify.json").read_text())["result"] == "match"


def custom_estimator_from_yaml(project: Project) -> None:
    """A class of the project package, trained from one YAML file; a misspelt
    hyperparameter in `dvc exp run -S` names the key."""
    estimators = project.path / "own_data" / "estimators.py"
    estimators.write_text(estimators.read_text() + CUSTOM_ESTIMATOR)
    (project.path / "conf/model/centroid.yaml").write_text(
        "_target_: own_data.estimators.CentroidClassifier\nshrink: 0.2\n"
    )
    typo = project.dvc("exp", "run", "-S", "model=centroid", "-S", "+model.shrinkk=1", check=False)
    assert typo.returncode != 0
    assert "model.shrinkk" in typo.stdout + typo.stderr
    assert "did you mean shrink" in typo.stdout + typo.stderr
    project.dvc("exp", "run", "-S", "model=centroid")
    assert "own_data.estimators.CentroidClassifier" in experiment_models(project)


def test_prepared_parquet_is_byte_identical_on_every_shipped_python(tmp_path):
    """The prepared tables' bytes depend on the values and the pinned writer, not on the
    Python minor: prepare the mixed demo table under each shipped Python found here."""
    digests = {}
    for version in CHOICES["python_version"]:
        python = find_interpreter(version, UV)
        if python is None:
            continue
        slug = "parquet-py" + version.replace(".", "")
        path = bake(
            tmp_path / version,
            dataset="churn",
            python_version=version,
            project_slug=slug,
            package_name=slug.replace("-", "_"),
        )
        project = Project(path, python)
        project.make("setup")
        run([".venv/bin/python", "-m", project_package(path), "stage", "prepare"], cwd=path)
        digests[version] = tuple(
            hashlib.sha256((path / "data/prepared" / name).read_bytes()).hexdigest()
            for name in ("train.parquet", "test.parquet")
        )
    if len(digests) < 2:
        pytest.skip("fewer than two shipped Pythons on this machine")
    assert len(set(digests.values())) == 1, digests


# ---- bad input fails closed: named errors, nothing half-written, nothing lost ------------

FORMULA_LABELS = ("=1+2", "@low")
FORMULA_IDS = [
    '=HYPERLINK("http://evil.example","x")',
    "+SUM(1,2)",
    "-12",
    "-1.5",
    "@cmd",
    "\tlead",
    "7",
    "-2+3+cmd|' /C calc'!A0",
]


def formula_table(path) -> None:
    """Labels that a spreadsheet would run as formulas; x1 decides them."""
    rng = np.random.default_rng(5)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["visit_id", "x1", "x2", "label"])
        for index in range(200):
            x1, x2 = (round(float(v), 4) for v in rng.normal(0, 1, 2))
            writer.writerow([f"v{index:04d}", x1, x2, FORMULA_LABELS[x1 + 0.1 * x2 <= 0]])


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """One trained, committed project for the fail-closed tests below (they restore it)."""
    root = tmp_path_factory.mktemp("guarded")
    project = Project(bake(root / "bake", project_slug="guarded", package_name="guarded"))
    project.make("setup")
    formula_table(root / "formulas.csv")
    project.make("data", env={"SRC": str(root / "formulas.csv"), "TARGET": "label"})
    project.make("params")
    project.make("repro")
    project.git("add", "-A")
    project.git("commit", "-qm", "Formulas")
    return project


def back_to_the_commit(project: Project) -> None:
    run(["git", "checkout", "--", "."], cwd=project.path)
    run(["git", "clean", "-fdq", "--", "conf", "data"], cwd=project.path)
    project.dvc("checkout", "--force")
    assert project.status_is_clean()


def state(project: Project) -> tuple[str, dict]:
    """What a refused command must leave alone: git's view, and every file's bytes under
    conf/ and data/ (hidden partial or set-aside files included)."""
    porcelain = run(["git", "status", "--porcelain"], cwd=project.path).stdout
    files = {
        str(path.relative_to(project.path)): path.read_bytes()
        for folder in ("conf", "data")
        for path in sorted((project.path / folder).rglob("*"))
        if path.is_file()
    }
    return porcelain, files


def refused(result, *needles: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


guarded_group = pytest.mark.xdist_group("guarded")


@guarded_group
def test_make_data_never_deletes_or_replaces_a_file_it_did_not_create(guarded, tmp_path):
    project = guarded
    mine = project.path / "data/raw/visits.csv"
    mine.write_text("visit,x,label\n1,2,a\n2,3,b\n")
    other = tmp_path / "visits.csv"
    formula_table(other)
    try:
        before = state(project)
        url = f"http://127.0.0.1:{closed_port()}/visits.csv"
        for src in (url, str(other)):
            result = project.make("data", env={"SRC": src, "TARGET": "label"}, check=False)
            refused(result, "data/raw/visits.csv already exists", "FORCE=1")
            assert state(project) == before
        # FORCE=1 lets the import try; it fails, and the file it set aside comes back.
        env = {"SRC": url, "TARGET": "label", "FORCE": "1"}
        refused(project.make("data", env=env, check=False), "dvc import-url")
        assert state(project) == before

        # The file already in place is brought under DVC as it is.
        project.make("data", env={"SRC": "data/raw/visits.csv", "TARGET": "label"})
        assert mine.read_bytes() == before[1]["data/raw/visits.csv"]
        assert (project.path / "data/raw/visits.csv.dvc").is_file()
        # Now tracked: replaced only with FORCE=1.
        env = {"SRC": str(other), "TARGET": "label"}
        refused(project.make("data", env=env, check=False), "visits.csv.dvc", "FORCE=1")
        project.make("data", env={**env, "FORCE": "1"})
        assert mine.read_bytes() == other.read_bytes()
        hidden = {path.name for path in (project.path / "data/raw").glob(".*")}
        assert hidden == {".gitignore"}, hidden  # nothing partial or set aside is left
    finally:
        back_to_the_commit(project)
    assert not mine.exists()


@guarded_group
def test_a_repeated_column_name_is_named_where_the_table_is_read(guarded, tmp_path):
    project = guarded
    twice = tmp_path / "twice.csv"
    twice.write_text("a,b,a,label\n1,2,3,x\n4,5,6,y\n")
    before = state(project)
    result = project.make("data", env={"SRC": str(twice), "TARGET": "label"}, check=False)
    refused(result, "twice.csv: the column name 'a' (columns 1 and 3) appears more than once")
    assert "Fix: rename" in result.stderr
    assert state(project) == before

    # The pipeline's own read (data.py): the tracked table, its header edited.
    raw = project.path / "data/raw/formulas.csv"
    text = raw.read_text()
    try:
        raw.unlink()  # DVC may have linked it to the cache: never write through the link
        raw.write_text(text.replace("visit_id,x1,x2", "x1,x1,x2", 1))
        prepare = [".venv/bin/python", "-m", "guarded", "stage", "prepare"]
        result = run(prepare, cwd=project.path, check=False)
        refused(result, "the column name 'x1' (columns 1 and 2) appears more than once")
        assert (
            state(project)[1]["data/prepared/train.parquet"]
            == before[1]["data/prepared/train.parquet"]
        )
    finally:
        back_to_the_commit(project)


def predict(project: Project, rows, out, check: bool = False):
    command = [".venv/bin/python", "-m", "reproml.tools", "predict", str(rows), str(out)]
    return run(command, cwd=project.path, check=check)


def rows_to_predict(path, ids: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["visit_id", "x1", "x2"])
        for index, name in enumerate(ids):
            writer.writerow([name, 3.0 if index % 2 == 0 else -3.0, 0.0])


@guarded_group
def test_predict_refuses_to_write_over_its_input_or_into_a_directory(guarded, tmp_path):
    rows = tmp_path / "rows.csv"
    rows_to_predict(rows, ["a", "b"])
    original = rows.read_bytes()
    (tmp_path / "link.csv").symlink_to(rows)
    (tmp_path / "outputs").mkdir()
    for out, needle in [
        (rows, "is the input file"),
        (tmp_path / "link.csv", "is the input file"),
        (tmp_path / "outputs", "is a directory"),
    ]:
        refused(predict(guarded, rows, out), f"{out}: {needle}", "Fix:")
    assert rows.read_bytes() == original
    assert not list(tmp_path.rglob("*.partial")) and not list((tmp_path / "outputs").iterdir())
    predict(guarded, rows, tmp_path / "outputs" / "predictions.csv", check=True)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["predictions.csv"]


@guarded_group
def test_predictions_are_safe_to_open_in_a_spreadsheet(guarded, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tmp_path / "rows.csv"
    rows_to_predict(rows, FORMULA_IDS)
    predict(guarded, rows, tmp_path / "out.csv", check=True)
    lines = list(csv.reader((tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()))
    # One probability column per class, named by the class (spreadsheet-safe: it begins
    # with "probability_").
    assert lines[0] == ["visit_id", "prediction", "probability_=1+2", "probability_@low"]
    assert [line[0] for line in lines[1:]] == [
        '\'=HYPERLINK("http://evil.example","x")',
        "'+SUM(1,2)",
        "-12",
        "-1.5",
        "'@cmd",
        "'\tlead",
        "7",
        "'-2+3+cmd|' /C calc'!A0",
    ]
    assert [line[1] for line in lines[1:]] == ["'=1+2", "'@low"] * 4

    table = pa.table({"visit_id": ["\rcr", "-7"], "x1": [3.0, -3.0], "x2": [0.0, 0.0]})
    pq.write_table(table, tmp_path / "rows.parquet")
    predict(guarded, tmp_path / "rows.parquet", tmp_path / "out2.csv", check=True)
    with (tmp_path / "out2.csv").open(encoding="utf-8", newline="") as handle:
        rows = [line[:2] for line in csv.reader(handle)][1:]
    assert rows == [["'\rcr", "'=1+2"], ["-7", "'@low"]]


@guarded_group
def test_a_nested_target_is_refused_before_anything_runs(guarded):
    project = guarded
    notes = project.path / "notes.txt"
    notes.write_text("a file the payload would truncate\n")
    (project.path / "conf/model/payload.yaml").write_text(
        "_target_: sklearn.linear_model.LogisticRegression\n"
        "C: 1.0\n"
        "class_weight:\n"
        "  _target_: builtins.open\n"
        "  _args_: [notes.txt, w]\n"
    )
    config = project.path / "conf/config.yaml"
    params = (project.path / "params.yaml").read_bytes()
    try:
        config.write_text(config.read_text().replace("model: logreg", "model: payload"))
        result = project.make("params", check=False)
        refused(result, "model.class_weight._target_: 'builtins.open'", "_allowed_targets_")
        assert (project.path / "params.yaml").read_bytes() == params
        # Through training too: an experiment composes its own params.yaml.
        result = project.dvc("exp", "run", "-S", "model=payload", check=False)
        assert result.returncode != 0
        assert "model.class_weight._target_" in result.stdout + result.stderr
        assert notes.read_text() == "a file the payload would truncate\n"
    finally:
        notes.unlink()
        back_to_the_commit(project)


@guarded_group
def test_a_meta_estimator_with_a_nested_estimator_trains(guarded):
    """BaggingClassifier over LogisticRegression, whose class_weight is a declared class."""
    project = guarded
    (project.path / "conf/model/bagging.yaml").write_text(
        "_target_: sklearn.ensemble.BaggingClassifier\n"
        "_allowed_targets_: [collections.OrderedDict]\n"
        "n_estimators: 5\n"
        "estimator:\n"
        "  _target_: sklearn.linear_model.LogisticRegression\n"
        "  C: 0.5\n"
        "  class_weight: {_target_: collections.OrderedDict}\n"
    )
    config = project.path / "conf/config.yaml"
    try:
        config.write_text(config.read_text().replace("model: logreg", "model: bagging"))
        project.make("params")
        model = yaml.safe_load((project.path / "params.yaml").read_text())["model"]
        assert model["estimator"]["C"] == 0.5
        project.make("repro")
        verified = json.loads((project.path / "reports/verify.json").read_text())
        assert verified["result"] == "match"
        record = json.loads((project.path / "models/model.json").read_text())
        assert "BaggingClassifier" in json.dumps(record)
    finally:
        back_to_the_commit(project)


@guarded_group
def test_a_revision_or_version_that_looks_like_an_option_is_refused(guarded):
    project = guarded

    def refs() -> str:
        listed = ["git", "for-each-ref", "--format=%(refname) %(objectname)"]
        return (
            run(listed, cwd=project.path).stdout
            + run(["git", "worktree", "list"], cwd=project.path).stdout
        )

    before = refs(), state(project)
    result = project.make("rebuild", "REV=--vary", check=False)
    refused(result, "REV='--vary' is not a revision", "REBUILD_ARGS")
    assert "rebuild of" not in result.stdout
    result = project.make("release", "VERSION=--help", check=False)
    refused(result, "VERSION='--help' is not a version")
    assert "usage:" not in result.stdout
    result = project.make("promote", "VERSION=v1.0.0", "STAGE=--force", check=False)
    refused(result, "STAGE='--force' is not a stage")
    direct = [".venv/bin/python", "-m", "reproml.tools", "rebuild", "--", "-x"]
    assert run(direct, cwd=project.path, check=False).returncode == 2
    assert (refs(), state(project)) == before


def problem_table(path) -> None:
    """A table with every problem `make data` names: a target missing in 8 of 406 rows, an
    empty column, a column of one value, separated by semicolons, yes/no labels."""
    rng = np.random.default_rng(3)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(["x1", "x2", "notes", "origin", "bought"])
        for index in range(406):
            x1, x2 = (round(float(v), 4) for v in rng.normal(0, 1, 2))
            label = "" if index % 50 == 7 else ("yes" if x1 > 0 else "no")
            writer.writerow([x1, x2, "", "usa", label])


@guarded_group
def test_make_data_names_each_problem_of_a_table_and_the_fix(guarded, tmp_path):
    """Before anything runs: a missing target is refused with the option that drops those
    rows; with it, how many; the semicolons sniffed; the empty and the one-value column put
    under drop, each named; yes/no labels kept as text. Then the pipeline reads it so."""
    project = guarded
    source = tmp_path / "problems.csv"
    problem_table(source)
    before = state(project)
    env = {"SRC": str(source), "TARGET": "bought"}
    result = project.make("data", env=env, check=False)
    refused(result, "the target 'bought' is missing in 8 of 406 rows", "MISSING_TARGET=drop")
    assert state(project) == before
    try:
        said = project.make("data", env={**env, "MISSING_TARGET": "drop"}).stdout
        for note in (
            "the target 'bought' is missing in 8 of 406 rows: prepare leaves them out",
            "separated by a semicolon, not commas: `delimiter: ';'`",
            "column 'notes' is empty in every row, so it is under drop",
            "column 'origin' holds one value ('usa') in every row, so it is under drop",
            "the target 'bought' holds 'no', 'yes': read as true/false, these labels would change",
        ):
            assert note in said, said
        assert re.search(r"x1 +numeric +the number", said), said
        schema = yaml.safe_load((project.path / "conf/data/problems.yaml").read_text())
        assert schema["delimiter"] == ";" and schema["missing_target"] == "drop"
        assert schema["label"] == "string" and schema["drop"] == ["notes", "origin"]
        project.make("params")
        stage = [".venv/bin/python", "-m", "guarded", "stage", "params", "prepare", "train"]
        ran = run([*stage, "evaluate"], cwd=project.path)
        assert "left out 8 of 406 rows whose target 'bought' is missing" in ran.stderr
        scores = json.loads((project.path / "metrics/metrics.json").read_text())
        assert set(scores["per_class"]) == {"no", "yes"} and scores["n_test"] == 100
    finally:
        back_to_the_commit(project)


def weather_table(path) -> None:
    """Two years of days whose weather follows the season: the date is the signal."""
    import datetime

    rng = np.random.default_rng(17)
    start = datetime.date(2012, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["date", "wind", "weather"])
        for index in range(2 * 365):
            day = start + datetime.timedelta(days=index)
            season = np.sin(2 * np.pi * (day.timetuple().tm_yday - 100) / 365)
            warmth = season + rng.normal(0, 0.3)
            weather = "sun" if warmth > 0.4 else "snow" if warmth < -0.4 else "rain"
            writer.writerow([day.isoformat(), round(float(rng.normal(3, 1)), 1), weather])


@guarded_group
def test_dates_reach_the_model_and_predict_on_raw_rows_agrees_with_evaluate(guarded, tmp_path):
    """A date column's parts are features by default (`make data` says which): accuracy
    rises above the same model without them, and `make predict` on the raw test rows gives
    exactly evaluate's predictions (the parts are computed inside the pickled pipeline)."""
    import pyarrow.parquet as pq

    project = guarded
    source = tmp_path / "weather.csv"
    weather_table(source)
    try:
        said = project.make("data", env={"SRC": str(source), "TARGET": "weather"}).stdout
        assert re.search(r"date +datetime +its year, month, day_of_week, day_of_year", said), said
        config = project.path / "conf/config.yaml"  # trees: a season is not linear in a date
        config.write_text(config.read_text().replace("model: logreg", "model: hist_gb"))
        project.make("params")
        project.make("repro")
        with_dates = json.loads((project.path / "metrics/metrics.json").read_text())["accuracy"]

        test = pq.read_table(project.path / "data/prepared/test.parquet").to_pandas()
        rows = tmp_path / "rows.csv"
        test.drop(columns=["weather"]).assign(date=test["date"].dt.strftime("%Y-%m-%d")).to_csv(
            rows, index=False
        )
        project.make("predict", env={"IN": str(rows), "OUT": str(tmp_path / "out.csv")})
        predicted = [row["prediction"] for row in csv.DictReader((tmp_path / "out.csv").open())]
        confusion = project.path / "plots/tables/confusion.csv"
        assert predicted == [row["predicted"] for row in csv.DictReader(confusion.open())]

        schema_file = project.path / "conf/data/weather.yaml"
        schema = yaml.safe_load(schema_file.read_text())
        schema["dates"] = {"date": []}  # [] keeps the date out of the model
        schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
        project.make("params")  # the same stages; verify showed above that they reproduce
        stages = [".venv/bin/python", "-m", "guarded", "stage", "params", "prepare", "train"]
        run([*stages, "evaluate"], cwd=project.path)
        without = json.loads((project.path / "metrics/metrics.json").read_text())["accuracy"]
        assert with_dates > without + 0.15, (with_dates, without)
    finally:
        back_to_the_commit(project)
