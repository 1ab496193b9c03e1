"""The one way the machinery runs another program: git, DVC, uv, ssh-keygen, its own stages.

Output is always captured (callers name failures with it) and a non-zero exit never raises:
each caller knows what the failure means and says so. git gets a stand-in identity when none
is configured, so a fresh CI runner can still write notes and tags.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

# Used only when git has no identity configured (fresh CI runners, containers).
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "reproml",
    "GIT_AUTHOR_EMAIL": "reproml@localhost",
    "GIT_COMMITTER_NAME": "reproml",
    "GIT_COMMITTER_EMAIL": "reproml@localhost",
}


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
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()

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


def git_environment(repo: Path) -> dict:
    """This process's environment, plus an identity for git if none is configured."""
    env = dict(os.environ)
    configured = run(["git", "config", "user.email"], cwd=repo).stdout.strip()
    if not configured:
        env.update(_FALLBACK_IDENTITY)
    return env


def git(repo: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """``git args`` in ``repo``, with an identity."""
    return run(["git", *args], cwd=repo, env=git_environment(repo), **kw)


def git_show(repo: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``, or None if the commit has no such file."""
    shown = run(["git", "show", f"{commit}:{path}"], cwd=repo)
    return shown.stdout if shown.returncode == 0 else None


def owner_only_file(path: Path, text: str) -> Path:
    """``text`` (a key) in a new file at ``path`` that only this user can read, created so
    (``O_EXCL``, mode 0600) that it is never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text.strip() + "\n")
    return path


def secret_file(repo: Path, name: str, text: str) -> Path:
    """``text`` in ``.git/<name>`` (CI keys): never committed, readable by this user only."""
    git_dir = Path(run(["git", "rev-parse", "--absolute-git-dir"], cwd=repo).stdout.strip())
    return owner_only_file(git_dir / name, text)


def console_script(name: str) -> str:
    """A console script of this environment (dvc, gto), whatever PATH says."""
    return str(Path(sys.executable).parent / name)
