"""`make deps`: each stage's code dependencies in dvc.yaml, written from what the stage loads
when it runs (the import tracer the project's tests use too), so the lists of the team's
modules are never kept by hand. reproml's runtime is installed, pinned in runtime.lock, which
every stage depends on. A verify stage also gets an output of every stage it would otherwise
not rerun, so that a new stage is a module and a block. dvc.yaml is rewritten through a YAML
round trip that keeps comments."""

import argparse
import ast
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ..runtime.environment import PYTHON_VERSION_FILE, RUNTIME_LOCK
from ..runtime.errors import ConfigError
from ..runtime.launcher import PROJECT_ROOT, pinned_environment
from ..runtime.pipeline import DVC_YAML, Pipeline
from ..runtime.pipeline import read as read_pipeline
from ..runtime.proc import run
from ..runtime.verification import copy_inputs
from .settings import team_package

# What older projects listed for the machinery when it was a folder beside the package: a
# line `make deps` takes out (runtime.lock pins the installed runtime now).
FOLDER_RUNTIME = "reproml/runtime"
# What every stage that runs a model depends on besides its code: the runtime packages' lock
# and the interpreter's version. Outputs a verify stage must compare go before them.
ENVIRONMENT = (RUNTIME_LOCK, PYTHON_VERSION_FILE)
# Run as `python -c TRACER <code root> <package> stage <name>` in a copy of the pipeline:
# the stage runs, then prints the files of the package it loaded, the heavy libraries and
# reproml's tool modules it imported (a stage may import none).
TRACER = """
import json, os, runpy, sys
sys.path.insert(0, sys.argv[1])
package = sys.argv[2]
sys.argv = [package, *sys.argv[3:]]
try:
    runpy.run_module(package, run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exit:
    code = exit.code
root = os.path.join(os.path.abspath(sys.path[0]), package) + os.sep
# runpy ran package/__main__.py as __main__ and has already restored the real __main__.
files = sorted(
    {module.__file__ for module in list(sys.modules.values())
     if (getattr(module, "__file__", None) or "").startswith(root)}
    | {root + "__main__.py"}
)
heavy = sorted(name for name in ("sklearn", "hydra", "scipy") if name in sys.modules)
tools = sorted(name for name in sys.modules if name.startswith("reproml.tools"))
print(json.dumps({"code": code, "files": files, "heavy": heavy, "tools": tools}))
"""


def trace(workspace: Path, root: Path, package: str, stage: str) -> tuple[set[str], set[str], str]:
    """Run ``stage`` in ``workspace`` with the code of ``root``: ``(files of the package it
    loaded, relative to root; heavy libraries it imported; what it printed)``. A stage that
    imports a tool module is refused: the tools change without retraining."""
    command = [sys.executable, "-c", TRACER, str(root), package, "stage", stage]
    # Pinned as the entry point pins it, with ``root`` as the code: the stage then runs in
    # this process, not in one the launcher would start (whose imports the tracer misses).
    env = pinned_environment(dict(os.environ), root)
    done = run(command, cwd=workspace, env=env)
    *printed, last = done.stdout.strip().splitlines() or [""]
    try:
        report = json.loads(last)
    except ValueError:
        report = {"code": done.returncode or 1}
    if report.get("code") != 0 or "files" not in report:
        said = (done.stderr or done.stdout).strip()
        raise ConfigError(f"stage {stage} failed while its imports were traced:\n{said}")
    if report.get("tools"):
        raise ConfigError(
            f"stage {stage} imports {', '.join(report['tools'])}, which no stage may: only "
            "reproml.runtime is the stages' machinery. Fix: import the tool in a tool command."
        )
    files = {os.path.relpath(path, root) for path in report["files"]}
    return files, set(report["heavy"]), "\n".join(printed)


def stage_commands(root: Path, package: str) -> dict[str, str]:
    """``{stage: name run}`` for the stages dvc.yaml runs as ``python -m <package> stage``."""
    pattern = re.compile(rf"^python -m {re.escape(package)} stage (\w+)$")
    found = {}
    for stage in read_pipeline(root).stages:
        matched = pattern.match(stage.command.strip())
        if matched:
            found[stage.name] = matched.group(1)
    return found


def verifiers(root: Path, package: str, commands: dict[str, str]) -> list[str]:
    """The stages whose module calls reproml's ``verify`` (imported from
    reproml.runtime.verification): each must depend on an output of every stage it does not
    follow, or it would pass without comparing that stage."""
    found = []
    for stage, name in commands.items():
        module = root / package / "stages" / f"{name}.py"
        if not module.is_file():
            continue
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "reproml.runtime.verification"
                and any(alias.name == "verify" for alias in node.names)
            ):
                found.append(stage)
                break
    return found


