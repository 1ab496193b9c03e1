"""Fixtures shared by the three tiers: baking, the option matrix, and helpers that call the
baked project's own code (never a re-implementation of it)."""

import atexit
import contextlib
import fcntl
import importlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import jinja2
import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
HOOKS = TEMPLATE / "hooks"
COOKIECUTTER_JSON = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = {key: value for key, value in COOKIECUTTER_JSON.items() if isinstance(value, list)}
ACTIONLINT = str(Path(sys.executable).parent / "actionlint")
# The machinery's version (library/, both distributions): what a baked project pins.
LIBRARY_VERSION = tomllib.loads((TEMPLATE / "library/runtime/pyproject.toml").read_text())[
    "project"
]["version"]
LIBRARY_WHEELS = {
    "runtime": f"reproml_runtime-{LIBRARY_VERSION}-py3-none-any.whl",
    "tools": f"reproml-{LIBRARY_VERSION}-py3-none-any.whl",
}
# REPROML_TEST_TIMINGS=<file>: each process `run` starts is appended to it with its seconds
# (where a slow test spends its time).
TIMINGS = os.environ.get("REPROML_TEST_TIMINGS")
UV = os.environ.setdefault("UV", str(TEMPLATE / ".bootstrap" / "bin" / "uv"))

sys.path.insert(0, str(HOOKS))
sys.path.insert(0, str(TEMPLATE / "scripts"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# A machine that sets PYTHONDONTWRITEBYTECODE makes every DVC, uv-run and tool process of a
# fresh bake compile its imports again (DVC alone: 0.6 s a command); the stages drop it
# themselves (launcher.DROPPED_ENV). The projects' bytecode is in ignored __pycache__ folders.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# A baked project's own pytest (`make test`, in a tier-3 test or in a CI job the tests run)
# keeps its numbered temporary folders under a root of this process's, not in the machine's
# shared /tmp/pytest-of-<user>: there each inner run would scan, and delete, what earlier
# runs left (gigabytes of old projects on a machine that ran the suite before). Only the
# processes the tests start get it; this pytest's own folders stay where pytest puts them.
INNER_PYTEST_ROOT = Path(tempfile.mkdtemp(prefix="reproml-inner-pytest-"))
atexit.register(shutil.rmtree, INNER_PYTEST_ROOT, ignore_errors=True)
CHILD_ENV = {"PYTEST_DEBUG_TEMPROOT": str(INNER_PYTEST_ROOT)}


def default_answers() -> dict:
    """The answers `cookiecutter --no-input` would give, rendered as cookiecutter renders them."""
    answers = {}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for key, raw in COOKIECUTTER_JSON.items():
        if key.startswith("_"):
            continue
        value = raw[0] if isinstance(raw, list) else raw
        answers[key] = env.from_string(value).render(cookiecutter=answers)
    return answers


def matrix(
    primary: tuple[str, ...], cycled: tuple[str, ...], choices: dict | None = None
) -> list[dict]:
    """The full product of ``primary`` options; the others are cycled through the rows, since
    they do not interact with the primary ones (each value still appears at least once).
    ``choices`` narrows an option's values. A model that has no class for its row's dataset
    task (ridge on a classification table) gets a dataset of a task it has."""
    choices = {**CHOICES, **(choices or {})}
    rows = [{}]
    for key in primary:
        rows = [{**row, key: value} for row in rows for value in choices[key]]
    for shift, key in enumerate(cycled, start=1):
        values = choices[key]
        for index, row in enumerate(rows):
            # Each cycled option advances by one more step per block of rows, so options with
            # the same number of values do not stay paired (ci=github with one dataset only).
            row[key] = values[(index + shift * (index // len(values))) % len(values)]
    assert all(len(rows) >= len(choices[key]) for key in cycled)
    rows = [fit_task(row) for row in rows]
    return [row for index, row in enumerate(rows) if row not in rows[:index]]


def fit_task(row: dict) -> dict:
    """``row`` with a dataset whose task its model has a class for."""
    import answer_rules

    if "dataset" not in row or "model" not in row:
        return row
    tasks = answer_rules.model_tasks(row["model"])
    if answer_rules.dataset_task(row["dataset"]) in tasks:
        return row
    dataset = next(name for name in CHOICES["dataset"] if answer_rules.dataset_task(name) in tasks)
    return {**row, "dataset": dataset}


def model_target(name: str, task: str = "classification") -> str:
    """The estimator class a shipped model file (conf/model/<name>.yaml) names for a task."""
    import answer_rules

    text = (answer_rules.PROJECT_DIR / "conf" / "model" / f"{name}.yaml").read_text()
    block = answer_rules.MODEL_TASKS.search(text).group(1)
    return dict(line.strip().split(": ", 1) for line in block.splitlines())[task]


def dataset_task(name: str) -> str:
    import answer_rules

    return answer_rules.dataset_task(name)


def chosen_model(project: Path) -> str:
    """The model file a project's conf/config.yaml picks."""
    import yaml

    defaults = yaml.safe_load((project / "conf" / "config.yaml").read_text())["defaults"]
    return next(
        entry["model"] for entry in defaults if isinstance(entry, dict) and "model" in entry
    )


def row_id(row: dict) -> str:
    return "-".join(str(value) for value in row.values())


def bake(output_dir: Path, **answers) -> Path:
    """Bake the template non-interactively, hooks included, and return the project path."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )


def baked_module(project: Path, module: str):
    """Import ``<package>.<module>`` from a baked project (fresh, whatever an earlier bake of
    the same package name imported), or ``reproml.<...>`` when ``module`` starts with
    ``reproml.``: the machinery is the one library every bake installs, and the library's
    tests hold its modules, so it is never imported twice."""
    package = project_package(project)
    for name in [name for name in sys.modules if name.split(".")[0] == package]:
        del sys.modules[name]
    sys.path.insert(0, str(project))
    try:
        if module.startswith("reproml."):
            return importlib.import_module(module)
        return importlib.import_module(f"{package}.{module}")
    finally:
        sys.path.remove(str(project))


def project_package(project: Path) -> str:
    import tomllib

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return pyproject["tool"]["reproml"]["package"]


def run(command: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a real process; on failure the assertion shows its whole output."""
    env = {**os.environ, **CHILD_ENV, "UV": UV, **kwargs.pop("env", {})}
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, **kwargs)
    if TIMINGS:
        with open(TIMINGS, "a") as log:
            test = os.environ.get("PYTEST_CURRENT_TEST", "")
            seconds = time.monotonic() - started
            entry = {"test": test, "seconds": seconds, "command": command[:4]}
            log.write(json.dumps(entry, default=repr) + "\n")
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


# Run order for `make test` (two workers): the longest units first, so neither worker is left
# with one long test at the end; the many short tier 1 and 2 tests fill in last.
LONGEST_FIRST = (
    "test_model_families.py",
    "test_ci.py",
    "test_registry.py",
    "test_sweep.py",
    "test_end_to_end.py",
    "test_remotes.py",
    "test_own_data.py",
    "test_oracle.py",
    "test_tools.py",
    "test_regression.py",
    "test_faults.py",
    "test_extending.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def sealed_rebuilds(request):
    """Tier 3 rebuilds run sealed, as a project's CI makes them: the baked project's own
    `make sandbox` code installs bubblewrap once (apt-get, as root), in a process of its own.
    A machine where it cannot fails here, saying why, rather than rebuild unsealed."""
    if not any(item.get_closest_marker("slow") for item in request.session.items):
        return
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from reproml.tools.sandbox import install; print(install())"
    )
    source = str(TEMPLATE / "{{cookiecutter.project_slug}}")
    run([sys.executable, "-c", code, source], cwd=TEMPLATE)


# Fewer tier-3 tests than this in a session: setting up the default project to find what it
# imports (about 35 s) would cost more than the bytecode saves.
BYTECODE_WORTH_IT = 20
# The bytecode files this session put into uv's cache, one path a line (in the session's
# shared temporary folder): taken out again when every worker is done.
BYTECODE_WRITTEN = "uv-bytecode-written.txt"


@pytest.fixture(scope="session", autouse=True)
def bytecode_in_the_uv_cache(request, tmp_path_factory, sealed_rebuilds):
    """uv links every file of a cached wheel into each environment it makes, a wheel's
    ``__pycache__`` included: while the cache holds the bytecode of what a default project's
    pipeline and tools import, every project, clone and CI job the tier-3 tests set up starts
    with it, instead of compiling the same files on first import (about 5 s of CPU each).
    Python checks each .pyc against its source's size and time, so nothing can run stale; a
    rebuild's sealed processes keep their own bytecode folder and do not read it. One worker
    does it once a session while the others go on (what they set up first compiles on import,
    as it would without); the files go again when the session ends (pytest_sessionfinish),
    so the machine's cache, and `make bench`, stay as a user's are. A speed-up only: whatever
    goes wrong here is a warning, never a failed test."""
    slow = [item for item in request.session.items if item.get_closest_marker("slow")]
    if len(slow) < BYTECODE_WORTH_IT:
        return
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    lock = (shared / "uv-bytecode.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another worker does it
    if (shared / BYTECODE_WRITTEN).exists():
        return
    try:
        written = _bytecode_into_uv_cache(tmp_path_factory.mktemp("bytecode"))
    except Exception as error:  # a speed-up: it must not fail the tests
        import warnings

        warnings.warn(f"uv's cache got no bytecode: {error}", stacklevel=1)
        return
    (shared / BYTECODE_WRITTEN).write_text("".join(f"{path}\n" for path in written))


def _bytecode_into_uv_cache(folder: Path) -> list[Path]:
    """Bake the default project, run what most tests run, then write into uv's cache the
    bytecode of each installed file it imported (the cached file that the environment's file
    is a hard link of); returns the files written. Each is compiled beside the cache and moved
    in whole, so a uv linking from the same folder meanwhile never meets half a file."""
    project = bake(folder, project_slug="bytecode")
    tag = sys.implementation.cache_tag
    site = project / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = site / "site-packages"  # the project's Python is this one's (3.11 both), or none
    probe = site / "numpy" / "__init__.py"
    if not probe.is_file() or probe.stat().st_nlink < 2:
        return []  # another Python, or uv copied instead of linking: nothing to share
    env = {"PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for target in ("setup", "repro", "registry", "report"):
        run(["make", target, f"UV={UV}"], cwd=project, env=env)
    from reproml.tools.rebuild import compiled_here

    archives = Path(run([UV, "cache", "dir"], cwd=project).stdout.strip()) / "archive-v0"
    holding = {}  # a top-level name in site-packages -> the cached wheels that hold it
    for archive in (entry for entry in archives.iterdir() if entry.is_dir()):
        for entry in archive.iterdir():
            holding.setdefault(entry.name, []).append(archive)
    staging = Path(tempfile.mkdtemp(dir=archives.parent, prefix=".reproml-bytecode-"))
    written = []
    mode = py_compile.PycInvalidationMode.TIMESTAMP
    try:
        for relative in compiled_here(site):
            installed = _inode(site / relative)
            candidates = (archive / relative for archive in holding.get(relative.split("/")[0], []))
            cached = next((path for path in candidates if _inode(path) == installed), None)
            if installed is None or cached is None:
                continue
            pyc = cached.parent / "__pycache__" / f"{cached.stem}.{tag}.pyc"
            if pyc.exists():
                continue  # not ours to write, nor to take out
            staged = str(staging / f"{len(written)}.pyc")
            # A file that does not compile here compiles (or fails) on import, as before.
            with contextlib.suppress(py_compile.PyCompileError):
                py_compile.compile(str(cached), staged, invalidation_mode=mode, doraise=True)
                pyc.parent.mkdir(exist_ok=True)
                os.replace(staged, pyc)
                written.append(pyc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)
    return written


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino if path.is_file() else None
    except OSError:
        return None


def pytest_sessionfinish(session):
    """The bytecode this session put into uv's cache taken out again, once every worker is
    done (this runs last in the process that started them)."""
    if hasattr(session.config, "workerinput"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    listed = factory.getbasetemp() / BYTECODE_WRITTEN
    if not listed.is_file():
        return
    for line in listed.read_text().splitlines():
        pyc = Path(line)
        with contextlib.suppress(OSError):
            pyc.unlink()
            pyc.parent.rmdir()  # only when nothing else is in it
    listed.unlink()
