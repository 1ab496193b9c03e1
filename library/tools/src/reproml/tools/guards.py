"""What must never be committed to git: files DVC tracks (their bytes belong in the DVC
cache and remote, git holds only their hashes) and large files (which belong under DVC).

Run by the ``no-data-in-git`` pre-commit hook on the files being committed. The limit is
``max_git_file_kb`` under ``[tool.reproml]`` in pyproject.toml (default 500).
"""

import argparse
import sys
from pathlib import Path, PurePosixPath

from ..runtime.dvcfiles import tracked_outputs
from . import dvc_lock
from .git import git
from .settings import settings

DEFAULT_LIMIT_KB = 500


def _limit_kb(repo: Path) -> int:
    return int(settings(repo).get("max_git_file_kb", DEFAULT_LIMIT_KB))


def dvc_tracked_paths(repo: Path) -> set[PurePosixPath]:
    """Every path DVC tracks here: the outputs of ``*.dvc`` files and of ``dvc.lock``."""
    paths = set()
    listed = git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "*.dvc")
    for relative in listed.stdout.split():
        dvc_file = repo / relative
        text = dvc_file.read_text(encoding="utf-8")
        paths.update(PurePosixPath(path) for path, _, _ in tracked_outputs(text, relative))
    paths.update(PurePosixPath(path) for path in dvc_lock.outputs(dvc_lock.in_tree(repo)))
    return paths


def _ignored(repo: Path, names: list[str]) -> set[str]:
    """Which of ``names`` git's ignore rules cover (DVC lists each cached output there)."""
    if not names:
        return set()
    checked = git(repo, "check-ignore", "--no-index", "--stdin", input="\n".join(names))
    return set(checked.stdout.splitlines())


def files_git_should_not_hold(repo: Path, files: list[str]) -> list[str]:
    """One line per file of ``files`` (paths relative to ``repo``) that git should not hold:
    a cached DVC output (one DVC tracks and has git ignore; its md5 is what git keeps) or a
    file over the size limit."""
    tracked = dvc_tracked_paths(repo)
    ignored = _ignored(repo, files)
    limit = _limit_kb(repo)
    problems = []
    for name in files:
        path = PurePosixPath(Path(name).as_posix())
        owner = next((out for out in tracked if path == out or out in path.parents), None)
        if owner is not None and name in ignored:
            problems.append(
                f"{name} is tracked by DVC ({owner}): git keeps its hash (in a .dvc file or "
                f"dvc.lock), never its bytes. Fix: git rm --cached {name}"
            )
            continue
        file = repo / name
        size_kb = file.stat().st_size / 1024 if file.is_file() else 0
        if size_kb > limit:
            problems.append(
                f"{name} is {size_kb:.0f} KB, over the {limit} KB limit for git "
                f"(max_git_file_kb in pyproject.toml). Fix: git rm --cached {name}, then "
                f"`dvc add {name}` and commit its .dvc file"
            )
    return problems


def run_check_files(args: argparse.Namespace) -> int:
    """The pre-commit hook: no large or DVC-tracked file goes into git."""
    from .registry import repo_root

    problems = files_git_should_not_hold(repo_root(), args.files)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0
