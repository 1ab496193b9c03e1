"""Shared fixtures. The package name is read from pyproject.toml, so the tests need no
template variables and run unchanged in every baked project."""

import importlib
import importlib.util
import shutil
import tomllib
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["reproml"]["package"]


def project_module(name: str):
    """Import ``<package>.<name>`` from this project."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def machinery(name: str):
    """Import ``reproml.<name>``: the machinery, installed in this project's .venv."""
    return importlib.import_module(f"reproml.{name}")


def model_files_for(task: str) -> list[Path]:
    """The model files with a class for ``task`` from a library this project's lock has (the
    bake locks only the chosen family's library)."""
    import yaml

    found = []
    for path in sorted((PROJECT_ROOT / "conf" / "model").glob("*.yaml")):
        model = yaml.safe_load(path.read_text())
        target = model.get("_by_task_", {}).get(task) or model["_target_"]
        if "${" not in target and importlib.util.find_spec(target.rsplit(".", 1)[0]):
            found.append(path)
    return found


def require_pulled_data() -> None:
    """Skip, naming the file and the fix, when this checkout lacks the DVC-tracked raw data
    (a CI job without the remote): the tests that read it cannot run there."""
    raw = PROJECT_ROOT / "data" / "raw"
    missing = [
        str(path.with_suffix("").relative_to(PROJECT_ROOT))
        for path in sorted(raw.glob("*.dvc"))
        if not path.with_suffix("").exists()
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not pulled: `make pull` fetches it from the DVC remote")


# What a copy of the pipeline needs: its declaration, inputs, code and locks (verify reruns
# the stages from the copy, as it does from the project).
PIPELINE_FOLDERS = ("conf", "data/raw", PACKAGE)
PIPELINE_FILES = ("params.yaml", "dvc.yaml", "runtime.lock", "requirements.lock", ".python-version")


def copy_inputs(target: Path) -> Path:
    """A scratch copy of the pipeline in ``target``: dvc.yaml, its inputs (the tracked data
    included), the code and the locks, without the outputs."""
    require_pulled_data()
    for name in PIPELINE_FOLDERS:
        shutil.copytree(
            PROJECT_ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in PIPELINE_FILES:
        shutil.copyfile(PROJECT_ROOT / name, target / name)
    return target


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A scratch copy of the pipeline's inputs, as the working directory."""
    monkeypatch.chdir(copy_inputs(tmp_path))
    return tmp_path


@pytest.fixture
def config(workspace):
    return project_module("config").load_params(workspace / "params.yaml")


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory):
    """Like ``workspace``, shared by one test module (for tests that read a whole run)."""
    path = copy_inputs(tmp_path_factory.mktemp("workspace"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield path
