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
from pathlib import Path

from ..runtime.errors import DataError
from ..runtime.io import atomic_write_bytes, check_output_path
from .experiment_runs import reason_in
from .locking import find_uv
from .rebuild import Rebuild, Rebuilder, unsealed_warning
from .registry import artifact, find_release, repo_root
from .release import fetch_released_model, require_provenance
from .sandbox import inside


def predict_with_release(version: str, rows: str | Path, out: str | Path) -> Path:
    """Write the release ``version``'s predictions for ``rows`` to ``out``."""
    rows, out = Path(rows).resolve(), Path(out).resolve()
    check_output_path(rows, out)
    if not rows.is_file():
        raise DataError(f"{rows}: no such file. Fix: give the path of the rows to predict.")
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
        outcome = Rebuild(ref=release.tag, commit=release.commit, varied=False)
        if warning := unsealed_warning():
            print(warning)
        rebuilder = Rebuilder(repo, outcome, find_uv(), keep=False, timeout=None)
        try:
            rebuilder.checkout()
            # In place before any of the release's code runs (Rebuilder says why).
            placed = rebuilder.worktree / model_path
            placed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(model, inside(rebuilder.worktree, placed.parent) / placed.name)
            rebuilder.readable.append(rows)
            rebuilder.environment()
            written = rebuilder.work / "predictions.csv"
            command = [rebuilder.python, "-m", tool_module(rebuilder.worktree), "predict"]
            command += [str(rows), str(written)]
            result = rebuilder.sealed_run(command)
            if result.returncode != 0:
                raise DataError(
                    f"{release.tag}'s predict failed: {reason_in(result.stderr + result.stdout)}"
                )
            written = inside(rebuilder.work, written)
            if written.is_symlink() or not written.is_file():
                raise DataError(f"{release.tag}'s predict wrote no predictions file")
            predictions = written.read_bytes()
        finally:
            rebuilder.cleanup()
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
