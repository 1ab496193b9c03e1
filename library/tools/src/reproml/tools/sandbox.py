"""The seal around code a revision brings: a bubblewrap sandbox, as Nix builds in one.

A rebuild, a field rebuild and ``predict`` with a release run the revision's own stages, its
own DVC and its own locked packages: code anyone who can push a tag or a branch may have
written. Inside the seal that code has no network, sees only its own processes under
``/proc``, has no HOME but a scratch one, and sees none of the user's files: only the system's
toolchain (``/usr``, the libraries, a few files of ``/etc``), the revision's interpreter, all
read-only, and the one scratch folder it may write in (its checkout, whose ``.venv`` stays
read-only, since uv hard-links those files from its cache). A CI sweep's point runs the
dispatched commit's pipeline where the job's remote credentials are: sealed too, its project
the folder it writes, the credentials' file shown empty.

Where bubblewrap cannot run (macOS, Windows, a kernel without user namespaces) the caller
says so on its first line and records ``sealed: false``; ``make sandbox`` installs it.
"""

import argparse
import functools
import os
import shutil
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.proc import run
from .errors import RebuildError

# The bubblewrap program to use; set empty to rebuild unsealed on purpose (a benchmark's
# baseline): the rebuild then says so first, its record says sealed: false, and SEALED=1
# (CI) refuses to run.
BWRAP_VARIABLE = "REPRO_BWRAP"
# The most this process reads of a file the revision's code wrote (its dvc.lock, results).
MAX_READ_BYTES = 64 * 2**20

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`); on Ubuntu 24.04 also "
    "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
)
# The toolchain, read-only: what a stage's interpreter, git and the native libraries load.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")
# Of /etc only what programs read to start: certificates, the loader cache, names of users,
# the time zone. Not shadow, ssh, git or cloud configuration.
ETC_PATHS = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki/tls/certs",
    "ssl/certs",
    "timezone",
)
NO_NETWORK = (
    "the rebuild runs sealed, with no network: a stage that reaches for one fails, and that "
    "is a finding about the release (a rebuild must need only its locked inputs)"
)


@functools.cache
def bubblewrap() -> tuple[str | None, str]:
    """The ``bwrap`` program if it can build a sandbox here, and why not otherwise."""
    chosen = os.environ.get(BWRAP_VARIABLE)
    if chosen == "":
        return None, f"{BWRAP_VARIABLE} is set empty, which turns the sandbox off"
    found = shutil.which(chosen or "bwrap")
    if os.name != "posix" or found is None:
        return None, f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    if not run([found, "--version"]).stdout.startswith("bubblewrap"):
        return None, f"{found} is not bubblewrap: {INSTALL_HINT}"
    probe = run([found, *_system_mounts(), "--unshare-all", "--cap-drop", "ALL", "true"])
    if probe.returncode != 0:
        said = (probe.stderr or probe.stdout).strip().splitlines()
        return None, f"bwrap cannot make a sandbox here ({said[-1] if said else 'no reason'}): " + (
            INSTALL_HINT
        )
    return found, ""


def _system_mounts() -> list[str]:
    mounts = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    for name in ETC_PATHS:
        mounts += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return mounts


class Seal:
    """A bubblewrap command line for one scratch folder: ``wrap(command)`` runs ``command``
    sealed in it. ``readable`` adds folders or files shown read-only at their own paths (the
    revision's interpreter); ``read_only`` folders inside ``writable`` stay read-only."""

    def __init__(self, bwrap: str, writable: Path, readable=(), read_only=(), hidden=None):
        self.bwrap = bwrap
        self.writable = Path(writable)
        self.readable = [Path(path) for path in readable]
        self.read_only = [Path(path) for path in read_only]
        # ``{file: empty file}``: files inside ``writable`` shown empty (a CI job's remote
        # credentials; /dev/null cannot stand in: bwrap's binds are nodev).
        self.hidden = dict(hidden or {})

    def wrap(self, command: list[str], cwd: Path) -> list[str]:
        mounts = _system_mounts()
        mounts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in self.readable:
            mounts += ["--ro-bind", str(path), str(path)]
        mounts += ["--bind", str(self.writable), str(self.writable)]
        for path in self.read_only:
            mounts += ["--ro-bind", str(path), str(path)]
        for path, empty in self.hidden.items():
            mounts += ["--ro-bind", str(empty), str(path)]
        return [
            self.bwrap,
            *mounts,
            "--unshare-all",  # network, PIDs, IPC, UTS, cgroup and (where allowed) users
            # No capability inside either: as root, bwrap would keep them, and a remount
            # could make the read-only mounts (/usr, the environment) writable.
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",  # no TIOCSTI into the user's terminal
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--chdir",
            str(cwd),
            "--",
            *command,
        ]


def interpreter_prefix(venv: Path, private: list[Path]) -> Path | None:
    """The installation a virtualenv's interpreter comes from (``home`` in its pyvenv.cfg is
    that installation's bin folder), which the seal must show read-only. A revision chooses
    its interpreter (``.python-version`` may hold a path), so the folder must be a Python
    installation (``lib/python3.*/os.py``) and hold none of ``private`` (HOME, the project):
    never a way to show the seal the user's files."""
    config = venv / "pyvenv.cfg"
    if not config.is_file():
        return None
    for line in config.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            prefix = Path(value.strip()).resolve().parent
            shows = [path for path in private if path == prefix or prefix in path.parents]
            if shows or not any((prefix / "lib").glob("python3*/os.py")):
                raise ProjectError(
                    f"the revision's interpreter comes from {prefix}, which is not a Python "
                    "installation of its own"
                    + (f" (it holds {shows[0]})" if shows else "")
                    + ": the seal will not show it. Fix: a .python-version that names a "
                    "version (3.11), not a path."
                )
            return prefix
    return None


# Ubuntu 24.04 (GitHub's runners) lets AppArmor refuse unprivileged user namespaces, which
# bubblewrap needs ("setting up uid map: Permission denied"); this setting allows them.
APPARMOR_USERNS = "kernel.apparmor_restrict_unprivileged_userns"


def _as_root() -> list[str] | None:
    """How to run a command as root here: directly, through password-less sudo (a CI
    runner), or not at all."""
    if os.name != "posix":
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and run(["sudo", "-n", "true"]).returncode == 0:
        return ["sudo", "-n"]
    return None


def install() -> str:
    """``make sandbox``: make sure rebuilds can run sealed. As root (or with password-less
    sudo, as on a CI runner) on Debian or Ubuntu it installs bubblewrap and, where AppArmor
    refuses the user namespaces it needs, allows them. Parallel callers (test workers) take
    turns, since apt-get holds one lock."""
    if bubblewrap()[0]:
        return "rebuilds run sealed: bubblewrap works here"
    root = _as_root()
    if root is None or not shutil.which("apt-get"):
        raise ProjectError(f"rebuilds would run UNSEALED here. Fix: {INSTALL_HINT}")
    import fcntl

    with open("/tmp/reproml-sandbox-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        bubblewrap.cache_clear()
        if not shutil.which("bwrap"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install_it = [*root, "apt-get", "install", "-y", "-qq", "bubblewrap"]
            # The package lists first only when they are too old to find it.
            if run(install_it, env=env).returncode != 0:
                updated = run([*root, "apt-get", "update", "-qq"], env=env)
                done = run(install_it, env=env) if updated.returncode == 0 else updated
                if done.returncode != 0:
                    said = (done.stderr or done.stdout).strip()
                    raise ProjectError(f"apt-get could not install bubblewrap: {said}")
        bubblewrap.cache_clear()
        setting = Path("/proc/sys/kernel") / APPARMOR_USERNS.split(".", 1)[1]
        if not bubblewrap()[0] and setting.is_file():
            run([*root, "sysctl", "-w", f"{APPARMOR_USERNS}=0"])
            bubblewrap.cache_clear()
    found, why = bubblewrap()
    if not found:
        raise ProjectError(f"bubblewrap is installed, but {why}")
    return "bubblewrap installed: rebuilds run sealed"


def inside(root: Path, path: Path) -> Path:
    """``path`` as it resolves, which must be inside ``root``: this process reads and writes
    a checkout the revision's code has written in, where a link could lead anywhere."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise RebuildError(
            f"{Path(path).relative_to(root).as_posix()} is a link that leads out of the "
            "rebuild's checkout: refused, and nothing was read or written through it"
        )
    return real


def run_sandbox(args: argparse.Namespace) -> int:
    """`make sandbox`."""
    print(install())
    return 0
