"""The environment lock: uv.lock, and the two hash-pinned exports derived from it.

- ``uv.lock``: everything, resolved for every platform; ``make setup`` installs from it.
- ``runtime.lock``: only the packages that determine model bytes (numpy, scikit-learn, ...).
  It is a DVC dependency of the stages, so upgrading DVC or pytest retrains nothing.
- ``requirements.lock``: everything, for people who install with pip (``--require-hashes``).

reproml itself is two wheels in the project's ``wheels/`` folder, which uv pins by hash. A new
wheel of the same version (a template update) keeps its name, and ``uv lock`` would keep the
hash it had: every lock re-reads them (``--upgrade-package``), and nothing else moves.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

from ..runtime.environment import REQUIREMENTS_LOCK, RUNTIME_LOCK
from .commands import run_checked
from .errors import LockError

UV_LOCK = "uv.lock"

EXPORTS = {
    RUNTIME_LOCK: ["--no-default-groups"],
    REQUIREMENTS_LOCK: [],
}
EXPORT_COMMAND = ["export", "--frozen", "--no-emit-project", "--no-annotate"]
# The machinery's wheels, re-read (and re-hashed) at every lock.
MACHINERY = ("reproml-runtime", "reproml")
LOCK_COMMAND = ["lock", *(option for name in MACHINERY for option in ("--upgrade-package", name))]


def find_uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise LockError("uv is not on PATH: install it (`python3 -m pip install uv`) or set UV")
    return uv


def _uv(project: Path, *args: str) -> str:
    return run_checked([find_uv(), *args], LockError, cwd=project).stdout


def export(project: str | Path, name: str) -> str:
    """The text of one derived lock, as uv exports it from uv.lock."""
    return _uv(Path(project), *EXPORT_COMMAND, *EXPORTS[name])


def update(project: str | Path = ".") -> list[Path]:
    """Re-resolve uv.lock from pyproject.toml and rewrite the exports."""
    project = Path(project)
    _uv(project, *LOCK_COMMAND)
    written = []
    for name in EXPORTS:
        (project / name).write_text(export(project, name), encoding="utf-8")
        written.append(project / name)
    return written


def add_and_lock(requirement: str, project: str | Path = ".") -> None:
    """Add a runtime dependency to pyproject.toml (``uv add --frozen``) and re-lock: a model
    library, which then reaches runtime.lock and so every stage's dependencies. If either
    fails, pyproject.toml and uv.lock are put back as they were."""
    if requirement.startswith("-"):
        raise LockError(f"{requirement!r} looks like an option. Fix: name a package.")
    project = Path(project)
    kept = {name: (project / name).read_bytes() for name in ("pyproject.toml", UV_LOCK)}
    try:
        _uv(project, "add", "--frozen", "--", requirement)
        _uv(project, *LOCK_COMMAND)
    except LockError:
        for name, data in kept.items():
            (project / name).write_bytes(data)
        raise


def sync(project: str | Path = ".") -> None:
    """Install exactly what uv.lock holds into .venv."""
    _uv(Path(project), "sync", "--frozen")


def check(project: str | Path = ".") -> None:
    """Raise LockError unless uv.lock satisfies pyproject.toml and the exports match it."""
    project = Path(project)
    _uv(project, "lock", "--locked")
    stale = stale_wheels(project)
    if stale:
        raise LockError(
            f"{UV_LOCK} pins another file than {', '.join(stale)} (a new wheel of the same "
            "version, e.g. from a template update): run `make lock`"
        )
    for name in EXPORTS:
        path = project / name
        if not path.is_file() or path.read_text(encoding="utf-8") != export(project, name):
            raise LockError(f"{name} is out of date with {UV_LOCK}: run `make lock`")


def stale_wheels(project: Path) -> list[str]:
    """The wheels of the checkout that uv.lock pins (by path) with another hash than the
    file's: ``uv lock --locked`` does not re-read a wheel whose version is the same."""
    import hashlib
    import tomllib

    try:
        packages = tomllib.loads((project / UV_LOCK).read_text(encoding="utf-8")).get("package")
    except tomllib.TOMLDecodeError as error:
        raise LockError(f"{UV_LOCK} is not TOML that can be read ({error})") from None
    stale = []
    for package in packages if isinstance(packages, list) else []:
        source = package.get("source") if isinstance(package, dict) else None
        path = source.get("path", "") if isinstance(source, dict) else ""
        if not isinstance(path, str) or not path.endswith(".whl"):
            continue
        pinned = {wheel.get("hash") for wheel in package.get("wheels") or []}
        file = project / path
        found = f"sha256:{hashlib.sha256(file.read_bytes()).hexdigest()}" if file.is_file() else ""
        if found not in pinned:
            stale.append(path)
    return stale


