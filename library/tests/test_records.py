"""Records anyone who can push can write: every reader survives a hostile one, skipping and
naming it, never a traceback and never a blocked `make setup`."""

import json
import subprocess
from pathlib import Path

import pytest
from support import git, machinery

notes = machinery("tools.notes")
COMMIT = "a" * 40


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"kind": "rebuild", "timings": {"total": 1' + "0" * 5000 + "}}", "number too long"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
        ("{not json", "not JSON"),
    ],
)
def test_a_note_line_that_cannot_be_read_is_skipped_by_name(line, reason):
    record, problem = notes.check_note(Path("."), line, COMMIT)
    assert (
        record is None and "not JSON that can be read" in problem and reason.split()[0] in problem
    )


@pytest.mark.parametrize(
    "timings",
    [{"total": 10**400}, {"total": float("inf")}, {"total": 3.0, "compute": "slow"}, {}],
)
def test_a_rebuild_record_whose_times_are_not_seconds_is_skipped(timings):
    line = json.dumps(
        {
            "kind": "rebuild",
            "revision": COMMIT,
            "result": "match",
            "varied_environment": False,
            "timings": timings,
        }
    )
    record, problem = notes.check_note(Path("."), line, COMMIT)
    assert record is None and "seconds" in problem


@pytest.fixture
def clone_and_origin(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    for repo in (origin, clone):
        repo.mkdir()
        git(repo, "init", "-q", "--initial-branch=main")
    git(origin, "commit", "-q", "--allow-empty", "-m", "first")
    git(clone, "remote", "add", "origin", str(origin))
    git(clone, "fetch", "-q", "origin", "main")
    git(origin, "notes", f"--ref={notes.NOTES_REF}", "add", "-m", "a record line", "HEAD")
    return clone, origin


def hostile_notes(origin: Path, kind: str) -> None:
    """What someone who can push makes of origin's notes ref."""
    if kind == "a blob":
        blob = git(origin, "hash-object", "-w", "--stdin")
        git(origin, "update-ref", notes.NOTES_REF, blob)
    elif kind == "a gitlink":
        head = git(origin, "rev-parse", "HEAD")
        tree = subprocess.run(
            ["git", "mktree"],
            cwd=origin,
            input=f"160000 commit {head}\t{head}\n",
            capture_output=True,
            text=True,
            env={"GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        commit = git(origin, "commit-tree", tree, "-m", "notes")
        git(origin, "update-ref", notes.NOTES_REF, commit)


@pytest.mark.parametrize("kind", ["a blob", "a gitlink"])
def test_a_notes_ref_that_is_not_a_notes_tree_is_named_and_never_merged(clone_and_origin, kind):
    clone, origin = clone_and_origin
    assert notes.fetch(clone).startswith("merged")
    before = git(clone, "rev-parse", notes.NOTES_REF)
    hostile_notes(origin, kind)
    said = notes.fetch(clone)  # what `make setup` runs: it must not fail
    assert said.startswith("warning: origin's refs/notes/reproml is not a notes tree"), said
    assert git(clone, "rev-parse", notes.NOTES_REF) == before  # ours are as they were
    with pytest.raises(machinery("tools.errors").RecordsError, match="not pushed"):
        notes.push(clone)  # pushing over it would drop origin's claims
