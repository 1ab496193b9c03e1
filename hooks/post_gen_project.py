"""Post-generation hook: lock files, dataset, params.yaml, then git and DVC repositories."""

import json
import sys
from pathlib import Path

# Every answer reaches this hook only as JSON data, never as code. The helpers' directory
# comes from the template's Jinja extension at render time, so no context (and no
# .cruft.json) ever stores a temporary path.
ANSWERS = json.loads(r""" {{ cookiecutter | tojson }} """)
HOOKS_DIR = json.loads(r""" {{ template_hooks_dir() | tojson }} """)


def main() -> int:
    sys.path.insert(0, HOOKS_DIR)
    import project_setup

    try:
        project_setup.bake(Path.cwd(), ANSWERS)
    except project_setup.BakeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
