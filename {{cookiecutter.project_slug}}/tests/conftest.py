"""Shared fixtures. The package name is read from pyproject.toml, so the tests need no
template variables and run unchanged in every baked project."""

import importlib
import shutil
import tomllib
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["reproml"]["package"]


def project_module(name: str):
    """Import ``<package>.<name>`` from this project."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def copy_inputs(target: Path) -> Path:
    """A scratch copy of the pipeline's inputs in ``target``."""
    for name in ("conf", "data/raw"):
        shutil.copytree(PROJECT_ROOT / name, target / name)
    shutil.copyfile(PROJECT_ROOT / "params.yaml", target / "params.yaml")
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
