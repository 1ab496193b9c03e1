"""What the library's tests share: the installed machinery by name, and git in repositories
of their own with an identity of their own, never the machine's configuration."""

import importlib
import subprocess
from pathlib import Path


def machinery(name: str):
    """``reproml.<name>`` as sys.modules holds it now."""
    return importlib.import_module(f"reproml.{name}")


# No global or system config, no hooks from there, and a fixed identity.
GIT_TEST_ENV = {
    "PATH": "/usr/bin:/bin",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    **{f"GIT_{who}_NAME": "t" for who in ("AUTHOR", "COMMITTER")},
    **{f"GIT_{who}_EMAIL": "t@example.com" for who in ("AUTHOR", "COMMITTER")},
}


def git(repo: Path, *args: str) -> str:
    """``git args`` in ``repo`` under GIT_TEST_ENV; its output, or the test fails."""
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_TEST_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
