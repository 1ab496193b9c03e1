"""Pre-generation hook: refuse bad answers (the same rules cookiecutter.json already ran)."""

import json
import sys

# Every answer reaches this hook only as JSON data, never as code.
ANSWERS = json.loads(r""" {{ cookiecutter | tojson }} """)


def main() -> int:
    sys.path.insert(0, ANSWERS["__hooks_dir"])
    import answer_rules

    problems = answer_rules.validate(ANSWERS)
    if problems:
        print(answer_rules.report(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
