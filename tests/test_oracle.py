"""Tier 3: the plain library is the oracle. For every model family, on every demo table of
every task the family has (binary, multiclass, regression, and a multiclass table with string
labels), the pipeline's own stages (prepare, train, evaluate, run in-process by
library_oracle.py inside a baked project's environment) give the test predictions and metrics
that a plain script gives by calling the library directly on the same split rows with the same
parameters and seed, scored by scikit-learn's own metrics: labels exactly, probabilities and
numbers within float tolerance. One bake per library, not per combination: the combinations
differ only in the table and model file the project's own code is handed. The scikit-learn
families are checked here; each other library's in the bake of its family test
(test_model_families.py), which then trains, verifies and rebuilds it."""

import csv
import json
import os

import pytest
import yaml
from conftest import CHOICES, TEMPLATE, bake, run
from project_setup import MODEL_LIBRARIES

pytestmark = pytest.mark.slow

PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
DEMO_TABLES = PROJECT_TEMPLATE / ".demo_tables"
ORACLE = TEMPLATE / "tests" / "library_oracle.py"
# The families of each library: one environment (bake) serves them all.
LIBRARIES: dict[str, list[str]] = {}
for family in CHOICES["model"]:
    LIBRARIES.setdefault(MODEL_LIBRARIES.get(family, "sklearn"), []).append(family)
# A multiclass table whose labels are names, not codes: wine's classes by cultivar.
NAMED_CLASSES = {"0": "barolo", "1": "grignolino", "2": "barbera"}


def named_wine(folder) -> tuple[str, dict]:
    """wine.csv with its classes as names, and its schema (label: string)."""
    path = folder / "wine_named.csv"
    with (DEMO_TABLES / "wine.csv").open(newline="") as source, path.open("w", newline="") as out:
        rows = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=rows.fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "target": NAMED_CLASSES[row["target"]]})
    schema = yaml.safe_load((PROJECT_TEMPLATE / "conf/data/wine.yaml").read_text())
    schema.update(name="wine_named", file="wine_named.csv", label="string")
    return str(path), schema


def tables_and_tasks(project, folder) -> tuple[dict[str, str], dict[str, str]]:
    """Every demo table (and the named one), its schema put in the project's conf/data."""
    tables, tasks = {}, {}
    for schema_file in sorted((PROJECT_TEMPLATE / "conf/data").glob("*.yaml")):
        schema = yaml.safe_load(schema_file.read_text())
        (project / "conf/data" / schema_file.name).write_text(schema_file.read_text())
        tables[schema["name"]], tasks[schema["name"]] = (
            str(DEMO_TABLES / schema["file"]),
            schema["task"],
        )
    path, schema = named_wine(folder)
    (project / "conf/data/wine_named.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    tables["wine_named"], tasks["wine_named"] = path, schema["task"]
    return tables, tasks


def family_tasks(family: str) -> set[str]:
    text = (PROJECT_TEMPLATE / "conf/model" / f"{family}.yaml").read_text()
    return set(yaml.safe_load(text.replace("{{ cookiecutter.package_name }}", "pkg"))["_by_task_"])


def assert_every_family_agrees_with_its_library(project, families: list[str], folder) -> None:
    """Run library_oracle.py in ``project``'s environment for ``families`` on every demo table
    of a task they have; fail naming each family, table and difference. The demo schemas it
    puts in the project's conf/data are removed again."""
    before = set((project / "conf/data").iterdir())
    try:
        tables, tasks = tables_and_tasks(project, folder)
        spec = {"families": families, "tables": tables, "work": str(folder / "oracle")}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        result = run([".venv/bin/python", str(ORACLE), json.dumps(spec)], cwd=project, env=env)
    finally:
        for path in set((project / "conf/data").iterdir()) - before:
            path.unlink()
    checked = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    expected = {
        (family, table)
        for family in families
        for table in tables
        if tasks[table] in family_tasks(family)
    }
    assert {(line["family"], line["table"]) for line in checked} == expected
    wrong = {f"{line['family']} on {line['table']}": line["differences"] for line in checked}
    assert not {name: found for name, found in wrong.items() if found}, json.dumps(wrong, indent=1)


def test_every_scikit_learn_family_scores_what_scikit_learn_scores(tmp_path):
    """The scikit-learn families share one environment; the other libraries' families are
    checked in the bake their own tier-3 test makes (test_model_families.py)."""
    families = LIBRARIES["sklearn"]
    project = bake(tmp_path, model=families[0], dataset="wine")
    assert_every_family_agrees_with_its_library(project, families, tmp_path)
    # Every other family is a library's own, checked in its family test.
    assert sorted(set(LIBRARIES) - {"sklearn"}) == sorted(set(MODEL_LIBRARIES.values()))
