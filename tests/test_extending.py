"""Tier 3: a team adds a plot and a stage the way the baked README says (a stage: a module, a
block, `make deps`), and verify then compares each new output and fails, naming it, when it
differs between runs; the project's tests pass with the new stage, unedited; a stage left out
of verify's deps is refused by name until `make deps` adds it. Nothing of reproml is
edited."""

import json
import re

import pytest
import yaml
from conftest import bake, project_package, run
from test_end_to_end import Project, committed_first_run, restore_committed_state

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("extending")]

WORST_ROWS = '''

def worst_rows(result: Evaluation) -> str:
    """The test rows the model gets wrong, as (actual, predicted)."""
    wrong = [
        [actual, predicted]
        for actual, predicted in zip(result.actual.tolist(), result.predicted.tolist(), strict=True)
        if actual != predicted
    ]
    return _csv(["actual", "predicted"], wrong){extra}
'''

SUMMARY_STAGE = '''"""summary: how many rows the held-out table has."""

from pathlib import Path

from reproml.runtime.io import write_json

from ..config import ProjectConfig


def run(config: ProjectConfig) -> dict[str, Path]:
    import pyarrow.parquet as pq

    rows = pq.read_metadata(config.paths.test).num_rows
    return {{"summary": write_json("reports/summary.json", {{"rows": rows{extra}}})}}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return committed_first_run(bake(tmp_path_factory.mktemp("extending")))


def verify_report(project: Project) -> dict:
    return json.loads((project.path / "reports" / "verify.json").read_text())


def compared(project: Project) -> dict[str, str]:
    return {check["output"]: check["result"] for check in verify_report(project)["checks"]}


def add_a_plot(project: Project, extra: str = "") -> None:
    """One function and one line in evaluation.py, as the README's "Add a plot" says."""
    module = project.path / project_package(project.path) / "evaluation.py"
    text = module.read_text()
    marker = "\n\n# The plot tables of each task"
    text = text.replace(marker, WORST_ROWS.format(extra=extra).rstrip("\n") + "\n" + marker, 1)
    line = '    "classification": {\n'
    text = text.replace(line, line + '        "worst_rows": worst_rows,\n', 1)
    module.write_text(text)


def test_an_added_plot_is_compared_by_verify_and_a_difference_fails_it(project):
    try:
        add_a_plot(project)
        project.make("repro")
        table = project.path / "plots" / "tables" / "worst_rows.csv"
        assert table.read_text().startswith("actual,predicted\n")
        assert compared(project)["plots/tables/worst_rows.csv"] == "match"
        assert verify_report(project)["result"] == "match"
        run(["git", "checkout", "--", "."], cwd=project.path)

        # The same plot, but with the process id in it: another value in verify's rerun.
        add_a_plot(project, extra=" + f\"# {__import__('os').getpid()}\\n\"")
        failed = project.make("repro", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "failed to reproduce 'verify'" in said, said
        assert re.search(r"plots/tables/worst_rows\.csv\s+strict\s+MISMATCH", said), said
        assert "Traceback" not in said
    finally:
        run(["git", "clean", "-fdq", "--", "plots"], cwd=project.path)
        restore_committed_state(project)


def readme_stage_block(project: Project) -> str:
    """The dvc.yaml block of the README's "Add a stage", as written there."""
    readme = (project.path / "README.md").read_text()
    section = readme.split("### Add a stage", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def add_a_stage(project: Project, extra: str = "") -> None:
    """A module in stages/ and the README's block at the end of dvc.yaml's stages (after
    verify), as the README's "Add a stage" says; `make deps` does the rest."""
    package = project.path / project_package(project.path)
    (package / "stages" / "summary.py").write_text(SUMMARY_STAGE.format(extra=extra))
    text = run(["git", "show", "HEAD:dvc.yaml"], cwd=project.path).stdout
    end_of_stages = text.index("\n# How `dvc plots show`")
    block = readme_stage_block(project).rstrip("\n")
    text = text[:end_of_stages].rstrip("\n") + "\n\n" + block + "\n" + text[end_of_stages:]
    (project.path / "dvc.yaml").write_text(text)


def test_an_added_stage_is_two_files_and_make_deps_and_the_tests_pass(project):
    try:
        add_a_stage(project)
        left_out = project.make("repro", check=False)
        said = left_out.stdout + left_out.stderr
        assert left_out.returncode != 0, said
        assert "summary would not be verified" in said and "make deps" in said, said
        assert "Traceback" not in said

        # `make deps` writes the stage's code deps and puts its output in verify's deps.
        written = project.make("deps")
        assert "summary" in written.stdout and "verify" in written.stdout, written.stdout
        stages = yaml.safe_load((project.path / "dvc.yaml").read_text())["stages"]
        package = project_package(project.path)
        assert f"{package}/stages/summary.py" in stages["summary"]["deps"]
        assert "reports/summary.json" in stages["verify"]["deps"]
        project.make("repro")
        assert verify_report(project)["rerun"][-1] == "summary"
        assert compared(project)["reports/summary.json"] == "match"
        # The project's own tests read the stages and their outputs from dvc.yaml.
        tested = project.make("test", check=False)
        assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]

        # What `make deps` wrote it puts back when a line is taken out.
        dvc_yaml = project.path / "dvc.yaml"
        as_written = dvc_yaml.read_text()
        module = f"      - {package}/stages/summary.py\n"
        dvc_yaml.write_text(as_written.replace(module, "", 1))
        checked = project.make("deps", check=False)
        assert checked.returncode == 0 and "summary" in checked.stdout, checked.stdout
        assert dvc_yaml.read_text() == as_written

        # A stage whose output differs between runs fails verify, naming the output.
        extra = ', "pid": __import__("os").getpid()'
        stage = project.path / package / "stages" / "summary.py"
        stage.write_text(SUMMARY_STAGE.format(extra=extra))
        failed = project.make("repro", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0, said
        assert re.search(r"reports/summary\.json\s+strict\s+MISMATCH", said), said
    finally:
        run(["git", "clean", "-fdq", "--", "reports", project_package(project.path)], project.path)
        restore_committed_state(project)
