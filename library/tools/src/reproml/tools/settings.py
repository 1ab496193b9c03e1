"""``[tool.reproml]`` in pyproject.toml: the one reader of the project's settings, and the way
the tools reach the team's package (whose name it holds) without naming it in their code:
through the contract its ``__main__`` hands over."""

import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError
from ..runtime.launcher import PROJECT_ROOT
from ..runtime.team import Team

PYPROJECT = "pyproject.toml"
SECTION = "[tool.reproml]"


def parse(text: str, where: str) -> dict[str, Any]:
    """The ``[tool.reproml]`` table of pyproject.toml text (empty if it has none); ``where``
    names the file (or the file at a commit) in the error for text that is not TOML."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"{where} is not valid TOML ({error}). Fix: correct that line "
            f"(`git diff {PYPROJECT}` shows what changed)."
        ) from None
    section = document.get("tool", {}).get("reproml", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: {SECTION} must be a table. Fix: see the template's file.")
    return section


def settings(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The workspace's ``[tool.reproml]`` settings."""
    path = Path(root) / PYPROJECT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found. Fix: run the command in the project.") from None
    return parse(text, str(path))


def team_package(root: Path = PROJECT_ROOT) -> str:
    """The team's package (``package`` in ``[tool.reproml]``)."""
    name = settings(root).get("package")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(
            f"{Path(root) / PYPROJECT}: {SECTION} package = {name!r} is not a package name. "
            'Fix: package = "<your package directory>".'
        )
    return name


def team(root: Path = PROJECT_ROOT) -> Team:
    """The team contract (reproml.runtime.team.Team) the team's ``__main__`` hands over."""
    entry = f"{team_package(root)}.__main__"
    where = f"{entry.replace('.', '/')}.py"
    handed = getattr(import_module(entry), "team", None)
    found = handed() if callable(handed) else None
    if not isinstance(found, Team):
        raise ConfigError(
            f"{where}: defines no team() returning reproml.runtime.team.Team, which the tool "
            "commands need (the config loader, the model builder, predict). Fix: add it as "
            "the template's __main__.py has it (`cruft diff` shows the template's)."
        )
    return found
