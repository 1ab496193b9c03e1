"""Tier 3: the families of other libraries (LightGBM, XGBoost, CatBoost and a PyTorch network)
each train and pass verify (every stage rerun in isolation, every output byte for byte) on the
classification demo and then on a regression table brought in with `make data`, and rebuild
byte for byte in a clone and environment of their own."""

import csv
import json
import math
import os
import re

import pytest
import yaml
from conftest import bake, model_target, run
from project_setup import MODEL_LIBRARIES
from test_end_to_end import Project
from test_oracle import assert_every_family_agrees_with_its_library
from test_registry import set_up_signing

pytestmark = pytest.mark.slow

# The network first: its environment (torch) is the longest to install.
FAMILIES = sorted(MODEL_LIBRARIES, key=lambda name: name != "torch_mlp")
# XGBoost's classifier takes only the codes 0..n-1 as labels: the churn table's are text
# ("churned", "stayed"), with categories, dates and missing values besides. CatBoost's and
# LightGBM's on wine's three classes: CatBoost's multiclass predict returns a column.
CLASSIFICATION_DEMO = {"xgboost": "churn", "catboost": "wine", "lightgbm": "wine"}


def write_regression_table(path) -> str:
    """scikit-learn's diabetes table under a team's own column names, the target a number."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    frame.to_csv(path, index=False)
    return str(path)


def trained_target(project: Project) -> str:
    lock = yaml.safe_load(project.lock())
    return lock["stages"]["train"]["params"]["params.yaml"]["model"]["_target_"]


def repro_verify_and_rebuild(project: Project, message: str, rebuild: bool = True) -> None:
    """`make repro` (verify MATCH: every stage rerun in isolation, every output the same),
    commit, and with ``rebuild`` push and `make rebuild` of HEAD in its own clone and
    environment (the same dvc.lock: MATCH). The family's environment is the same for both
    tasks, so one rebuild per family shows it; verify shows each task's bytes."""
    project.make("repro")
    assert json.loads((project.path / "reports/verify.json").read_text())["result"] == "match"
    project.git("add", "-A")
    project.git("commit", "-qm", message)
    if rebuild:
        project.dvc("push")
        rebuilt = project.make("rebuild")
        assert "rebuild of HEAD" in rebuilt.stdout and ": MATCH" in rebuilt.stdout, rebuilt.stdout


def without_the_machinerys_settings_verify_fails(project: Project) -> None:
    """The fault the machinery prevents, injected for real: CatBoost's random model GUID and
    timestamp left in the model, by the runtime installed in the project's .venv. The stages
    rerun (forced: runtime.lock, their dependency, pins the wheel, not the installed copy),
    and verify's rerun MISMATCHes on the model file."""
    (settings,) = (project.path / ".venv" / "lib").glob(
        "python*/site-packages/reproml/runtime/determinism.py"
    )
    original = settings.read_text()

    def replace(text: str) -> None:
        # A new file in its place: uv hard-links .venv's files from its cache, which an edit
        # in place would change for every other environment.
        staged = settings.with_name("determinism.py.new")
        staged.write_text(text)
        os.replace(staged, settings)

    replace(original.replace('("model_guid", "train_finish_time")', "()"))
    try:
        # The drift check names the edited file (its hash is not the wheel's): allowed here,
        # so the fault reaches verify, as a user who overrides the check would let it.
        result = project.dvc("repro", "--force", check=False, env_extra={"REPRO_ALLOW_DRIFT": "1"})
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "failed to reproduce 'verify'" in output
        assert re.search(r"models/model\.pkl\s+strict\s+MISMATCH", output)
    finally:
        replace(original)
        project.git("checkout", "-q", "--", ".")
        project.dvc("checkout", "--force")
        assert project.status_is_clean()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_rebuilds_byte_for_byte_on_both_tasks(family, tmp_path):
    slug = f"family-{family.replace('_', '-')}"
    path = bake(
        tmp_path,
        dataset=CLASSIFICATION_DEMO.get(family, "breast_cancer"),
        model=family,
        project_slug=slug,
        package_name="fam",
    )
    project = Project(path)
    locked = (path / "runtime.lock").read_text()
    library = MODEL_LIBRARIES[family]
    assert library in locked
    assert not {"lightgbm", "xgboost", "catboost", "torch"} - {library} & set(
        line.split("==")[0].removesuffix("-cpu") for line in locked.splitlines()
    )

    # The plain library is the oracle: on every demo table of both tasks, the project's own
    # stages give the predictions and scores the library and scikit-learn's metrics give.
    assert_every_family_agrees_with_its_library(path, [family], tmp_path)

    repro_verify_and_rebuild(project, "Train the classifier", rebuild=False)
    assert trained_target(project) == model_target(family, "classification").replace(
        "{{ cookiecutter.package_name }}", "fam"
    )
    scores = json.loads((path / "metrics/metrics.json").read_text())
    assert 0.8 <= scores["accuracy"] <= 1 and 0.8 <= scores["f1_macro"] <= 1, scores
    assert not list(path.rglob("catboost_info")), "the library wrote files beside the model"
    # The project's model-file tests with this library: every shipped file composes and
    # builds, a wrong type and a typo are named (CatBoost's parser, XGBoost's warning); in the
    # only bake with networks.py, also that each stage's dvc.yaml deps are exactly the modules
    # it loads (networks.py included).
    own_tests = ["tests/test_config.py"]
    if family == "torch_mlp":
        own_tests.append("tests/test_project_layout.py")
    run([".venv/bin/python", "-m", "pytest", "-q", *own_tests], cwd=path)

    source = write_regression_table(tmp_path / "progression.csv")
    brought = project.make("data", env={"SRC": source, "TARGET": "progression"})
    assert "regression" in brought.stdout
    project.make("params")
    repro_verify_and_rebuild(project, "Train the regressor")
    assert trained_target(project) == model_target(family, "regression").replace(
        "{{ cookiecutter.package_name }}", "fam"
    )
    if family == "catboost":
        without_the_machinerys_settings_verify_fails(project)
    predicted = tmp_path / "predicted.csv"
    run([".venv/bin/python", "-m", "reproml.tools", "predict", source, str(predicted)], cwd=path)
    values = [row["prediction"] for row in csv.DictReader(predicted.open())]
    assert len(values) == 442 and all(math.isfinite(float(value)) for value in values)


