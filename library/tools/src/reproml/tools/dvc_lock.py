"""The one reader of ``dvc.lock``, from the working tree or from any commit.

A commit's dvc.lock is whatever its author pushed, so the reader takes any YAML: a stage or
an entry that is not DVC's shape is left out, never a traceback. What DVC records per stage
is kept as values to compare: the command, the parameter values, and each dependency's and
output's path with its md5.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .git import show_yaml

DVC_LOCK = "dvc.lock"


@dataclass(frozen=True)
class LockedStage:
    """One stage as dvc.lock records it: ``deps`` and ``outs`` map a path to its md5."""

    name: str
    cmd: Any = None
    params: dict = field(default_factory=dict)
    deps: dict[str, str | None] = field(default_factory=dict)
    outs: dict[str, str | None] = field(default_factory=dict)


def _files(entries: Any) -> dict[str, str | None]:
    found = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            md5 = entry.get("md5")
            found[entry["path"]] = md5 if isinstance(md5, str) else None
    return found


def parse(document: Any) -> dict[str, LockedStage]:
    """``{stage name: LockedStage}`` of a loaded dvc.lock, in its order; empty when the
    document holds no stages."""
    stages = document.get("stages") if isinstance(document, dict) else None
    return {
        str(name): LockedStage(
            name=str(name),
            cmd=stage.get("cmd"),
            params=stage.get("params") if isinstance(stage.get("params"), dict) else {},
            deps=_files(stage.get("deps")),
            outs=_files(stage.get("outs")),
        )
        for name, stage in (stages.items() if isinstance(stages, dict) else [])
        if isinstance(stage, dict)
    }


def at_commit(repo: Path, commit: str) -> dict[str, LockedStage]:
    """The stages of ``commit``'s dvc.lock (none if it has none); a dvc.lock that is not
    YAML is a ProjectError naming it and the commit."""
    return parse(show_yaml(repo, commit, DVC_LOCK))


def in_tree(root: Path) -> dict[str, LockedStage]:
    """The stages of the working tree's dvc.lock (none if there is none)."""
    path = root / DVC_LOCK
    if not path.is_file():
        return {}
    return parse(yaml.safe_load(path.read_text(encoding="utf-8")))


def outputs(stages: dict[str, LockedStage]) -> dict[str, str | None]:
    """Every output's md5, by path, across ``stages``."""
    return {path: md5 for stage in stages.values() for path, md5 in stage.outs.items()}
