"""Find a CPython of a given minor for uv.

uv looks on PATH and in its own managed installs; pyenv keeps the others behind shims that
fail unless selected, so uv misses them. Used by `make locks` and by the template's tests.
"""

import os
import shutil
import subprocess
from pathlib import Path


def find_interpreter(python_version: str, uv: str = "uv") -> str | None:
    """The path of a python<minor> executable, or None when this machine has none."""
    found = subprocess.run(
        [uv, "python", "find", "--system", "--no-project", python_version],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(root.glob(f"{python_version}.*"), reverse=True):
        binary = candidate / "bin" / f"python{python_version}"
        if binary.exists():
            return str(binary)
    return shutil.which(f"python{python_version}")
