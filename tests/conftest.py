"""Fixtures shared by the three tiers: baking, the option matrix, and helpers that call the
baked project's own code (never a re-implementation of it)."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
HOOKS = TEMPLATE / "hooks"
COOKIECUTTER_JSON = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = {key: value for key, value in COOKIECUTTER_JSON.items() if isinstance(value, list)}
ACTIONLINT = str(Path(sys.executable).parent / "actionlint")
UV = os.environ.setdefault("UV", str(TEMPLATE / ".bootstrap" / "bin" / "uv"))

sys.path.insert(0, str(HOOKS))
sys.path.insert(0, str(TEMPLATE / "scripts"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def default_answers() -> dict:
    """The answers `cookiecutter --no-input` would give, rendered as cookiecutter renders them."""
    answers = {}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for key, raw in COOKIECUTTER_JSON.items():
        if key.startswith("_"):
            continue
        value = raw[0] if isinstance(raw, list) else raw
        answers[key] = env.from_string(value).render(cookiecutter=answers)
    return answers


def matrix(primary: tuple[str, ...], cycled: tuple[str, ...]) -> list[dict]:
    """The full product of ``primary`` options; the others are cycled through the rows, since
    they do not interact with the primary ones (each value still appears at least once)."""
    rows = [{}]
    for key in primary:
        rows = [{**row, key: value} for row in rows for value in CHOICES[key]]
    for shift, key in enumerate(cycled, start=1):
        values = CHOICES[key]
        for index, row in enumerate(rows):
            # Each cycled option advances by one more step per block of rows, so options with
            # the same number of values do not stay paired (ci=github with one dataset only).
            row[key] = values[(index + shift * (index // len(values))) % len(values)]
    assert all(len(rows) >= len(CHOICES[key]) for key in cycled)
    return rows


def model_target(name: str) -> str:
    """The estimator class a shipped model file (conf/model/<name>.yaml) names."""
    import yaml

    conf = TEMPLATE / "{{cookiecutter.project_slug}}" / "conf" / "model" / f"{name}.yaml"
    return yaml.safe_load(conf.read_text())["_target_"]


def chosen_model(project: Path) -> str:
    """The model file a project's conf/config.yaml picks."""
    import yaml

    defaults = yaml.safe_load((project / "conf" / "config.yaml").read_text())["defaults"]
    return next(
        entry["model"] for entry in defaults if isinstance(entry, dict) and "model" in entry
    )


def row_id(row: dict) -> str:
    return "-".join(str(value) for value in row.values())


def bake(output_dir: Path, **answers) -> Path:
    """Bake the template non-interactively, hooks included, and return the project path."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )


def baked_module(project: Path, module: str):
    """Import ``<package>.<module>`` from a baked project (fresh, whatever was imported before)."""
    package = project_package(project)
    for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
        del sys.modules[name]
    sys.path.insert(0, str(project))
    try:
        return importlib.import_module(f"{package}.{module}")
    finally:
        sys.path.remove(str(project))


def project_package(project: Path) -> str:
    import tomllib

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return pyproject["tool"]["reproml"]["package"]


def run(command: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a real process; on failure the assertion shows its whole output."""
    env = {**os.environ, "UV": UV, **kwargs.pop("env", {})}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, **kwargs)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out
