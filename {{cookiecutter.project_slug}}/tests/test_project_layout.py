"""dvc.yaml and the code agree: commands, outputs, code dependencies, pinned environment; the
machinery (reproml/) is apart from the team's package: dependencies go one way, and it names
no stage, plot or metric of the team's."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import PACKAGE, PROJECT_ROOT, machinery, project_module

launcher = machinery("runtime.launcher")
# The team's stages, each after those it depends on (params, the machinery's, runs first).
STAGES = [stage.name for stage in machinery("runtime.pipeline").read(PROJECT_ROOT).in_order()][1:]
RUNTIME = "reproml/runtime"


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
    """A stage depends on the team's modules it loads, listed, and on the runtime as one
    folder; it loads nothing else of the machinery (no tool command)."""
    code = {name: files for name, (files, _, _) in traced.items()}
    assert "sklearn" not in traced["params"][1]
    assert "sklearn" not in traced["prepare"][1]
    for name in ("prepare", "evaluate"):
        assert "hydra" not in traced[name][1], f"{name} imports Hydra, which it does not use"
    for name in ("params", *STAGES):
        machinery_loaded = {path for path in code[name] if path.startswith("reproml/")}
        assert all(path.startswith(RUNTIME + "/") for path in machinery_loaded), name
        assert RUNTIME in declared[name]["deps"], name
        declared_code = {dep for dep in declared[name]["deps"] if dep.startswith(PACKAGE + "/")}
        assert declared_code == code[name] - machinery_loaded, name


def test_the_runtime_imports_nothing_of_the_team_or_the_tools():
    """Dependencies go one way: the team's package uses the runtime, the tools use both."""
    import ast

    for path in sorted((PROJECT_ROOT / RUNTIME).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                # Relative imports stay inside runtime/ (one dot); absolute ones name libraries.
                assert node.level <= 1, (path, node.module)
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top != PACKAGE and not name.startswith("reproml.tools"), (path, name)


def _top_level(tree) -> dict:
    """``{name: node}`` of a module's functions, classes and assigned names."""
    import ast

    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found |= {target.id: node for target in targets if isinstance(target, ast.Name)}
    return found


def _runtime_imports(tree, inside_runtime: bool) -> dict[str, tuple[str, str | None]]:
    """``{local name: (runtime module, name, or None for the module itself)}``."""
    import ast

    bound = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            if not inside_runtime:
                continue
            module = node.module or ""
        elif (node.module or "").startswith("reproml.runtime"):
            module = node.module.removeprefix("reproml.runtime").lstrip(".")
        else:
            continue
        for alias in node.names:
            local = alias.asname or alias.name
            bound[local] = (module.split(".")[0], alias.name) if module else (alias.name, None)
    return bound


def _references(nodes, bound: dict, module: str | None) -> set[tuple[str, str]]:
    """The runtime ``(module, name)`` pairs ``nodes`` use: imported names, ``module.name``
    attributes, and (inside runtime) the module's own names."""
    import ast

    found = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                hit = bound.get(node.value.id)
                if hit and hit[1] is None:
                    found.add((hit[0], node.attr))
            elif isinstance(node, ast.Name):
                hit = bound.get(node.id)
                if hit and hit[1] is not None:
                    found.add(hit)
                elif module is not None:
                    found.add((module, node.id))
    return found


def test_every_public_runtime_name_is_reached_from_the_teams_code():
    """runtime/ is a dependency of every stage, so it holds only what a stage runs: a name
    only the tools use belongs in tools/, where changing it retrains nothing. Reached means:
    used by the team's package, or by a runtime name that is, or run when a reached runtime
    module is imported."""
    import ast

    modules = {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted((PROJECT_ROOT / RUNTIME).glob("*.py"))
    }
    names = {module: _top_level(tree) for module, tree in modules.items()}
    bound = {
        module: _runtime_imports(tree, inside_runtime=True) for module, tree in modules.items()
    }
    reached: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = []

    def reach(found: set[tuple[str, str]]) -> None:
        for module, name in found:
            if name in names.get(module, {}) and (module, name) not in reached:
                reached.add((module, name))
                todo.append((module, name))

    for path in sorted((PROJECT_ROOT / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        reach(_references([tree], _runtime_imports(tree, inside_runtime=False), None))
    imported: set[str] = set()
    while todo:
        module, name = todo.pop()
        if module not in imported:
            imported.add(module)
            definitions = tuple(names[module].values())
            on_import = [node for node in modules[module].body if node not in definitions]
            reach(_references(on_import, bound[module], module))
        reach(_references([names[module][name]], bound[module], module))
    unreached = sorted(
        f"{RUNTIME}/{module}.py: {name}"
        for module, found in names.items()
        for name in found
        if not name.startswith("_") and (module, name) not in reached
    )
    assert not unreached, "only the tools use these; move them to reproml/tools:\n" + "\n".join(
        unreached
    )


# Words a machinery file uses for something else: ssh-keygen's `-Y verify` verb, git's own
# subcommands, and the runtime's verify function (deps.py finds the stages that call it).
SAME_WORD_ELSEWHERE = {
    "reproml/tools/signing.py": {"verify"},
    "reproml/tools/ci_sweep.py": {"verify"},
    "reproml/tools/deps.py": {"verify"},
}


def test_the_machinery_names_no_stage_plot_or_metric_of_the_teams(traced, module_workspace):
    """What reproml/ needs of the pipeline it reads from dvc.yaml: a stage, a plot table or a
    metric of the team's named in its code would be one more place to keep in step."""
    import re

    paths = yaml.safe_load((module_workspace / "params.yaml").read_text())["paths"]
    metrics = json.loads((module_workspace / paths["metrics"]).read_text())
    evaluation = project_module("evaluation")
    names = {*STAGES, *metrics, *(n for plots in evaluation.PLOTS.values() for n in plots)}
    names -= {"params"}  # the machinery's own stage
    for path in sorted((PROJECT_ROOT / "reproml").rglob("*.py")):
        where = path.relative_to(PROJECT_ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for name in sorted(names - SAME_WORD_ELSEWHERE.get(where, set())):
            quoted = re.search(rf"""["']{re.escape(name)}["']""", text)
            assert quoted is None, f"{where} names {name!r}"


def test_every_machinery_file_says_the_template_maintains_it():
    for path in sorted((PROJECT_ROOT / "reproml").rglob("*.py")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Maintained by the reproml template: `cruft update`"), path


def test_stages_depend_on_the_runtime_lock_not_the_tool_lock(declared):
    for name in STAGES:
        assert {"runtime.lock", ".python-version"} <= declared[name]["deps"]
        assert "uv.lock" not in declared[name]["deps"]


def tool_environment(env: dict) -> str:
    """What `python -m reproml env` prints when started with ``env``."""
    command = [sys.executable, "-m", "reproml", "env"]
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
    """dvc runs `python -m ...` with whatever python is on PATH; the stage must still run in
    the project's .venv."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run inside a virtual environment")
    base = sys._base_executable
    venv_python = PROJECT_ROOT / ".venv" / "bin" / "python"
    if os.path.realpath(sys.executable) != os.path.realpath(venv_python):
        pytest.skip("the tests do not run in the project's .venv")
    result = subprocess.run(
        [base, "-m", "reproml", "env"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"interpreter={venv_python}" in result.stdout.splitlines()


def test_the_registry_artifact_is_the_model_the_pipeline_writes():
    """dvc.yaml's `artifacts:` cannot interpolate, so its path is written twice; they agree."""
    artifacts = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]
    paths = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["paths"]
    models = [spec for spec in artifacts.values() if spec.get("type") == "model"]
    assert [spec["path"] for spec in models] == [paths["model"]]


def test_bytecode_is_not_part_of_the_runtime_dependency():
    """reproml/runtime is hashed as one folder: the bytecode Python writes there must not count,
    or a fresh clone (which has none) would see every stage as changed."""
    from dvc.repo import Repo

    with Repo(str(PROJECT_ROOT)) as repo:
        folder = PROJECT_ROOT / RUNTIME
        assert repo.dvcignore.is_ignored(repo.fs, str(folder / "__pycache__" / "io.cpython.pyc"))
        assert not repo.dvcignore.is_ignored(repo.fs, str(folder / "io.py"))


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
