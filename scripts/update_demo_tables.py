"""Write the demo tables a project can be baked with into the template (``make demo-tables``).

Like the locks, they are produced once, when the template is released, by the baked
package's own ``repro.demo_data`` (scikit-learn's bundled copies, and the seeded ``churn``
table), so baking needs neither scikit-learn nor numpy: it only moves one file into place.
A tier-2 test fails when the shipped copies differ from what the package writes today.
"""

import sys
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))

import answer_rules  # noqa: E402  (needs the hooks directory on the path)
import project_setup  # noqa: E402
from update_locks import render_without_hooks  # noqa: E402

DEMO_TABLES = TEMPLATE / "{{cookiecutter.project_slug}}" / project_setup.DEMO_TABLES_DIR


def write_tables(target: Path) -> list[Path]:
    """Every offered demo table, written by the package's own code into ``target``."""
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        project = render_without_hooks(Path(scratch), "3.11", "local", "logreg")
        demo_data = project_setup.import_project_module(
            project, "lock_placeholder", "repro.demo_data"
        )
        for name in answer_rules.CHOICES["dataset"]:
            written.append(demo_data.write_demo_table(target / f"{name}.csv", name))
        sys.path.remove(str(project))
        for module in [n for n in sys.modules if n.split(".")[0] == "lock_placeholder"]:
            del sys.modules[module]
    return written


if __name__ == "__main__":
    for path in write_tables(DEMO_TABLES):
        print(f"wrote {path.relative_to(TEMPLATE)}")
