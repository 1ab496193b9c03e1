"""Post-generation hook: lock files, dataset, params.yaml, then git and DVC repositories."""

import json
import sys
from pathlib import Path

# Every answer reaches this hook only as JSON data, never as code.
ANSWERS = json.loads(r""" {{ cookiecutter | tojson }} """)


def main() -> int:
    sys.path.insert(0, ANSWERS["__hooks_dir"])
    import project_setup

    try:
        project_setup.bake(Path.cwd(), ANSWERS)
    except project_setup.BakeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
