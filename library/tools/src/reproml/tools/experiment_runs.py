"""What every experiment command shares (the local sweep, the CI sweep, the comparison table
and adopt): the error they raise, the environment DVC's experiment commands run in, and why a
run failed, read from its log."""

import re
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.proc import interpreter_first_on_path, run
from .commands import dvc_command
from .git import git_environment

PARAMS_FILE = "params.yaml"

# How a failed run's log says why: the project's stages print ``error: <message>`` for an
# error they handle (reproml.runtime.stage); any other exception leaves a traceback; DVC
# then adds its own line, which names the stage but not the cause.
STAGE_ERROR = "error:"
TRACEBACK_START = "Traceback (most recent call last):"
DVC_STAGE_FAILED = re.compile(r"^ERROR: failed to reproduce '([^']+)'")


class SweepError(ProjectError):
    """A sweep could not be queued or run (as opposed to: a point ran and failed)."""


def tool_environment(root: Path) -> dict[str, str]:
    """This interpreter's bin directory first on PATH (DVC's workers run the stages with it),
    and a git identity if none is configured (DVC commits each experiment)."""
    return interpreter_first_on_path(git_environment(root))


def failure_reason(name: str, root: Path) -> str:
    """Why a point failed, from its own log (``dvc queue logs``): see ``reason_in``."""
    said = run(dvc_command("queue", "logs", name), cwd=root).stdout
    return reason_in(said) or f"no log (see `dvc queue logs {name}`)"


def reason_in(log: str) -> str:
    """Why a run failed, from its log: the failing stage's own message (its ``error:`` line
    for an error the project handles, else the line its traceback ends with) and the first
    outputs verify found different, after the stage's name. DVC's own error only when no
    stage said anything: its "failed to reproduce" names the stage, never the cause."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    stages = [found.group(1) for line in lines if (found := DVC_STAGE_FAILED.match(line))]
    handled = [
        line.removeprefix(STAGE_ERROR).strip() for line in lines if line.startswith(STAGE_ERROR)
    ]
    said = handled[-1:] or raised_in(log)[-1:]
    mismatched = [line for line in lines if "MISMATCH" in line][:3]
    if said or mismatched:
        where = f"in {stages[-1]}: " if stages else ""
        return where + " | ".join(said + mismatched)
    dvcs = [line for line in lines if line.startswith("ERROR:")]
    return " | ".join(dvcs[-1:] or lines[-1:])


def raised_in(log: str) -> list[str]:
    """The exception line of every Python traceback in ``log`` (``ValueError: ...``): the
    first line after ``Traceback (most recent call last):`` that is not indented (the frames
    are). The last one is what was raised in the end (chained tracebacks come first)."""
    found, inside = [], False
    for line in log.splitlines():
        if line.strip() == TRACEBACK_START:
            inside = True
        elif inside and line.strip() and not line[0].isspace():
            found.append(line.strip())
            inside = False
    return found
