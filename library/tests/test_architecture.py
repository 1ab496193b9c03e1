"""The library's shape, checked against the starter the template bakes (its team package and
dvc.yaml, read as source, no bake): dependencies go one way, the runtime holds only what a
stage runs, the machinery names nothing of the team's, and the wheels a project installs are
built from this source."""

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
RUNTIME = REPOSITORY / "library" / "runtime" / "src" / "reproml" / "runtime"
TOOLS = REPOSITORY / "library" / "tools" / "src" / "reproml" / "tools"
STARTER = REPOSITORY / "{{cookiecutter.project_slug}}"
TEAM_PACKAGE = STARTER / "{{cookiecutter.package_name}}"
WHEELS = STARTER / "wheels"


def modules(folder: Path) -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.py"))
    }


def imported(tree: ast.Module) -> list[tuple[int, str]]:
    """``(level, module)`` of every import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
    return found


def test_the_runtime_imports_nothing_of_the_tools_or_of_a_team():
    """The team's package uses the runtime and the tools use both, never the other way."""
    for name, tree in modules(RUNTIME).items():
        for level, module in imported(tree):
            # Relative imports stay inside runtime/ (one dot); absolute ones name libraries.
            assert level <= 1, (name, module)
            assert not module.startswith("reproml.tools"), (name, module)
            assert not module.startswith("reproml.") or module.startswith("reproml.runtime")


def test_the_tools_import_only_the_runtime_and_each_other_of_reproml():
    """The tools use the runtime (``..runtime``) and their own modules (``.x``); they reach
    the team's package only through the contract its ``__main__`` hands over (settings.team)."""
    for name, tree in modules(TOOLS).items():
        for level, module in imported(tree):
            assert level in (0, 1, 2), (name, module)
            assert level != 2 or module.startswith("runtime"), (name, module)
            assert (
                level
                or not module.startswith("reproml.")
                or module.startswith(("reproml.runtime", "reproml.tools"))
            ), (name, module)


def _top_level(tree: ast.Module) -> dict[str, ast.AST]:
    """``{name: node}`` of a module's functions, classes and assigned names."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found |= {target.id: node for target in targets if isinstance(target, ast.Name)}
    return found


def _runtime_imports(tree: ast.Module, inside_runtime: bool) -> dict[str, tuple[str, str | None]]:
    """``{local name: (runtime module, name, or None for the module itself)}``."""
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


def test_the_command_line_is_a_table_and_argument_parsing_only():
    """cli.py parses and dispatches; each command's behaviour is a ``run_<command>`` of the
    module whose job it is, imported only when the command runs (so `reproml registry`
    loads no rebuild code, and a new command is a row and a function)."""
    tree = modules(TOOLS)["cli"]
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert functions == {"option", "parser", "refuse_option_like", "handler", "main"}
    top_level_imports = {module for level, module in imported(tree) if level == 0}
    assert top_level_imports <= {"argparse", "importlib", "sys"}
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "COMMANDS"
    )
    for entry in table.values:
        module, function = entry.elts[0].value.split(":")
        defined = {node.name: node for node in modules(TOOLS)[module].body if hasattr(node, "name")}
        assert function.startswith("run_") and isinstance(defined[function], ast.FunctionDef)
        assert ast.get_docstring(defined[function]), f"{module}.{function} says what it is for"


def test_the_team_contract_is_declared_once_and_the_starter_hands_all_of_it_over():
    """runtime/team.py declares what the tools need of a team's package; the starter's
    ``__main__`` gives every field of it, and no tool imports the team's code another way."""
    from reproml.runtime.team import Team

    main = ast.parse((TEAM_PACKAGE / "__main__.py").read_text(encoding="utf-8"))
    handed = [
        node
        for node in ast.walk(main)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Team"
    ]
    assert len(handed) == 1
    assert sorted(keyword.arg for keyword in handed[0].keywords) == sorted(
        Team.__dataclass_fields__
    )
    for name, tree in modules(TOOLS).items():
        dynamic = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_module"
        ]
        # cli.py imports a command's handler from this package (``__package__``), nothing else.
        own = [
            node
            for node in dynamic
            if name == "cli" and [getattr(a, "id", None) for a in node.args[1:]] == ["__package__"]
        ]
        assert name == "settings" or dynamic == own, (name, [node.lineno for node in dynamic])


