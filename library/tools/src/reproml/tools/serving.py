"""``make predict VERSION=v1.0.0``: label rows with a release as it was released.

A pickled model needs the code and library versions it was trained with, and the workspace
may have moved to another lock, another schema or another features.py since. So the release's
model is fetched here and checked against the sha256 its signed statement records, then the
release is checked out into a repository of its own (the rebuild's: no key, token or
credential in its config, environment or HOME), gets its own environment from its own lock,
and its own ``predict`` labels the rows, sealed as a rebuild is (tools/sandbox.py: it sees the
rows file read-only and writes into its scratch folder). Only a release whose signature and
provenance check out is run at all.
"""

import shutil
import tempfile
from pathlib import Path, PurePosixPath

from ..runtime.errors import DataError
from ..runtime.hashing import file_digest
from ..runtime.io import atomic_write_bytes, check_output_path
from . import dvc_lock
from .errors import RebuildError, RemoteError
from .experiment_runs import reason_in
from .locking import find_uv
from .rebuild import (
    Rebuild,
    Rebuilder,
    cache_object,
    unsealed_warning,
)
from .registry import artifact, find_release, repo_root
from .release import fetch_released_model, require_provenance
from .remote import fetch_objects
from .sandbox import inside


def predict_with_release(version: str, rows: str | Path, out: str | Path) -> Path:
    """Write the release ``version``'s predictions for ``rows`` to ``out``."""
    rows, out = _checked_paths(rows, out)
    repo = repo_root()
    release = find_release(repo, version)
    require_provenance(repo, release)
    _, model_path = artifact(repo, release.commit)
    with tempfile.TemporaryDirectory(prefix="predict-") as scratch:
        # Fetched (and hash-checked) before anything is built: a release whose model the
        # remote lost fails in a second, not after its environment.
        model = fetch_released_model(repo, release, model_path, Path(scratch) / "model")
        print(
            f"predict with {release.tag} ({release.commit[:12]}): its model, code and environment"
        )
        predictions = _sealed_predict(repo, release.tag, release.commit, model, model_path, rows)
    return _write(out, predictions)


def predict_with_revision(ref: str, commit: str, rows: str | Path, out: str | Path) -> Path:
    """Write the predictions of the model at ``commit`` (what ``ref`` resolved to: a commit,
    tag, branch or experiment that is no verified release, and that the caller's user named
    twice, as `make rebuild`'s TRUST= asks) for ``rows`` to ``out``: its model as its
    ``dvc.lock`` records it, its code and environment, sealed."""
    rows, out = _checked_paths(rows, out)
    repo = repo_root()
    _, model_path = artifact(repo, commit)
    with tempfile.TemporaryDirectory(prefix="predict-") as scratch:
        model = fetch_output_at(repo, ref, commit, model_path, Path(scratch) / "model")
        print(f"predict with {ref} ({commit[:12]}): its model, code and environment")
        predictions = _sealed_predict(repo, ref, commit, model, model_path, rows)
    return _write(out, predictions)


def fetch_output_at(repo: Path, ref: str, commit: str, path: str, destination: Path) -> Path:
    """The output ``path`` as ``commit``'s ``dvc.lock`` records it, at ``destination``: from
    the project's DVC cache, or fetched into it from the remote by the project's own DVC
    configuration (never the revision's: a pushed `.dvc/config` could point it, with your
    credentials, at any server), and refused unless its md5 is the recorded one."""
    expected = dvc_lock.outputs(dvc_lock.at_commit(repo, commit)).get(path)
    if not expected or expected.endswith(".dir"):
        raise DataError(f"{ref}'s dvc.lock records no file {path}: nothing to read there")
    try:
        source = cache_object(repo / ".dvc" / "cache", expected)
        if not source.is_file():
            fetch_objects(repo, [expected])
    except (RebuildError, RemoteError) as error:
        raise DataError(f"{ref}'s {path}: {error}") from None
    if not source.is_file():
        raise DataError(
            f"{ref}'s {path} (md5 {expected}) is in neither the DVC cache nor the remote. "
            "Fix: `dvc push` it from the clone that made it."
        )
    shutil.copyfile(source, destination, follow_symlinks=False)
    actual = file_digest(destination, "md5")
    if actual != expected:
        raise DataError(f"{ref}'s {path} hashes to md5 {actual}, not its dvc.lock's {expected}")
    return destination


def _checked_paths(rows: str | Path, out: str | Path) -> tuple[Path, Path]:
    rows, out = Path(rows).resolve(), Path(out).resolve()
    check_output_path(rows, out)
    if not rows.is_file():
        raise DataError(f"{rows}: no such file. Fix: give the path of the rows to predict.")
    return rows, out


def _sealed_predict(
    repo: Path, name: str, commit: str, model: Path, model_path: str, rows: Path
) -> bytes:
    """``commit``'s own predict on ``rows`` with ``model`` in place: its checkout, its
    environment, sealed; the bytes of the predictions file it writes."""
    outcome = Rebuild(ref=name, commit=commit, varied=False)
    if warning := unsealed_warning():
        print(warning)
    rebuilder = Rebuilder(repo, outcome, find_uv(), keep=False, timeout=None)
    try:
        rebuilder.checkout()
        # In place before any of the revision's code runs (Rebuilder says why). The path is
        # the revision's to name: checked to stay in its checkout before anything is made.
        relative = PurePosixPath(model_path)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise DataError(f"{name}'s model path {model_path!r} leaves its checkout: refused")
        placed = rebuilder.worktree / relative
        inside(rebuilder.worktree, placed.parent)
        placed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(model, inside(rebuilder.worktree, placed.parent) / placed.name)
        rebuilder.readable.append(rows)
        rebuilder.environment()
        written = rebuilder.work / "predictions.csv"
        command = [rebuilder.python, "-m", tool_module(rebuilder.worktree), "predict"]
        command += [str(rows), str(written)]
        result = rebuilder.sealed_run(command)
        if result.returncode != 0:
            raise DataError(f"{name}'s predict failed: {reason_in(result.stderr + result.stdout)}")
        written = inside(rebuilder.work, written)
        if written.is_symlink() or not written.is_file():
            raise DataError(f"{name}'s predict wrote no predictions file")
        return written.read_bytes()
    finally:
        rebuilder.cleanup()


def _write(out: Path, predictions: bytes) -> Path:
    try:
        return atomic_write_bytes(out, predictions)
    except OSError as error:
        raise DataError(
            f"{out}: cannot be written ({error.strerror or error}). Fix: give a path in a "
            "directory you can write to."
        ) from None


def tool_module(checkout: Path) -> str:
    """How a release's own tool commands run: ``python -m reproml.tools`` from its installed
    wheel, or, in a release made before the machinery was a library, ``python -m reproml``
    from the folder beside its package."""
    return "reproml" if (checkout / "reproml" / "__main__.py").is_file() else "reproml.tools"
