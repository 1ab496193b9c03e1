"""Naming a revision that is no release (rebuild.resolve, which `make rebuild` and
`make compare` share): a DVC experiment by its name, and refusal until it is named twice."""

import importlib
import subprocess
from pathlib import Path

import pytest

ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    done = subprocess.run(command, cwd=repo, env={**ENV, "HOME": str(repo)}, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


@pytest.fixture
def rebuild():
    """reproml.tools.rebuild as sys.modules holds it now: the template's tests re-import the
    library (conftest.baked_module), and its lazy imports must meet the same error classes."""
    return importlib.import_module("reproml.tools.rebuild")


@pytest.fixture
def repo(tmp_path) -> Path:
    git(tmp_path, "init", "-q")
    for text in ("first\n", "second\n"):
        (tmp_path / "file.txt").write_text(text)
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", text.strip())
    return tmp_path


def test_an_experiment_is_named_by_its_name_and_runs_only_when_named_again(repo, rebuild):
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "update-ref", f"refs/exps/{first[:2]}/{first[2:]}/tidy-bass", first)
    target = rebuild.resolve(repo, "tidy-bass")
    assert target.commit == first and target.unverified == "the experiment tidy-bass"
    with pytest.raises(rebuild.RebuildError) as refused:
        rebuild.refuse_unverified("tidy-bass", target, None, "make compare A=tidy-bass")
    assert "`make compare A=tidy-bass TRUST=tidy-bass`" in str(refused.value)
    rebuild.refuse_unverified("tidy-bass", target, "tidy-bass", "make compare A=tidy-bass")
    # The checkout's own commit is what `make repro` runs anyway: no second word needed; an
    # experiment ref someone pushed under the name HEAD does not make HEAD theirs.
    git(repo, "update-ref", f"refs/exps/{first[:2]}/{first[2:]}/HEAD", first)
    head = rebuild.resolve(repo, "HEAD")
    assert head.commit == git(repo, "rev-parse", "HEAD") and head.unverified == ""


def test_two_experiments_of_one_name_on_different_commits_are_not_guessed(repo, rebuild):
    first, second = git(repo, "rev-parse", "HEAD~1"), git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", f"refs/exps/{first[:2]}/{first[2:]}/twin", first)
    git(repo, "update-ref", f"refs/exps/{second[:2]}/{second[2:]}/twin", second)
    with pytest.raises(
        rebuild.RebuildError, match="names several refs that point at different commits"
    ):
        rebuild.resolve(repo, "twin")


def test_a_name_that_is_nothing_is_refused_by_name(repo, rebuild):
    with pytest.raises(
        rebuild.RebuildError, match=r"'v7\.0\.0' is not a commit, tag or released version"
    ):
        rebuild.resolve(repo, "v7.0.0")