def test_every_public_runtime_name_is_reached_from_the_starters_code():
    """The runtime is pinned in runtime.lock, a dependency of every stage, so it holds only
    what a stage runs: a name only the tools use belongs in the tools, where changing it
    retrains nothing. Reached means: used by the starter's team package, or by a runtime name
    that is, or run when a reached runtime module is imported."""
    trees = modules(RUNTIME)
    names = {module: _top_level(tree) for module, tree in trees.items()}
    bound = {module: _runtime_imports(tree, inside_runtime=True) for module, tree in trees.items()}
    reached: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = []

    def reach(found: set[tuple[str, str]]) -> None:
        for module, name in found:
            if name in names.get(module, {}) and (module, name) not in reached:
                reached.add((module, name))
                todo.append((module, name))

    for path in sorted(TEAM_PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        reach(_references([tree], _runtime_imports(tree, inside_runtime=False), None))
    imported_modules: set[str] = set()
    while todo:
        module, name = todo.pop()
        if module not in imported_modules:
            imported_modules.add(module)
            definitions = tuple(names[module].values())
            on_import = [node for node in trees[module].body if node not in definitions]
            reach(_references(on_import, bound[module], module))
        reach(_references([names[module][name]], bound[module], module))
    unreached = sorted(
        f"reproml/runtime/{module}.py: {name}"
        for module, found in names.items()
        for name in found
        if not name.startswith("_") and (module, name) not in reached
    )
    assert not unreached, "only the tools use these; move them to reproml.tools:\n" + "\n".join(
        unreached
    )


def _starter_names() -> set[str]:
    """The starter's stage names (dvc.yaml), plot names (evaluation.PLOTS) and metric names
    (evaluation.METRIC_RANGES, and the counts evaluate adds)."""
    dvc_yaml = (STARTER / "dvc.yaml").read_text(encoding="utf-8")
    stages = dvc_yaml.split("\nstages:\n", 1)[1].split("\n\n# ", 1)[0]
    names = set(re.findall(r"^  ([a-z_]+):\n", stages, flags=re.MULTILINE)) - {"params"}
    tree = ast.parse((TEAM_PACKAGE / "evaluation.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "PLOTS":
                names |= {
                    key.value
                    for inner in node.value.values
                    if isinstance(inner, ast.Dict)
                    for key in inner.keys
                    if isinstance(key, ast.Constant)
                }
            elif node.targets[0].id == "METRIC_RANGES":
                names |= {
                    found.value
                    for found in ast.walk(node.value)
                    if isinstance(found, ast.Constant) and isinstance(found.value, str)
                }
    return names | {"n_test", "per_class"}


# Words a machinery file uses for something else: ssh-keygen's `-Y verify` verb, git's own
# subcommands, and the runtime's verify function (deps.py finds the stages that call it).
SAME_WORD_ELSEWHERE = {
    "tools/signing.py": {"verify"},
    "tools/ci_sweep.py": {"verify"},
    "tools/deps.py": {"verify"},
}


def test_the_machinery_names_no_stage_plot_or_metric_of_the_starter():
    """What the machinery needs of a pipeline it reads from dvc.yaml: a stage, a plot table or
    a metric of the team's named in its code would be one more place to keep in step."""
    names = _starter_names()
    assert {"train", "verify", "confusion", "accuracy", "rmse"} <= names
    for folder in (RUNTIME, TOOLS):
        for path in sorted(folder.glob("*.py")):
            where = f"{folder.name}/{path.name}"
            text = path.read_text(encoding="utf-8")
            for name in sorted(names - SAME_WORD_ELSEWHERE.get(where, set())):
                quoted = re.search(rf"""["']{re.escape(name)}["']""", text)
                assert quoted is None, f"{where} names {name!r}"


def _uv() -> str:
    """The template's pinned uv (`make bootstrap`), as make passes it, else one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    pinned = REPOSITORY / ".bootstrap" / "bin" / "uv"
    assert found or pinned.is_file(), "no uv: `make bootstrap` installs it in .bootstrap/"
    return found or str(pinned)


@pytest.mark.parametrize("distribution", ["runtime", "tools"])
def test_the_wheels_a_project_installs_are_built_from_this_source(tmp_path, distribution):
    """uv's build backend writes the same bytes from the same source, so the wheel in the
    starter's wheels/ must be exactly a fresh build: `make wheels` after editing library/."""
    built = subprocess.run(
        [
            _uv(),
            "build",
            "--quiet",
            "--wheel",
            "--offline",
            "--out-dir",
            str(tmp_path),
            str(REPOSITORY / "library" / distribution),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    shipped = WHEELS / wheel.name
    assert shipped.is_file(), f"{shipped} is missing: run `make wheels`"
    assert shipped.read_bytes() == wheel.read_bytes(), f"{shipped} is stale: run `make wheels`"


def test_every_shipped_lock_set_pins_the_shipped_wheels():
    """A bake installs from the shipped locks, offline and hash-checked: each must pin the
    wheels in wheels/ as they are (`make locks` after `make wheels`), in uv.lock and in the
    exports, the runtime's in runtime.lock and the tools' not (a tool retrains nothing)."""
    import hashlib
    import tomllib

    digests = {
        wheel.name: f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        for wheel in WHEELS.glob("*.whl")
    }
    version = {
        tomllib.loads((REPOSITORY / "library" / part / "pyproject.toml").read_text())["project"][
            "version"
        ]
        for part in ("runtime", "tools")
    }
    assert len(version) == 1, "both distributions carry one version"
    (version,) = version
    tools = tomllib.loads((REPOSITORY / "library/tools/pyproject.toml").read_text())["project"]
    assert tools["dependencies"] == [f"reproml-runtime=={version}"]
    assert sorted(digests) == [
        f"reproml-{version}-py3-none-any.whl",
        f"reproml_runtime-{version}-py3-none-any.whl",
    ]
    starter = (STARTER / "pyproject.toml").read_text()
    assert f'"reproml-runtime=={version}"' in starter and f'"reproml=={version}"' in starter
    sets = sorted((STARTER / ".locks").iterdir())
    assert len(sets) > 1
    for lock_set in sets:
        packages = tomllib.loads((lock_set / "uv.lock").read_text())["package"]
        pinned = {
            wheel["filename"]: wheel["hash"]
            for package in packages
            if str(package.get("source", {}).get("path", "")).startswith("wheels/")
            for wheel in package["wheels"]
        }
        assert pinned == digests, f"{lock_set.name}: run `make locks`"
        runtime = (lock_set / "runtime.lock").read_text()
        assert digests[f"reproml_runtime-{version}-py3-none-any.whl"] in runtime
        assert f"reproml-{version}-py3-none-any.whl" not in runtime, lock_set.name
