# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""`make deps`: each stage's code dependencies in dvc.yaml, written from what the stage loads
when it runs (the import tracer the project's tests use too), so the lists of the team's
modules are never kept by hand. The runtime is one dependency, ``reproml/runtime``."""

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ..runtime.errors import ConfigError
from ..runtime.launcher import PROJECT_ROOT, pinned_environment
from ..runtime.pipeline import DVC_YAML
from ..runtime.pipeline import read as read_pipeline
from ..runtime.proc import run
from ..runtime.verification import copy_inputs
from .settings import team_package

RUNTIME = "reproml/runtime"
# Run as `python -c TRACER <code root> <package> stage <name>` in a copy of the pipeline:
# the stage runs, then prints the files of the package and of reproml it loaded.
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
roots = [os.path.join(os.path.abspath(sys.path[0]), name) + os.sep for name in (package, "reproml")]
# runpy ran package/__main__.py as __main__ and has already restored the real __main__.
files = sorted(
    {module.__file__ for module in list(sys.modules.values())
     if (getattr(module, "__file__", None) or "").startswith(tuple(roots))}
    | {roots[0] + "__main__.py"}
)
heavy = sorted(name for name in ("sklearn", "hydra", "scipy") if name in sys.modules)
print(json.dumps({"code": code, "files": files, "heavy": heavy}))
"""


def trace(workspace: Path, root: Path, package: str, stage: str) -> tuple[set[str], set[str], str]:
    """Run ``stage`` in ``workspace`` with the code of ``root``: ``(files of the package and
    of reproml it loaded, relative to root; heavy libraries it imported; what it printed)``."""
    command = [sys.executable, "-c", TRACER, str(root), package, "stage", stage]
    # Pinned as the entry point pins it, with ``root`` as the code: the stage then runs in
    # this process, not in one the launcher would start (whose imports the tracer misses).
    env = {**pinned_environment(dict(os.environ)), "PYTHONPATH": str(root)}
    done = run(command, cwd=workspace, env=env)
    *printed, last = done.stdout.strip().splitlines() or [""]
    try:
        report = json.loads(last)
    except ValueError:
        report = {"code": done.returncode or 1}
    if report.get("code") != 0 or "files" not in report:
        said = (done.stderr or done.stdout).strip()
        raise ConfigError(f"stage {stage} failed while its imports were traced:\n{said}")
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


def traced_dependencies(root: Path = PROJECT_ROOT) -> dict[str, list[str]]:
    """``{stage: [code dependency, ...]}``: the team's modules each stage loads, and the
    runtime folder. Stages run in order in a scratch copy of the inputs, as DVC runs them."""
    package = team_package(root)
    with tempfile.TemporaryDirectory(prefix="deps-") as scratch:
        workspace = Path(scratch)
        # What the stages read, as verify copies it, and all of the code: a module a stage
        # has started to import is not declared yet.
        copy_inputs(root, list(read_pipeline(root).stages), workspace)
        shutil.copy2(root / DVC_YAML, workspace / DVC_YAML)
        for folder in (package, "reproml"):
            shutil.rmtree(workspace / folder, ignore_errors=True)
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(root / folder, workspace / folder, ignore=ignore)
        found = {}
        for stage, name in stage_commands(root, package).items():
            files, _, _ = trace(workspace, workspace, package, name)
            outside = sorted(f for f in files if f.startswith("reproml/") and RUNTIME not in f)
            if outside:
                raise ConfigError(
                    f"stage {stage} loads {', '.join(outside)}, which no stage may: only "
                    f"{RUNTIME} is the stages' machinery. Fix: import the tool in a tool command."
                )
            team = sorted(f for f in files if f.startswith(package + "/"))
            found[stage] = [RUNTIME, *team]
            # The copy's dvc.yaml gets each list as it is traced: a stage that reruns the
            # ones before it (verify) copies what they declare, which must then be complete.
            declared = workspace / DVC_YAML
            text, _ = rewritten(declared.read_text(encoding="utf-8"), package, found)
            declared.write_text(text, encoding="utf-8")
    return found


def rewritten(text: str, package: str, traced: dict[str, list[str]]) -> tuple[str, list[str]]:
    """dvc.yaml ``text`` with each traced stage's code dependencies (the lines naming the
    team's modules or the runtime) replaced, every other line, comment and dependency as it
    was; and the stages whose list differed."""
    lines = text.splitlines(keepends=True)
    code_line = re.compile(rf"^      - ({re.escape(package)}/\S+|{RUNTIME})\s*$")
    changed, out, stage, in_deps, index = [], [], None, False, 0
    while index < len(lines):
        line = lines[index]
        header = re.match(r"^  (\w[\w-]*):\s*$", line)
        if header:
            stage, in_deps = header.group(1), False
        elif re.match(r"^    deps:\s*$", line):
            in_deps = True
        elif re.match(r"^    \S", line):
            in_deps = False
        if in_deps and stage in traced and code_line.match(line):
            block = []
            while index < len(lines) and code_line.match(lines[index]):
                block.append(code_line.match(lines[index]).group(1))
                index += 1
            if block != traced[stage]:
                changed.append(stage)
            out += [f"      - {dependency}\n" for dependency in traced[stage]]
            continue
        out.append(line)
        index += 1
    return "".join(out), changed


def write(root: Path = PROJECT_ROOT, check: bool = False) -> list[str]:
    """Rewrite each traced stage's code dependencies in dvc.yaml, or with ``check`` only
    compare. Returns the stages whose list differs."""
    package = team_package(root)
    path = root / DVC_YAML
    text, changed = rewritten(path.read_text(encoding="utf-8"), package, traced_dependencies(root))
    if not check:
        path.write_text(text, encoding="utf-8")
    return changed
