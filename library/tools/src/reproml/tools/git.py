"""git for the tools: an identity when none is configured, the one reader of a revision's
files (text, YAML, JSON, the outputs its .dvc files track), and the owner-only files that
hold CI keys. Stages never import this module."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ..runtime.dvcfiles import tracked_outputs
from ..runtime.errors import ProjectError
from ..runtime.proc import run
from .commands import run_checked

# Used only when git has no identity configured (fresh CI runners, containers).
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "reproml",
    "GIT_AUTHOR_EMAIL": "reproml@localhost",
    "GIT_COMMITTER_NAME": "reproml",
    "GIT_COMMITTER_EMAIL": "reproml@localhost",
}


def git_environment(repo: Path) -> dict:
    """This process's environment, plus an identity for git if none is configured."""
    env = dict(os.environ)
    configured = run(["git", "config", "user.email"], cwd=repo).stdout.strip()
    if not configured:
        env.update(_FALLBACK_IDENTITY)
    return env


def is_utf8(text: str) -> bool:
    """Whether ``text``, read from git with ``errors="surrogateescape"``, was UTF-8: a tag
    name or note line anyone may have pushed as other bytes is passed over, never printed."""
    return text == text.encode("utf-8", "replace").decode("utf-8")


def git(repo: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """``git args`` in ``repo``, with an identity."""
    return run(["git", *args], cwd=repo, env=git_environment(repo), **kw)


def git_checked(repo: Path, *args: str, error: type[Exception]) -> subprocess.CompletedProcess:
    """``git args`` in ``repo``, raising the caller's ``error`` if it fails."""
    return run_checked(["git", *args], error, cwd=repo, env=git_environment(repo))


def git_show(repo: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``, or None if the commit has no such file."""
    shown = run(["git", "show", f"{commit}:{path}"], cwd=repo)
    return shown.stdout if shown.returncode == 0 else None


def owner_only_file(path: Path, text: str) -> Path:
    """``text`` (a key) in a new file at ``path`` that only this user can read, created so
    (``O_EXCL``, mode 0600) that it is never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text.strip() + "\n")
    return path


def secret_file(repo: Path, name: str, text: str) -> Path:
    """``text`` in ``.git/<name>`` (CI keys): never committed, readable by this user only."""
    git_dir = Path(run(["git", "rev-parse", "--absolute-git-dir"], cwd=repo).stdout.strip())
    return owner_only_file(git_dir / name, text)


def run_to_file(
    command: list[str], path: Path, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` (git in a seal: a CI point's bundle) with its standard output, as
    bytes, in a new file at ``path`` (never through a link there, never over a file: the
    caller removed what was there); its error output captured as text. On failure the file
    is removed. Here, not in runtime/proc.py: the stages never need it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            done = subprocess.run(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.PIPE)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    if done.returncode != 0:
        Path(path).unlink(missing_ok=True)
    said = done.stderr.decode(errors="replace")
    return subprocess.CompletedProcess(command, done.returncode, "", said)


def show_yaml(repo: Path, commit: str, path: str) -> Any:
    """The parsed YAML of ``path`` at ``commit`` (dvc.yaml, dvc.lock, params.yaml); ``{}`` if
    the commit has no such file or it is empty. A file that is not YAML (anyone may have
    committed it) is named, with the commit, never a traceback."""
    return parse_yaml(git_show(repo, commit, path) or "", f"{path} at {commit[:12]}")


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML (``{}`` if empty), or a ProjectError naming ``where``."""
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        problem = str(getattr(error, "problem", None) or error).splitlines()[0]
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ProjectError(
            f"{where} is not valid YAML ({problem}{line}). Fix: correct it, or quote a value "
            "that holds ': ' or starts with a special character."
        ) from None


def show_json(repo: Path, commit: str, path: str) -> Any:
    """The parsed JSON of ``path`` at ``commit`` (a model record, a verify report); None if
    the commit has no such file or it is not JSON (anyone could have committed it)."""
    text = git_show(repo, commit, path)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def tracked_at(repo: Path, commit: str) -> list[tuple[str, str, str]]:
    """``(.dvc file, tracked path, md5)`` of every output of every ``.dvc`` file ``commit``
    holds, read from git (no checkout needed)."""
    listed = run(["git", "ls-tree", "-r", "-z", "--name-only", commit], cwd=repo).stdout
    found = []
    for name in (name for name in listed.split("\0") if name.endswith(".dvc")):
        text = git_show(repo, commit, name) or ""
        found += [(name, path, md5) for path, md5, _ in tracked_outputs(text, name)]
    return found
