"""The one way the machinery runs another program: git, DVC, uv, ssh-keygen, the stages.
What only the tool commands need on top of it (background work, DVC's console, checked
runs) is in tools/commands.py, so that changing it retrains nothing.

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
        kill_group(process)

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


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the process group a ``start_new_session`` process leads (the process alone
    elsewhere); nothing if it ended meanwhile."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


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
