"""Rebuild records, kept as git notes on the commit each one rebuilt.

A note travels with the repository (``git push origin refs/notes/reproml``, fetched by
``make setup``), describes exactly one commit, and never dirties the working tree, so a
record can be added after the fact by anyone, CI included, without a new commit.
"""

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from .errors import RecordsError

NOTES_REF = "refs/notes/reproml"
# Used only when git has no identity configured (fresh CI runners, containers).
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "reproml",
    "GIT_AUTHOR_EMAIL": "reproml@localhost",
    "GIT_COMMITTER_NAME": "reproml",
    "GIT_COMMITTER_EMAIL": "reproml@localhost",
}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_environment(repo: Path) -> dict:
    """This process's environment, plus an identity for git if none is configured."""
    env = dict(os.environ)
    configured = subprocess.run(
        ["git", "config", "user.email"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    if not configured:
        env.update(_FALLBACK_IDENTITY)
    return env


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=check,
        env=git_environment(repo),
    )


def append_record(repo: str | Path, commit: str, record: dict) -> None:
    """Add ``record`` to the notes of ``commit`` (one JSON object per line)."""
    repo = Path(repo)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"))
    _git(repo, "notes", f"--ref={NOTES_REF}", "append", "-m", line, commit)


def records_of(repo: str | Path, commit: str) -> list[dict]:
    shown = _git(Path(repo), "notes", f"--ref={NOTES_REF}", "show", commit, check=False)
    if shown.returncode != 0:
        return []
    return [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]


def all_records(repo: str | Path) -> list[dict]:
    """Every record in the repository, oldest commit first is not guaranteed; sort by caller."""
    listed = _git(Path(repo), "notes", f"--ref={NOTES_REF}", "list", check=False)
    records = []
    for line in listed.stdout.splitlines():
        _, commit = line.split()
        records.extend(records_of(repo, commit))
    return records


def fetch(repo: str | Path, remote: str = "origin") -> str:
    """Merge the remote's records into ours (line union: nothing is ever dropped)."""
    repo = Path(repo)
    if _git(repo, "remote", "get-url", remote, check=False).returncode != 0:
        return f"no git remote {remote!r}: nothing to fetch"
    staging = "refs/notes/reproml-incoming"
    got = _git(repo, "fetch", "--quiet", remote, f"+{NOTES_REF}:{staging}", check=False)
    if got.returncode != 0:
        return f"{remote} has no records yet"
    if _git(repo, "rev-parse", "--verify", "--quiet", NOTES_REF, check=False).returncode != 0:
        _git(repo, "update-ref", NOTES_REF, staging)
    else:
        _git(
            repo,
            "notes",
            f"--ref={NOTES_REF}",
            "merge",
            "--quiet",
            "--strategy=cat_sort_uniq",
            staging,
        )
    _git(repo, "update-ref", "-d", staging)
    return f"merged the records of {remote}"


def push(repo: str | Path, remote: str = "origin") -> str:
    """Publish our records (after merging the remote's, so a concurrent CI run loses none)."""
    repo = Path(repo)
    fetch(repo, remote)
    pushed = _git(repo, "push", "--quiet", remote, NOTES_REF, check=False)
    if pushed.returncode != 0:
        raise RecordsError(f"could not push {NOTES_REF} to {remote}: {pushed.stderr.strip()}")
    return f"pushed the records to {remote}"