# Sources whose build runs code the lock cannot pin by hash: a folder or file of the checkout.
LOCAL_SOURCES = ("directory", "editable", "path")


def _builds(lock_text: str) -> dict[str, tuple]:
    """Package name -> what building it would build: its sdist's hash, its git commit, or
    (for a local folder) None, which is never the same as another checkout's."""
    import tomllib

    try:
        packages = tomllib.loads(lock_text).get("package") or []
    except tomllib.TOMLDecodeError as error:
        raise LockError(f"{UV_LOCK} is not TOML that can be read ({error})") from None
    found = {}
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            continue
        source = package.get("source") if isinstance(package.get("source"), dict) else {}
        # uv reads the first kind of source a table has and ignores the rest: only a table of
        # exactly one key is what it says.
        if set(source) == {"virtual"} and source["virtual"] == ".":
            continue  # the project itself with `package = false`: nothing to build
        if set(source) == {"path"} and checkout_wheel(source["path"]):
            continue  # a wheel of the checkout (reproml's): installed, hash-checked, never built
        sdist = package.get("sdist") if isinstance(package.get("sdist"), dict) else {}
        local = any(kind in source for kind in LOCAL_SOURCES)
        unknown = len(source) != 1
        found[package["name"]] = (
            None
            if local or unknown
            else (package.get("version"), sdist.get("hash"), source.get("git"))
        )
    return found


def checkout_wheel(path: object) -> bool:
    """Whether a lock's ``path`` source is a wheel inside the checkout's wheels/: relative,
    normalised, no way out (an absolute path or ``..`` would install a file from elsewhere)."""
    from pathlib import PurePosixPath

    if not isinstance(path, str) or not path.endswith(".whl") or "\\" in path:
        return False
    parts = PurePosixPath(path).parts
    return len(parts) == 2 and parts[0] == "wheels" and parts[1] not in (".", "..")


def builds_not_in(revision_lock: str, own_lock: str) -> list[str]:
    """The packages of ``revision_lock`` that uv may build from source and that ``own_lock``
    (the checkout's, which ``make setup`` already built) does not build the same way: a
    rebuild installs the revision's environment outside the sandbox, and a build runs the
    package's code, so only builds this checkout already trusts may run there. A lock that
    cannot be read raises: nothing is built on a guess."""
    own = _builds(own_lock)
    return sorted(
        name
        for name, build in _builds(revision_lock).items()
        if build is None or own.get(name) != build
    )


def run_lock(args: argparse.Namespace) -> int:
    """`make lock`, `make check-lock` and `make add-library`."""
    if args.check:
        check()
        print("uv.lock, runtime.lock and requirements.lock agree with pyproject.toml")
        return 0
    if args.add:
        add_and_lock(args.add)
        print(f"added {args.add} to pyproject.toml's runtime dependencies")
    for path in update():
        print(f"wrote {path}")
    if args.add:
        sync()
        print("installed the new lock into .venv (the stages retrain on the next `make repro`)")
    return 0


def run_env(args: argparse.Namespace) -> int:
    """`make check-env`: the installed packages against the lock; else the pinned variables."""
    from ..runtime.environment import drift
    from ..runtime.launcher import PINNED_ENV

    if args.check:
        lines = drift()
        if lines:
            print("the environment differs from the lock (- locked, + installed):")
            print("\n".join(f"  {line}" for line in lines))
            print("Fix: `make setup` restores the locked environment.")
            return 1
        print("the environment matches the lock")
        return 0
    for key in sorted(PINNED_ENV):
        print(f"{key}={os.environ.get(key, '')}")
    print(f"interpreter={sys.executable}")
    return 0
