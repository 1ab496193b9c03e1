"""Tier 3: a team's own table and model, the way the baked README tells a user to bring them.

A mixed-type table (string categories, `NA`, a string label that is not the last column, an
id column, a year) goes through `make data`, `make repro`, a fresh clone and `make rebuild`,
as CSV and as Parquet; then a custom estimator class is trained from a YAML file alone.
"""

import csv
import hashlib
import json

import numpy as np
import pytest
import yaml
from conftest import CHOICES, UV, bake, project_package, run
from interpreters import find_interpreter
from test_end_to_end import Project, commit_push_and_rebuild_in_a_clone, experiment_models

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
    first = project.lock()
    assert json.loads((project.path / "reports/verify.json").read_text())["result"] == "match"
    metrics = json.loads((project.path / "metrics/metrics.json").read_text())
    assert set(metrics["per_class"]) == {"recovered", "relapse"}
    project.dvc("repro", "--force")
    assert project.lock() == first

    rows = tmp_path / "new-rows.csv"
    header, table = team_table()
    keep = [i for i, name in enumerate(header) if name != "outcome"]
    rows.write_text(
        "\n".join(",".join(row[i] for i in keep) for row in [header, *table[:8]]) + "\n"
    )
    predicted = project.path / "predictions.csv"
    run(
        [".venv/bin/python", "-m", "own_data", "predict", str(rows), str(predicted)],
        cwd=project.path,
    )
    lines = list(csv.DictReader(predicted.read_text().splitlines()))
    assert [line["patient_id"] for line in lines] == [row[0] for row in table[:8]]
    assert {line["prediction"] for line in lines} <= {"recovered", "relapse"}

    clone = commit_push_and_rebuild_in_a_clone(project, tmp_path / "clone")
    assert clone.lock() == first

    rebuilt = project.make("rebuild")
    assert ": MATCH" in rebuilt.stdout

    if kind == "csv":
        custom_estimator_from_yaml(project)
    else:
        group_and_time_splits(project)


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