LIGHTGBM_BY_HAND = """\
_target_: lightgbm.LGBMClassifier
n_estimators: 50
verbose: -1
"""


def test_a_library_added_by_hand_trains_with_its_documented_keys(tmp_path):
    """`make add-library` (uv add, re-lock, install) and a model file of one's own: LightGBM
    with `verbose: -1`, a key its class takes through **kwargs, trains and verifies; a typo
    of a documented key is named with the closest match."""
    project = Project(bake(tmp_path, project_slug="by-hand", package_name="by_hand"))
    assert "lightgbm" not in (project.path / "runtime.lock").read_text()
    project.make("add-library", env={"LIBRARY": "lightgbm==4.7.0"})
    assert "lightgbm==4.7.0" in (project.path / "runtime.lock").read_text()
    project.make("check-lock", "check-env")

    (project.path / "conf/model/lgbm.yaml").write_text(LIGHTGBM_BY_HAND)
    config = project.path / "conf/config.yaml"
    config.write_text(config.read_text().replace("model: logreg", "model: lgbm"))
    project.make("params")
    project.make("repro")
    assert json.loads((project.path / "reports/verify.json").read_text())["result"] == "match"
    assert trained_target(project) == "lightgbm.LGBMClassifier"

    (project.path / "conf/model/lgbm.yaml").write_text(LIGHTGBM_BY_HAND + "num_leafs: 7\n")
    refused = project.make("params", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in said
    assert "model.num_leafs" in said and "num_leaves" in said
    (project.path / "conf/model/lgbm.yaml").write_text(LIGHTGBM_BY_HAND)
    project.make("params")
    compare_across_locks(project, tmp_path)


def compare_across_locks(project: Project, tmp_path) -> None:
    """The LightGBM model is released and put in prod; the workspace then goes back to the
    bake's lock (no LightGBM) and a scikit-learn model. v1.0.0's pickle cannot load in this
    environment, and `make compare` still scores both models on the same rows, v1.0.0 in its
    own: each score is the one its own evaluate recorded on those rows."""
    baked = run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=project.path).stdout.strip()
    set_up_signing(project, tmp_path / "keys")  # commits everything, the trained model too
    project.dvc("push")
    project.make("release", "VERSION=v1.0.0")
    project.make("promote", "VERSION=v1.0.0", "STAGE=prod")

    locks = ["pyproject.toml", "uv.lock", "runtime.lock", "requirements.lock"]
    project.git("checkout", baked, "--", *locks)
    config = project.path / "conf/config.yaml"
    config.write_text(config.read_text().replace("model: lgbm", "model: logreg"))
    project.make("setup", "params", "repro")
    assert "lightgbm" not in (project.path / "runtime.lock").read_text()

    project.make("rollback", "VERSION=v1.0.0")
    (released,) = (project.path / "build/rollback").rglob("model.pkl")
    load = (
        "import hashlib, sys; from reproml.runtime.model_file import load_model; "
        "path = sys.argv[1]; load_model(path, hashlib.sha256(open(path, 'rb').read()).hexdigest())"
    )
    python = str(project.path / ".venv/bin/python")
    loaded = run([python, "-c", load, str(released)], cwd=project.path, check=False)
    assert loaded.returncode != 0 and "No module named 'lightgbm'" in loaded.stderr, loaded

    compared = project.make("compare").stdout
    assert "model@v1.0.0 (A) against workspace (B)" in compared, compared
    assert re.search(r"lightgbm: 4\.7\.0 -> None", compared), compared
    (report,) = (project.path / "build/compare").glob("model-v1.0.0-vs-workspace.json")
    scores = json.loads(report.read_text())["metrics"]["accuracy"]
    released_metrics = run(["git", "show", "model@v1.0.0:metrics/metrics.json"], cwd=project.path)
    assert scores["a"] == pytest.approx(json.loads(released_metrics.stdout)["accuracy"])
    workspace_metrics = json.loads((project.path / "metrics/metrics.json").read_text())
    assert scores["b"] == pytest.approx(workspace_metrics["accuracy"])
