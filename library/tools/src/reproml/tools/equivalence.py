"""The EQUIVALENT rule, in one place: when a rebuild's bytes differ from what a revision
committed, its results may still be the same ones up to the last bits of a floating-point
kernel. Only a rebuild on another machine can be EQUIVALENT, never MATCH; verify, which
reruns on the same machine, holds outputs to their bytes and the model's predictions to the
runtime's PORTABLE_TOLERANCE (runtime/verification.py), the same number used here."""

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.model_file import record_path
from ..runtime.pipeline import read as read_pipeline
from ..runtime.verification import PORTABLE_TOLERANCE, largest_difference
from .git import git, git_show, show_json
from .sandbox import MAX_READ_BYTES, inside


def numbers_close(expected: Any, actual: Any) -> bool:
    """Equal JSON (metrics), each number within PORTABLE_TOLERANCE times max(1, |expected|): for
    scores in [0, 1] that is an absolute 1e-9; an RMSE in the target's units is held to the
    same relative precision."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            numbers_close(expected[key], actual[key]) for key in expected
        )
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        return abs(expected - actual) <= PORTABLE_TOLERANCE * max(1.0, abs(expected))
    return expected == actual


def same_within_tolerance(name: str, committed: str, rebuilt: str) -> bool:
    """Two versions of a declared output, as text, hold the same results up to the last bits:
    JSON key by key (``numbers_close``); CSV with the same header, rows and text cells, each
    numeric column within PORTABLE_TOLERANCE times its largest |value| (at least 1), the rule
    ``prediction_tolerance`` states; anything else byte for byte. A committed file that does
    not parse (anyone could have edited it) is not the same."""
    import pandas as pd

    if committed == rebuilt:  # an empty table (the other task's plot) included
        return True
    suffix = Path(name).suffix.lower()
    try:
        if suffix == ".json":
            return numbers_close(json.loads(committed), json.loads(rebuilt))
        if suffix != ".csv":
            return committed == rebuilt
        old, new = (pd.read_csv(io.StringIO(text)) for text in (committed, rebuilt))
    except (ValueError, pd.errors.ParserError):
        return False
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        return False
    for column in old.columns:
        before, after = old[column].to_numpy(), new[column].to_numpy()
        if before.dtype.kind not in "fiu" or after.dtype.kind not in "fiu":
            if not np.array_equal(before.astype(str), after.astype(str)):
                return False
            continue
        delta, tolerance = largest_difference(before.astype(float), after.astype(float))
        if not delta <= tolerance:
            return False
    return True


def _same_text(path: Path, text: str) -> bool:
    """Whether ``path`` is a regular file (not a link, FIFO or device) holding ``text``."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_READ_BYTES:
        return False
    return path.read_text(encoding="utf-8", errors="replace") == text


def _files_in(root: Path, path: str) -> set[str]:
    """``path`` (relative to ``root``), or every file under it if it is a folder."""
    where = root / path
    if where.is_file():
        return {path}
    return {found.relative_to(root).as_posix() for found in where.rglob("*") if found.is_file()}


def _machine(environment: dict) -> dict:
    """What of an environment fingerprint describes the machine rather than the packages."""
    return {key: environment.get(key) for key in ("platform", "cpu", "blas")}


def portable_verdict(
    repo: Path, commit: str, worktree: Path, stages: dict[str, str]
) -> dict | None:
    """When the bytes differ: if the revision was trained on another machine (its model
    record names another BLAS kernel, CPU or platform), nothing upstream of the model
    differs, and every result downstream of it (the declared metrics and plot tables,
    dvc.yaml says which) is the same within same_within_tolerance, the
    outcome is EQUIVALENT; otherwise None. For a classifier's confusion table that means
    0 label flips; for a regressor's predictions, each within PORTABLE_TOLERANCE times
    the largest |prediction|."""
    # DVC (ours) reads the checkout's pipeline files: only as committed, and as files.
    for name in ("dvc.yaml", "params.yaml"):
        path = inside(worktree, worktree / name)
        committed = git_show(repo, commit, name)
        if committed is not None and not _same_text(path, committed):
            return None
    try:
        pipeline = read_pipeline(worktree)
    except Exception:  # anything DVC raises on it: no verdict, and no crash
        return None
    trainer = pipeline.writer_of(pipeline.model) if pipeline.model else None
    if trainer is None:
        return None
    downstream = pipeline.downstream({trainer.name})
    results = stages.items()
    if any(value != "match" for name, value in results if name not in downstream):
        return None
    record = record_path(pipeline.model).as_posix()
    committed_record = show_json(repo, commit, record)
    rebuilt_record = inside(worktree, worktree / record)
    if not isinstance(committed_record, dict) or not rebuilt_record.is_file():
        return None
    before = _machine(committed_record.get("environment", {}))
    rebuilt_environment = json.loads(rebuilt_record.read_text(encoding="utf-8"))
    after = _machine(rebuilt_environment.get("environment", {}))
    if before == after:
        return None
    compared = []
    for out in pipeline.results(downstream):
        inside(worktree, worktree / out.path)
        for name in _files_at_commit(repo, commit, out.path) | _files_in(worktree, out.path):
            old = git_show(repo, commit, name)
            new = inside(worktree, worktree / name)
            if old is None or not new.is_file():
                return None
            if not same_within_tolerance(name, old, new.read_text(encoding="utf-8")):
                return None
            compared.append(name)
    if not compared:
        return None
    return {
        "committed_machine": before,
        "rebuilt_machine": after,
        "compared": sorted(compared),
        "rule": (
            f"every result downstream of the model is the same ({len(compared)} files, "
            "metrics and plot tables: 0 label flips, each number within "
            f"{PORTABLE_TOLERANCE:g} times the largest |value| of its column, at least 1)"
        ),
        "metrics_tolerance": PORTABLE_TOLERANCE,
    }


def _files_at_commit(repo: Path, commit: str, path: str) -> set[str]:
    listed = git(repo, "ls-tree", "-r", "--name-only", commit, "--", path)
    return {line for line in listed.stdout.splitlines() if line}
