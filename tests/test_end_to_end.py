"""Tier 3: bake, set up, run the project's own tests and lint, then prove that `dvc repro`
rebuilds the same dvc.lock: again in place, and in a fresh clone fed only by the remote."""

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import UV, bake, matrix, row_id, run
from interpreters import find_interpreter

pytestmark = pytest.mark.slow

ROWS = matrix(("dataset", "model"), ("python_version",))


class Project:
    """A baked project driven the way its README tells a user to drive it."""

    def __init__(self, path: Path, python: str | None = None):
        self.path = path
        venv_bin = path / ".venv" / "bin"
        self.env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
        if python:
            self.env["UV_PYTHON"] = python

    def make(self, *targets: str, check: bool = True):
        return run(["make", *targets, f"UV={UV}"], cwd=self.path, check=check, env=self.env)

    def dvc(self, *args: str, check: bool = True):
        return run(
            [str(self.path / ".venv/bin/dvc"), *args], cwd=self.path, check=check, env=self.env
        )

    def git(self, *args: str):
        return run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=self.path
        )

    def lock(self) -> bytes:
        return (self.path / "dvc.lock").read_bytes()

    def status_is_clean(self) -> bool:
        return self.dvc("status", "-q", check=False).returncode == 0


@pytest.mark.parametrize("row", ROWS, ids=[row_id(row) for row in ROWS])
def test_repro_rebuilds_the_same_lock_in_place_and_in_a_fresh_clone(row, tmp_path):
    python = find_interpreter(row["python_version"], UV)
    if python is None:
        pytest.skip(f"no Python {row['python_version']} on this machine, and uv may not download")
    slug = f"e2e-{row_id(row)}".replace("_", "-").replace(".", "")
    path = bake(tmp_path, **row, project_slug=slug, package_name=slug.replace("-", "_"))
    project = Project(path, python)

    project.make("setup")
    project.make("test")
    project.make("lint")

    project.make("repro")
    first = project.lock()
    assert project.status_is_clean()
    lock = yaml.safe_load(first)
    assert list(lock["stages"]) == ["params", "prepare", "train", "evaluate"]
    assert lock["stages"]["train"]["params"]["params.yaml"]["model"]["family"] == row["model"]

    project.dvc("repro", "--force")
    assert project.lock() == first

    project.git("add", "-A")
    project.git("commit", "-qm", "Train the first model")
    project.dvc("push")

    clone = Project(tmp_path / "clone", python)
    run(["git", "clone", "-q", str(project.path), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    clone.dvc("pull")
    assert clone.status_is_clean()
    clone.dvc("repro", "--force")
    assert clone.lock() == first
    model = yaml.safe_load(first)["stages"]["train"]["outs"][0]["path"]
    assert (clone.path / model).read_bytes() == (project.path / model).read_bytes()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One set-up project (default answers) for the workflow tests below."""
    path = bake(tmp_path_factory.mktemp("workflow"))
    project = Project(path)
    project.make("setup")
    project.make("repro")
    project.git("add", "-A")
    project.git("commit", "-qm", "First run")
    return project


def model_override(project: Project):
    """A numeric key of the configured model family and a new value for it."""
    params = yaml.safe_load((project.path / "params.yaml").read_text())
    family = params["model"]["family"]
    key = {"logreg": "C", "random_forest": "n_estimators", "hist_gb": "max_iter"}[family]
    return family, key, params["model"][key], params["model"][key] * 2


def test_conf_edit_stops_repro_until_params_are_recomposed(project):
    family, key, old, new = model_override(project)
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    original = conf.read_text()
    try:
        conf.write_text(original.replace(f"{key}: {old}", f"{key}: {new}"))
        before = project.lock()
        failed = project.dvc("repro", check=False)
        assert failed.returncode != 0
        assert f"model.{key}" in failed.stderr + failed.stdout
        assert "make params" in failed.stderr + failed.stdout
        assert (
            yaml.safe_load(project.lock())["stages"]["train"]
            == yaml.safe_load(before)["stages"]["train"]
        ), "train must not run on a stale params.yaml"

        project.make("params")
        project.make("repro")
        recorded = yaml.safe_load(project.lock())["stages"]["train"]["params"]["params.yaml"]
        assert recorded["model"][key] == new
        assert project.status_is_clean()
    finally:
        conf.write_text(original)
        project.make("params")
        project.make("repro")


def test_experiments_compose_overrides_and_the_schema_names_bad_keys(project):
    _, key, _, new = model_override(project)
    project.dvc("exp", "run", "-S", f"model.{key}={new}")
    recorded = yaml.safe_load(project.lock())["stages"]["train"]["params"]["params.yaml"]
    assert recorded["model"][key] == new

    wrong_type = project.dvc("exp", "run", "-S", f"model.{key}=abc", check=False)
    assert wrong_type.returncode != 0
    assert f"model.{key}" in wrong_type.stderr + wrong_type.stdout

    typo = project.dvc("exp", "run", "-S", f"model.{key}x=1", check=False)
    assert typo.returncode != 0
    assert f"{key}x" in typo.stderr + typo.stdout
    run(["git", "checkout", "--", "."], cwd=project.path)


def test_queued_sweep_over_model_families(project):
    project.dvc("exp", "run", "--queue", "-S", "model=logreg,random_forest")
    project.dvc("queue", "start")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = project.dvc("queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    families = {
        revision["data"]["params"]["params.yaml"]["data"]["model"]["family"]
        for baseline in shown
        for experiment in baseline.get("experiments") or []
        for revision in experiment["revs"]
    }
    assert {"logreg", "random_forest"} <= families


def test_demo_bakes_runs_and_reports(tmp_path):
    demo = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
    result = run([sys.executable, str(demo), str(tmp_path / "demo")], cwd=tmp_path)
    assert "metrics/metrics.json" in result.stdout
    assert "models/model.pkl" in result.stdout
    assert (tmp_path / "demo" / "my-ml-project" / "models" / "model.pkl").is_file()
