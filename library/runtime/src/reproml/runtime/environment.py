"""Environment drift: the installed distributions and Python, compared with the lock.

Training on packages other than the locked ones gives other model bytes, so training and
verification refuse a drifted environment unless the user allows it explicitly; then the
drift is written into the stage's record instead of silently changing the model.
"""

import os
import re
import sys
from importlib import metadata
from pathlib import Path

from .errors import DriftError
from .io import compact_json
from .launcher import PROJECT_ROOT

# The export of uv.lock that pins everything installed (locking.py writes it).
REQUIREMENTS_LOCK = "requirements.lock"
# What determines model bytes, exported from uv.lock: a dependency of every stage.
RUNTIME_LOCK = "runtime.lock"
PYTHON_VERSION_FILE = ".python-version"
ALLOW_DRIFT_VARIABLE = "REPRO_ALLOW_DRIFT"
_PINNED_LINE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)[ \t]*(?:;[ \t]*([^\\\n]*?))?[ \t]*\\?$",
    re.MULTILINE,
)
# A wheel the lock installs from a path (reproml's own, kept in the project's wheels/):
# ``./wheels/<name>-<version>-<tags>.whl``: its path, and the name and version its file name
# gives.
_WHEEL_LINE = re.compile(r"^(\S*?([A-Za-z0-9_.]+)-([^-\s/]+)-[^\s/]+\.whl)[ \t]*\\?$", re.MULTILINE)
# Installers put these into some environments; unless the lock pins them, they are not drift.
_INSTALLER_TOOLS = frozenset({"pip", "setuptools", "wheel", "uv"})


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: str | Path = REQUIREMENTS_LOCK) -> dict[str, str]:
    """``{normalized name: version}`` of every distribution the exported lock pins for this
    platform and Python (the lock is universal: its markers say where each line applies)."""
    from packaging.markers import Marker

    text = Path(lock).read_text(encoding="utf-8")
    return {
        normalize(name): version
        for name, version, marker in _PINNED_LINE.findall(text)
        if not marker or Marker(marker).evaluate()
    } | {normalize(name): version for _, name, version in _WHEEL_LINE.findall(text)}


def installed_versions() -> dict[str, str]:
    """``{normalized name: version}`` of what Python would import: distributions come in
    sys.path order, and the first of a name shadows the later ones."""
    found = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(normalize(name), distribution.version)
    return found


def locked_python(version_file: str | Path = PYTHON_VERSION_FILE) -> str:
    return Path(version_file).read_text(encoding="utf-8").strip()


def drift(
    project: str | Path = PROJECT_ROOT,
    installed: dict[str, str] | None = None,
    python: str | None = None,
) -> list[str]:
    """The differences between an environment and the project's lock, as diff lines:
    ``-`` what the lock says, ``+`` what is installed. Defaults to this interpreter's."""
    project = Path(project)
    lines = []
    wanted_python = locked_python(project / PYTHON_VERSION_FILE)
    running_python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    if running_python != wanted_python:
        lines += [f"- python {wanted_python}", f"+ python {running_python}"]
    locked = locked_versions(project / REQUIREMENTS_LOCK)
    installed_default = installed is None
    installed = installed_versions() if installed is None else installed
    unlocked_tools = _INSTALLER_TOOLS - set(locked)
    for name in sorted((set(locked) | set(installed)) - unlocked_tools):
        want, have = locked.get(name), installed.get(name)
        if want == have:
            continue
        if want is not None:
            lines.append(f"- {name}=={want}")
        if have is not None:
            lines.append(f"+ {name}=={have}")
    if installed_default:
        lines += wheel_drift(project)
    return lines