def outputs_to_verify(pipeline: Pipeline, verifier: str) -> list[str]:
    """The outputs of every stage ``verifier`` neither reruns (depends on, directly or not)
    nor follows: what ``make deps`` adds to its deps."""
    covered = {stage.name for stage in pipeline.upstream(verifier)}
    covered |= pipeline.downstream({verifier})
    return [
        out.path for stage in pipeline.stages if stage.name not in covered for out in stage.outs
    ]


def traced_dependencies(
    root: Path = PROJECT_ROOT,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``({stage: [code dependency, ...]}, {verify stage: [output to add, ...]})``: the
    team's modules each stage loads, and the runtime folder; and the outputs a verify stage
    must also depend on. Stages run in a scratch copy of the inputs, each after those it
    depends on, as DVC runs them."""
    package = team_package(root)
    pipeline = read_pipeline(root)
    commands = stage_commands(root, package)
    added = {
        verifier: missing
        for verifier in verifiers(root, package, commands)
        if (missing := outputs_to_verify(pipeline, verifier))
    }
    with tempfile.TemporaryDirectory(prefix="deps-") as scratch:
        workspace = Path(scratch)
        # What the stages read, as verify copies it, and all of the code: a module a stage
        # has started to import is not declared yet.
        copy_inputs(root, list(pipeline.stages), workspace)
        declared = workspace / DVC_YAML
        text, _ = rewritten((root / DVC_YAML).read_text(encoding="utf-8"), package, {}, added)
        declared.write_text(text, encoding="utf-8")
        shutil.rmtree(workspace / package, ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(root / package, workspace / package, ignore=ignore)
        found = {}
        # In the order of the copy's dvc.yaml, where verify now follows the stages added to it.
        for stage in read_pipeline(workspace).in_order():
            if stage.name not in commands:
                continue
            files, _, _ = trace(workspace, workspace, package, commands[stage.name])
            found[stage.name] = sorted(f for f in files if f.startswith(package + "/"))
            # The copy's dvc.yaml gets each list as it is traced: a stage that reruns the
            # ones before it (verify) copies what they declare, which must then be complete.
            text, _ = rewritten(declared.read_text(encoding="utf-8"), package, found, {})
            declared.write_text(text, encoding="utf-8")
    return found, added


def _round_trip():
    """ruamel.yaml (DVC's own YAML library) set to the project's layout: a dvc.yaml it loads
    and dumps unchanged comes out byte for byte as it was, comments and quotes included."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 20
    yaml.preserve_quotes = True
    return yaml


def rewritten(
    text: str, package: str, traced: dict[str, list[str]], added: dict[str, list[str]]
) -> tuple[str, list[str]]:
    """dvc.yaml ``text`` with each traced stage's code dependencies (the team's modules and
    the runtime) replaced where the first of them stood, and the ``added`` outputs put
    before a verify stage's environment and code dependencies; every other dependency and
    comment as it was. Also the stages whose dependencies changed."""
    yaml = _round_trip()
    document = yaml.load(text)
    code = re.compile(rf"^({re.escape(package)}/\S+|{re.escape(FOLDER_RUNTIME)})$")
    changed = []
    for name, block in (document.get("stages") or {}).items():
        if name not in traced and name not in added:
            continue
        deps = block.setdefault("deps", [])
        before = [str(dep) for dep in deps]
        after = list(before)
        if name in traced:
            first = next((i for i, dep in enumerate(after) if code.match(dep)), len(after))
            rest = [dep for dep in after if not code.match(dep)]
            after = rest[:first] + traced[name] + rest[first:]
        new = [path for path in added.get(name, []) if path not in after]
        if new:
            at = next(
                (i for i, dep in enumerate(after) if code.match(dep) or dep in ENVIRONMENT),
                len(after),
            )
            after = after[:at] + new + after[at:]
        if after != before:
            changed.append(name)
            deps.clear()
            deps.extend(after)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue(), changed


def write(root: Path = PROJECT_ROOT, check: bool = False) -> list[str]:
    """Rewrite each traced stage's code dependencies in dvc.yaml, and a verify stage's
    outputs to compare, or with ``check`` only compare. Returns the stages whose list
    differs."""
    package = team_package(root)
    path = root / DVC_YAML
    traced, added = traced_dependencies(root)
    text, changed = rewritten(path.read_text(encoding="utf-8"), package, traced, added)
    if not check:
        path.write_text(text, encoding="utf-8")
    return changed


def run_deps(args: argparse.Namespace) -> int:
    """`make deps`, and its check in `make test`."""
    changed = write(check=args.check)
    if args.check and changed:
        print(
            f"error: dvc.yaml's deps of {', '.join(changed)} are not the modules the stage "
            "loads (or a verify stage's, the outputs it must compare). Fix: `make deps` "
            "rewrites them.",
            file=sys.stderr,
        )
        return 1
    verb = "rewrote" if changed else "left"
    print(
        f"{verb} the deps in dvc.yaml: {', '.join(changed) or 'every stage'} "
        f"{'changed' if changed else 'as traced'}"
    )
    return 0
