# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""``python -m reproml <command>``: the tool commands (params, data, rebuild, release, report,
...) that the make targets call. Stages never import them, so editing one retrains nothing."""

import sys

from .runtime import launcher


def main() -> int:
    """Re-execute pinned and in the project's .venv if needed, then run the command."""
    launcher.reexec_if_needed(__package__, sys.argv[1:])
    from .tools.cli import main as entry

    return entry(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
