"""``python -m <package> ...``: pin the process environment, then dispatch to the CLI."""

import sys

from . import determinism


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the command."""
    determinism.reexec_if_needed(__package__, sys.argv[1:])
    from .cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
