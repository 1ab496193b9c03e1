"""Pre-generation hook: refuse bad answers (the same rules cookiecutter.json already ran)."""

import json
import sys

# Every answer reaches this hook only as JSON data, never as code. The helpers' directory
# comes from the template's Jinja extension at render time, so no context (and no
# .cruft.json) ever stores a temporary path.
ANSWERS = json.loads(r""" {{ cookiecutter | tojson }} """)
HOOKS_DIR = json.loads(r""" {{ template_hooks_dir() | tojson }} """)


def main() -> int:
    sys.path.insert(0, HOOKS_DIR)
    import answer_rules

    problems = answer_rules.validate(ANSWERS)
    if problems:
        print(answer_rules.report(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
