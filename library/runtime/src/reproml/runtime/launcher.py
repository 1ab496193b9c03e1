"""The process environment that makes model bytes independent of the machine.

Hash seeds, BLAS/OpenMP thread pools and the C locale are read once, when the interpreter
(or the native library) starts, so setting them from inside a running Python is too late.
The entry point therefore re-executes itself with the pinned values before any numerical
library is imported. This works the same on every OS because it needs no shell syntax.

It also re-executes under the project's own ``.venv`` when another Python started it
(``dvc`` runs stage commands with whatever ``python`` is first on PATH), so a stage always
runs in the locked environment.
"""

import os
import subprocess
import sys
from pathlib import Path

PINNED_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    # cuBLAS's deterministic workspace, which torch's deterministic mode needs on a GPU.
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "TZ": "UTC",
    "LC_ALL": "C",
    "LANG": "C",
    "PYTHONUTF8": "1",
    # Packages in the user's site-packages would shadow the locked ones.
    "PYTHONNOUSERSITE": "1",
}

# Dropped, not pinned: without bytecode every stage re-compiles scikit-learn on import,
# which doubles its start-up time.
DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE",)


def _project_root() -> Path:
    """The project whose code runs: the folder holding the team's package when this process
    is ``python -m <package>`` (the project, or verify's, an experiment's or the import
    tracer's copy of it; its ``__main__.py`` is ``sys.argv[0]``); else the nearest folder up
    from the working directory whose pyproject.toml has a ``[tool.reproml]`` table (a make
    target runs the tools in the project; a person may run ``reproml`` from a subfolder), else
    the working directory. This package is installed in the project's .venv (or, for the
    template's own work, editable from library/), so its own path says nothing about which
    project."""
    main = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if main and main.name == "__main__.py" and main.is_file():
        package = main.resolve().parent
        if package.parent.name != "reproml" and "site-packages" not in package.parts:
            return package.parent
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        settings = folder / "pyproject.toml"
        try:
            if "[tool.reproml]" in settings.read_text(encoding="utf-8"):
                return folder
        except (OSError, UnicodeDecodeError):
            continue
    return here


PROJECT_ROOT = _project_root()
# Set to "as-is" to run in the caller's environment (verification varies it on purpose).
OPT_OUT_VARIABLE = "REPRO_ENV"
_REEXECUTED_MARKER = "_REPRO_ENV_REEXECUTED"


# What verification and "lab" rebuilds vary on purpose, as reproducible-builds.org does:
# the time zone, locale, hash seed and umask (and the working directory, by running elsewhere).
# Thread counts stay pinned: they are a property of the build recipe, not of the machine.
VARIED_ENV = {
    OPT_OUT_VARIABLE: "as-is",
    "TZ": "Pacific/Chatham",
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "4242",
    **{key: value for key, value in PINNED_ENV.items() if key.endswith("_THREADS")},
}
VARIED_UMASK = 0o077


def varied_environment(environ: dict[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with VARIED_ENV applied and the pins the entry point would add
    disabled, so a child process keeps the varied values."""
    env = {key: value for key, value in environ.items() if key not in DROPPED_ENV}
    env.update(VARIED_ENV)
    return env


def pinned_environment(environ: dict[str, str], root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Return a copy of ``environ`` with the pinned values applied. PYTHONPATH becomes the
    project root (``root``, where the team's package is) alone: anything else on it would
    shadow the locked packages."""
    env = {key: value for key, value in environ.items() if key not in DROPPED_ENV}
    env.update(PINNED_ENV)
    env["PYTHONPATH"] = str(root)
    return env


def unpinned_keys(environ: dict[str, str], root: Path = PROJECT_ROOT) -> list[str]:
    """Names of the variables whose value differs from the pinned environment."""
    wrong = [key for key, value in PINNED_ENV.items() if environ.get(key) != value]
    if environ.get("PYTHONPATH") != str(root):
        wrong.append("PYTHONPATH")
    return wrong + [key for key in DROPPED_ENV if key in environ]


def project_interpreter(project_root: Path) -> str:
    """The project's .venv Python if it exists and is not the one running; else this one.

    Queued and temporary experiments run in a copy under ``<repo>/.dvc/tmp/exps/``, which has
    no .venv of its own: there the repository's .venv is the project's.
    """
    roots = [project_root]
    if ".dvc" in project_root.parts:
        roots.append(Path(*project_root.parts[: project_root.parts.index(".dvc")]))
    for root in roots:
        venv = root / ".venv"
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if python.exists():
            return sys.executable if Path(sys.prefix).resolve() == venv.resolve() else str(python)
    return sys.executable


def reexec_if_needed(package: str, argv: list[str]) -> None:
    """Replace this process with ``python -m package argv`` pinned, in the project's .venv."""
    if os.environ.pop(_REEXECUTED_MARKER, None) is not None:
        return
    interpreter = project_interpreter(PROJECT_ROOT)
    keep_environment = os.environ.get(OPT_OUT_VARIABLE) == "as-is"
    pinned = keep_environment or not unpinned_keys(dict(os.environ))
    if pinned and interpreter == sys.executable:
        return
    env = dict(os.environ) if keep_environment else pinned_environment(dict(os.environ))
    env[_REEXECUTED_MARKER] = "1"
    command = [interpreter, "-m", package, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(interpreter, command, env)
    # Windows has no exec that keeps the process: wait for the child and pass its code on.
    sys.exit(subprocess.call(command, env=env))
