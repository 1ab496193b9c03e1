"""``reproml <command>`` (or ``python -m reproml.tools``): the tool commands (params, data,
rebuild, release, report, ...) that a project's make targets call. Stages never import them,
so a new version of them retrains nothing."""

import sys

from reproml.runtime import launcher


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the command."""
    launcher.reexec_if_needed("reproml.tools", sys.argv[1:])
    from .cli import main as entry

    return entry(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
