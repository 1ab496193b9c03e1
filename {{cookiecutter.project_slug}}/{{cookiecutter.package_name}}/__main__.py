"""``python -m <package> ...``: pin the process environment, then run a pipeline stage or a
tool command. Stages never import the tool commands (repro/cli.py)."""

import sys

from .repro import launcher


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the command."""
    launcher.reexec_if_needed(__package__, sys.argv[1:])
    if sys.argv[1:2] == ["stage"]:
        from .repro.stage import main as entry
    else:
        from .repro.cli import main as entry
    return entry(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
