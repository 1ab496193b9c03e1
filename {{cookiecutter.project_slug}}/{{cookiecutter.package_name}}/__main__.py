"""``python -m <package> stage <name>...``: what dvc.yaml runs. The machinery's launcher pins
the process environment first; the tool commands are ``python -m reproml``, which no stage
imports."""

import sys

from reproml.runtime import launcher


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the stages."""
    launcher.reexec_if_needed(__package__, sys.argv[1:])
    from reproml.runtime.stage import main as run_stages

    from .config import load_params

    return run_stages(sys.argv[1:], load_config=load_params, stages=f"{__package__}.stages")


if __name__ == "__main__":
    sys.exit(main())
