"""Write the demo tables a project can be baked with into the template (``make demo-tables``).

Like the locks, they are produced once, when the template is released, by the template's
``tests/demo_data.py`` (scikit-learn's bundled copies, and the seeded ``churn`` table), so
baking needs neither scikit-learn nor numpy: it only moves one file into place.
A tier-2 test fails when the shipped copies differ from what that module writes today.
"""

import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))

import answer_rules  # noqa: E402  (needs the hooks directory on the path)
import project_setup  # noqa: E402

DEMO_TABLES = TEMPLATE / "{{cookiecutter.project_slug}}" / project_setup.DEMO_TABLES_DIR
# The mixed-type table a baked project's own tests read (prepare and model bytes on every kind
# of column), shipped in its tests/ since demo_data.py is the template's, not the project's.
MIXED_FIXTURE = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests" / "fixtures" / "mixed.csv"


def _demo_data():
    sys.path.insert(0, str(TEMPLATE / "tests"))
    try:
        import demo_data
    finally:
        sys.path.remove(str(TEMPLATE / "tests"))
    return demo_data


def write_tables(target: Path) -> list[Path]:
    """Every offered demo table, written by tests/demo_data.py into ``target``."""
    demo_data = _demo_data()
    return [
        demo_data.write_demo_table(target / f"{name}.csv", name)
        for name in answer_rules.CHOICES["dataset"]
    ]


def write_fixture(path: Path) -> Path:
    """The project tests' mixed-type table (MIXED_FIXTURE)."""
    demo_data = _demo_data()
    return demo_data.write_csv(path, *demo_data.churn_columns(400, seed=3))


if __name__ == "__main__":
    for path in [*write_tables(DEMO_TABLES), write_fixture(MIXED_FIXTURE)]:
        print(f"wrote {path.relative_to(TEMPLATE)}")
