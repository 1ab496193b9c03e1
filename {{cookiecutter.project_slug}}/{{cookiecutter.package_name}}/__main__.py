"""``python -m <package> stage <name>...``: what dvc.yaml runs. reproml's launcher pins the
process environment first; the tool commands are ``reproml <command>``, which no stage
imports, and they reach this package only through ``team()`` below."""

import os
import sys
from pathlib import Path

_MOVED = "_REPRO_INTO_VENV"


def _into_project_environment() -> None:
    """DVC runs ``python`` from PATH, which may be another Python than the project's, one
    without reproml: start again with the project's .venv (a DVC experiment's copy of the
    project, under .dvc/tmp/exps/, uses the repository's), once, or say how to make one."""
    here = Path(__file__).resolve().parents[1]
    roots = [here]
    if ".dvc" in here.parts:
        roots.append(Path(*here.parts[: here.parts.index(".dvc")]))
    for root in roots:
        python = root / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if python.is_file() and not os.environ.get(_MOVED):
            os.environ[_MOVED] = "1"
            os.execv(python, [str(python), "-m", __package__, *sys.argv[1:]])
    sys.exit(f"error: {sys.executable} has no reproml: run `make setup` (the project's .venv).")


def team():
    """What the tool commands need of this package (reproml.runtime.team.Team): imported when
    a tool asks, so no stage loads a module it does not use."""
    from reproml.runtime.team import Team

    from .config import DEFAULT_DATE_PARTS, load_params, validate
    from .evaluation import LOWER_IS_BETTER, PRIMARY_SCORE, predicted_scores
    from .models import build
    from .predict import predict

    return Team(
        load_params=load_params,
        validate=validate,
        build=build,
        predict=predict,
        date_parts=DEFAULT_DATE_PARTS,
        score=predicted_scores,
        lower_is_better=LOWER_IS_BETTER,
        primary_score=PRIMARY_SCORE,
    )


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the stages."""
    try:
        from reproml.runtime import launcher
    except ModuleNotFoundError:
        _into_project_environment()
    os.environ.pop(_MOVED, None)
    launcher.reexec_if_needed(__package__, sys.argv[1:])
    from reproml.runtime.stage import main as run_stages

    from .config import load_params

    return run_stages(sys.argv[1:], load_config=load_params, stages=f"{__package__}.stages")


if __name__ == "__main__":
    sys.exit(main())
