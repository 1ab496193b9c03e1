"""dvc.yaml and the code agree: commands, outputs, code dependencies, pinned environment; the
stages import reproml's runtime and never its tools. (The machinery's own shape, that its
imports go one way and it names nothing of the team's, is tested with the library.)"""

import os
import subprocess
import sys

import pytest
import yaml
from conftest import PACKAGE, PROJECT_ROOT, machinery

launcher = machinery("runtime.launcher")
# The team's stages, each after those it depends on (params, the machinery's, runs first).
STAGES = [stage.name for stage in machinery("runtime.pipeline").read(PROJECT_ROOT).in_order()][1:]


def declared_stages():
    """dvc.yaml with ${...} resolved from params.yaml, as DVC resolves it."""
    from dvc.repo import Repo

    with Repo(str(PROJECT_ROOT)) as repo:
        return {
            stage.name: {
                "cmd": stage.cmd,
                "deps": {os.path.relpath(dep.fs_path, PROJECT_ROOT) for dep in stage.deps},
                "outs": {os.path.relpath(out.fs_path, PROJECT_ROOT) for out in stage.outs},
            }
            for stage in repo.index.stages
            if getattr(stage, "name", None)
        }


@pytest.fixture(scope="module")
def declared():
    return declared_stages()


def run_and_trace(workspace, stage: str):
    """Run ``python -m <package> stage <stage>`` in a child, as `make deps` traces it: the
    package and machinery files it loaded, the heavy libraries it imported, and the outputs it
    reported."""
    code, heavy, printed = machinery("tools.deps").trace(workspace, PROJECT_ROOT, PACKAGE, stage)
    outputs = {line.split(" -> ", 1)[1] for line in printed.splitlines() if " -> " in line}
    return code, heavy, outputs


@pytest.fixture(scope="module")
def traced(module_workspace):
    """Every stage run once, in order, each in its own process as DVC runs it."""
    runs = {"params": run_and_trace(module_workspace, "params")}
    for name in STAGES:
        runs[name] = run_and_trace(module_workspace, name)
    return runs


def test_every_stage_is_one_cli_call(declared):
    assert set(declared) == {"params", *STAGES}
    assert declared["params"]["cmd"] == f"python -m {PACKAGE} stage params"
    for name in STAGES:
        assert declared[name]["cmd"] == f"python -m {PACKAGE} stage {name}"


def test_declared_outputs_are_what_the_code_writes(declared, traced):
    paths = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["paths"]
    assert declared["params"]["outs"] == {paths["params_check"]}
    for name in STAGES:
        assert declared[name]["outs"] == traced[name][2], name


def test_declared_code_dependencies_are_exactly_the_modules_each_stage_loads(declared, traced):
    """A stage depends on the team's modules it loads, listed (the tracer refuses a stage that
    imports a tool command); reproml's runtime comes in through runtime.lock."""
    code = {name: files for name, (files, _, _) in traced.items()}
    assert "sklearn" not in traced["params"][1]
    assert "sklearn" not in traced["prepare"][1]
    for name in ("prepare", "evaluate"):
        assert "hydra" not in traced[name][1], f"{name} imports Hydra, which it does not use"
    for name in ("params", *STAGES):
        assert "runtime.lock" in declared[name]["deps"], name
        declared_code = {dep for dep in declared[name]["deps"] if dep.startswith(PACKAGE + "/")}
        assert declared_code == code[name], name


def test_stages_depend_on_the_runtime_lock_not_the_tool_lock(declared):
    for name in STAGES:
        assert {"runtime.lock", ".python-version"} <= declared[name]["deps"]
        assert "uv.lock" not in declared[name]["deps"]


def tool_environment(env: dict) -> str:
    """What `python -m reproml.tools env` prints when started with ``env``."""
    command = [sys.executable, "-m", "reproml.tools", "env"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_entry_point_pins_the_environment_before_work_starts():
    hostile = dict(os.environ)
    hostile.update(
        PYTHONHASHSEED="random",
        OMP_NUM_THREADS="7",
        TZ="Asia/Tokyo",
        LC_ALL="de_DE.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
    )
    seen = dict(line.split("=", 1) for line in tool_environment(hostile).splitlines())
    assert seen.pop("interpreter") == sys.executable
    assert seen == launcher.PINNED_ENV
    hostile[launcher.OPT_OUT_VARIABLE] = "as-is"
    assert "TZ=Asia/Tokyo" in tool_environment(hostile).splitlines()


def test_entry_point_moves_into_the_project_environment():
    """dvc runs `python -m ...` with whatever python is on PATH, which may have no reproml; the
    stage must still run in the project's .venv (here it says the stage does not exist, which
    only reproml's stage runner, in .venv, can say)."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run inside a virtual environment")
    base = sys._base_executable
    venv_python = PROJECT_ROOT / ".venv" / "bin" / "python"
    if os.path.realpath(sys.executable) != os.path.realpath(venv_python):
        pytest.skip("the tests do not run in the project's .venv")
    result = subprocess.run(
        [base, "-m", PACKAGE, "stage", "no_such_stage"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "no stage 'no_such_stage'" in result.stderr, result.stderr


def test_the_registry_artifact_is_the_model_the_pipeline_writes():
    """dvc.yaml's `artifacts:` cannot interpolate, so its path is written twice; they agree."""
    artifacts = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]
    paths = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["paths"]
    models = [spec for spec in artifacts.values() if spec.get("type") == "model"]
    assert [spec["path"] for spec in models] == [paths["model"]]


README_MOST_LINES = 250


def test_the_readme_is_a_short_tutorial_whose_reference_links_resolve():
    """The README is the tutorial; the reference is in docs/, linked from it. Every relative
    link of the README and of each page leads to a file here, and every page is linked."""
    import re

    readme = PROJECT_ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= README_MOST_LINES
    pages = sorted((PROJECT_ROOT / "docs").glob("*.md"))
    linked = set()
    for page in [readme, *pages]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            found = (page.parent / target).resolve()
            assert found.exists(), f"{page.name} links to {target}, which is not here"
            linked.add(found)
    assert [page.name for page in pages if page.resolve() not in linked] == []


def test_the_readmes_map_of_where_things_live_matches_the_tree():
    """Every path the README's "Where things live" table names exists (a file, or a folder
    whose files the row describes), and every module of the team's package is on the map."""
    import re

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    named = set()
    for row in (line for line in section.splitlines() if line.startswith("| `")):
        first = row.split("|")[1]
        paths = re.findall(r"`([^`]+)`", first)
        folder = paths[0].rsplit("/", 1)[0] + "/" if "/" in paths[0].rstrip("/") else ""
        for path in paths:
            full = path if "/" in path.rstrip("/") else folder + path
            if "<name>" in full:
                full = full.split("<name>")[0]
            assert (PROJECT_ROOT / full).exists(), f"README names {full}, which is not here"
            named.add(full.rstrip("/"))
    modules = {
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in (PROJECT_ROOT / PACKAGE).glob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    assert modules - named == set(), "modules the README's map leaves out"
