"""Rebuild records, kept as git notes on the commit each one rebuilt.

A note travels with the repository (``git push origin refs/notes/reproml``, fetched by
``make setup``), describes exactly one commit, and never dirties the working tree, so a
record can be added after the fact by anyone, CI included, without a new commit.
"""

import json
import subprocess
from pathlib import Path

NOTES_REF = "refs/notes/reproml"
_FALLBACK_IDENTITY = ["-c", "user.name=reproml", "-c", "user.email=reproml@localhost"]


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)


def _identity(repo: Path) -> list[str]:
    configured = _git(repo, "config", "user.email", check=False).stdout.strip()
    return [] if configured else _FALLBACK_IDENTITY


def append_record(repo: str | Path, commit: str, record: dict) -> None:
    """Add ``record`` to the notes of ``commit`` (one JSON object per line)."""
    repo = Path(repo)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"))
    _git(repo, *_identity(repo), "notes", f"--ref={NOTES_REF}", "append", "-m", line, commit)


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