def wheel_drift(project: Path) -> list[str]:
    """A project's own wheels (reproml's, in wheels/) keep their version when they change, so
    the version says nothing: every file the wheel holds must be installed as it is there
    (the hashes its RECORD lists). A wheel this copy of the project lacks (verify's scratch
    copy) is not checked here; the project's own run checked it."""
    import base64
    import csv
    import hashlib
    import io
    import zipfile

    lines = []
    text = (project / REQUIREMENTS_LOCK).read_text(encoding="utf-8")
    for path, name, _ in _WHEEL_LINE.findall(text):
        wheel = project / path
        if not wheel.is_file():
            continue
        try:
            with zipfile.ZipFile(wheel) as archive:
                record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
                rows = list(csv.reader(io.StringIO(archive.read(record).decode("utf-8"))))
            site = Path(metadata.distribution(name).locate_file(""))
        except (OSError, StopIteration, zipfile.BadZipFile, metadata.PackageNotFoundError):
            continue  # unreadable or not installed: the version comparison names it
        changed = []
        for row in rows:
            if len(row) < 2 or not row[1].startswith("sha256=") or ".dist-info/" in row[0]:
                continue
            try:
                digest = hashlib.sha256((site / row[0]).read_bytes()).digest()
            except OSError:
                changed.append(row[0])
                continue
            if "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != row[1]:
                changed.append(row[0])
        if changed:
            shown = ", ".join(sorted(changed)[:3]) + (" ..." if len(changed) > 3 else "")
            lines += [
                f"- {normalize(name)} as in {path}",
                f"+ {normalize(name)} other files: {shown}",
            ]
    return lines


def drift_allowed(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get(ALLOW_DRIFT_VARIABLE, "") == "1"


def require_locked_environment(project: str | Path = PROJECT_ROOT, what: str = "this stage"):
    """Raise DriftError on drift unless allowed; return the drift (empty when none)."""
    lines = drift(project)
    if lines and not drift_allowed():
        diff = "\n".join(f"  {line}" for line in lines)
        raise DriftError(
            f"the environment differs from the lock, so {what} refuses to run:\n{diff}\n"
            "Fix: `make setup` restores the locked environment. To run anyway, set "
            f"{ALLOW_DRIFT_VARIABLE}=1; the drift is then written into the stage's record."
        )
    return lines


def blas_libraries() -> list[str]:
    """The BLAS libraries numpy and scipy loaded, as ``api version kernel`` (no paths: they
    vary by machine). The kernel (threadpoolctl's ``architecture``, e.g. Haswell or SkylakeX)
    is what OpenBLAS picked for this CPU: another kernel may move the last bits of a float."""
    # Load every BLAS the runtime can use (numpy's and scipy's), whatever the caller imported.
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    return sorted(
        {
            f"{lib['internal_api']} {lib['version']} {lib.get('architecture') or 'unknown'}"
            for lib in threadpool_info()
            if lib["user_api"] == "blas"
        }
    )


# x86-64 micro-architecture levels (the psABI's), by the CPU flags each one adds.
ISA_LEVELS = (
    ("x86-64-v2", {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
)


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU's vendor and ISA level (x86-64-v1..v4 on x86-64; the machine name elsewhere)."""
    import platform

    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    machine = platform.machine().lower()
    level = machine or "unknown"
    if machine in ("x86_64", "amd64") and "flags" in fields:
        flags, level = set(fields["flags"].split()), "x86-64-v1"
        for name, needed in ISA_LEVELS:
            if not needed <= flags:
                break
            level = name
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or platform.processor()
    return {"vendor": vendor or "unknown", "isa": level}


def fingerprint(project: str | Path = PROJECT_ROOT) -> dict:
    """What identifies an environment for model bytes: the runtime lock, the Python, the
    platform, the CPU and the BLAS library with its kernel (and torch's build, where the
    project has torch), with one hash over them all."""
    import hashlib
    import platform

    from .determinism import torch_build

    components = {
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "blas": blas_libraries(),
        "cpu": cpu_info(),
        "runtime_lock_sha256": hashlib.sha256(
            (Path(project) / RUNTIME_LOCK).read_bytes()
        ).hexdigest(),
    }
    torch = torch_build()
    if torch is not None:
        components["torch"] = torch
    text = compact_json(components)
    return {"hash": hashlib.sha256(text.encode()).hexdigest(), **components}
