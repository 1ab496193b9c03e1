"""How the tool commands run programs, over runtime/proc.py's ``run``: DVC and the
environment's console scripts, checked runs, and work started in the background (rebuild's
cache warm-up). No stage needs these, so they live with the tools: editing one retrains
nothing."""

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from ..runtime.proc import interpreter_first_on_path, kill_group, run


def run_leaving_daemons(
    command: list[str], cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``run(command)`` for a command that starts daemons and returns (``dvc queue start``):
    its output goes through a temporary file, not a pipe. A daemon inherits the pipe and
    keeps it open, so reading it to its end waited for the daemon's end, forever when one
    hangs (a DVC queue worker told to stop while it ran a task did)."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+") as said:
        done = subprocess.run(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=said, stderr=said
        )
        said.seek(0)
        return subprocess.CompletedProcess(command, done.returncode, "", said.read())


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
        kill_group(process)
    process.wait()


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


def console_script(name: str) -> str:
    """A console script of this environment (dvc, gto), whatever PATH says."""
    return str(Path(sys.executable).parent / name)


def run_status(args: argparse.Namespace) -> int:
    """`make status`: DVC's status, and the fix when the workspace is not dvc.lock's."""
    if run_tool(["dvc", "status", "--quiet"]) == 0:
        print("the pipeline is up to date with dvc.lock")
        return 0
    run_tool(["dvc", "status"])
    print("error: the pipeline is not up to date: run `make repro` and commit dvc.lock")
    return 1


def run_tool(command: list[str]) -> int:
    """A tool of this environment (``python -m <command>``), its output the caller's."""
    return subprocess.call(
        [sys.executable, "-m", *command], env=interpreter_first_on_path(os.environ)
    )


def run_pull(args: argparse.Namespace) -> int:
    """`make pull`."""
    return run_tool(["dvc", "pull", *args.dvc_args])


def run_lint(args: argparse.Namespace) -> int:
    """`make lint`."""
    return run_tool(["ruff", "check", "."]) or run_tool(["ruff", "format", "--check", "."])


def run_test(args: argparse.Namespace) -> int:
    """`make test`."""
    return run_tool(["pytest", *args.pytest_args])
