# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""The one way the machinery runs another program: git, DVC, uv, ssh-keygen, the stages.

Output is always captured (callers name failures with it) and a non-zero exit never raises:
each caller knows what the failure means and says so (tools/git.py adds git's identity).
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def run(
    command: list[str],
    cwd: Path | None = None,
    env: dict | None = None,
    stream: bool = False,
    timeout: float | None = None,
    **kw,
) -> subprocess.CompletedProcess:
    """Run ``command``; with ``stream``, also print its output (indented) as it comes, which
    long steps need. After ``timeout`` seconds the command (a streamed one: its whole process
    group) is killed and its returncode is None."""
    if not stream:
        try:
            return subprocess.run(
                command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw
            )
        except subprocess.TimeoutExpired as expired:
            said = expired.stderr or b""
            said = said.decode(errors="replace") if isinstance(said, bytes) else said
            return subprocess.CompletedProcess(command, None, "", said)
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=os.name == "posix",
        **kw,
    )
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        _kill_group(process)

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        print(f"    {line}", end="", flush=True)
    process.wait()
    if timer:
        timer.cancel()
    code = None if expired.is_set() else process.returncode
    return subprocess.CompletedProcess(command, code, "".join(lines), "")


def start_background(
    command: list[str], cwd: Path | None = None, env: dict | None = None
) -> subprocess.Popen:
    """Start ``command`` beside the caller, output discarded, in a process group of its own
    and at the lowest CPU priority: for work nobody waits on (warming a cache), which should
    only take a core the caller leaves idle. ``stop_background`` ends it and its children."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=os.name == "posix",
    )
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # it may have ended already
            os.setpriority(os.PRIO_PROCESS, process.pid, 19)
    return process


def stop_background(process: subprocess.Popen) -> None:
    """Kill ``process`` and its group if it still runs, then reap it; never raises (it runs
    in ``finally`` blocks, where it must not hide the real outcome)."""
    if process.poll() is None:
        _kill_group(process)
    process.wait()


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the process group a ``start_new_session`` process leads (the process alone
    elsewhere); nothing if it ended meanwhile."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


def run_checked(
    command: list[str], error: type[Exception], cwd: Path | None = None, **kw
) -> subprocess.CompletedProcess:
    """``run(command)``, raising the caller's ``error`` (naming the command and what it said)
    when it exits non-zero: for the steps whose failure has no other meaning."""
    result = run(command, cwd=cwd, **kw)
    if result.returncode != 0:
        shown = " ".join([Path(command[0]).name, *command[1:]])
        said = (result.stderr or result.stdout or "").strip()
        raise error(f"`{shown}` failed:\n{said}")
    return result


def dvc_command(*args: str) -> list[str]:
    """``python -m dvc args`` with this interpreter: the one way the machinery launches DVC,
    whatever PATH says."""
    return [sys.executable, "-m", "dvc", *args]


def interpreter_first_on_path(environ: dict[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with this interpreter's bin directory first on PATH: what DVC
    runs as ``python`` in a stage's command is then this environment's."""
    return path_first(environ, Path(sys.executable).parent)


def path_first(environ: dict[str, str], folder: Path) -> dict[str, str]:
    """A copy of ``environ`` with ``folder`` first on PATH, and no empty entry when PATH is
    unset or empty (an empty entry means the current directory)."""
    env = dict(environ)
    rest = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry]
    env["PATH"] = os.pathsep.join([str(folder), *rest])
    return env


def console_script(name: str) -> str:
    """A console script of this environment (dvc, gto), whatever PATH says."""
    return str(Path(sys.executable).parent / name)
