"""dvc.yaml and the code agree: commands, outputs, code dependencies, pinned environment."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import PACKAGE, PROJECT_ROOT, project_module

launcher = project_module("repro.launcher")
stages = project_module("stages")

LOADED_MODULES = """
import json, os, runpy, sys
sys.path.insert(0, sys.argv[1])
package = sys.argv[2]
sys.argv = [package, *sys.argv[3:]]
try:
    runpy.run_module(package, run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exit:
    code = exit.code
package_dir = os.path.join(os.path.abspath(sys.path[0]), package) + os.sep
# runpy ran package/__main__.py as __main__ and has already restored the real __main__.
files = sorted(
    {module.__file__ for module in list(sys.modules.values())
     if (getattr(module, "__file__", None) or "").startswith(package_dir)}
    | {package_dir + "__main__.py"}
)
heavy = sorted(name for name in ("sklearn", "hydra", "scipy") if name in sys.modules)
print(json.dumps({"code": code, "files": files, "heavy": heavy}))
"""


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


def run_and_trace(workspace, *argv):
    """Run ``python -m <package> argv`` in a child; return the package files it loaded, the
    heavy libraries it imported, and the outputs it reported."""
    command = [sys.executable, "-c", LOADED_MODULES, str(PROJECT_ROOT), PACKAGE, *argv]
    result = subprocess.run(
        command,
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
        env=launcher.pinned_environment(dict(os.environ)),
    )
    *printed, last = result.stdout.strip().splitlines()
    report = json.loads(last)
    assert report["code"] == 0, result.stderr
    code = {os.path.relpath(path, PROJECT_ROOT) for path in report["files"]}
    outputs = {line.split(" -> ", 1)[1] for line in printed if " -> " in line}
    return code, set(report["heavy"]), outputs


@pytest.fixture(scope="module")
def traced(module_workspace):
    """Every stage run once, in order, each in its own process as DVC runs it."""
    runs = {"params": run_and_trace(module_workspace, "stage", "params")}
    for name in stages.STAGES:
        runs[name] = run_and_trace(module_workspace, "stage", name)
    return runs


def test_every_stage_is_one_cli_call(declared):
    assert set(declared) == {"params", *stages.STAGES}
    assert declared["params"]["cmd"] == f"python -m {PACKAGE} stage params"
    for name in stages.STAGES:
        assert declared[name]["cmd"] == f"python -m {PACKAGE} stage {name}"


def test_declared_outputs_are_what_the_code_writes(declared, traced):
    paths = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["paths"]
    assert declared["params"]["outs"] == {paths["params_check"]}
    for name in stages.STAGES:
        assert declared[name]["outs"] == traced[name][2], name


def test_declared_code_dependencies_are_exactly_the_modules_each_stage_loads(declared, traced):
    code = {name: files for name, (files, _, _) in traced.items()}
    assert "sklearn" not in traced["params"][1]
    assert "sklearn" not in traced["prepare"][1]
    for name in ("prepare", "evaluate"):
        assert "hydra" not in traced[name][1], f"{name} imports Hydra, which it does not use"
    for name in ("params", *stages.STAGES):
        assert not any(path.endswith("repro/cli.py") for path in code[name]), name
    # verify reruns train and evaluate in a child process: their code is its code too.
    code["verify"] |= code["train"] | code["evaluate"]
    for name in ("params", *stages.STAGES):
        declared_code = {dep for dep in declared[name]["deps"] if dep.startswith(PACKAGE)}
        assert declared_code == code[name], name


def test_stages_depend_on_the_runtime_lock_not_the_tool_lock(declared):
    for name in stages.STAGES:
        assert {"runtime.lock", ".python-version"} <= declared[name]["deps"]
        assert "uv.lock" not in declared[name]["deps"]


def test_entry_point_pins_the_environment_before_work_starts():
    hostile = dict(os.environ)
    hostile.update(
        PYTHONHASHSEED="random",
        OMP_NUM_THREADS="7",
        TZ="Asia/Tokyo",
        LC_ALL="de_DE.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
    )
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "env"],
        cwd=PROJECT_ROOT,
        env=hostile,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert seen.pop("interpreter") == sys.executable
    assert seen == launcher.PINNED_ENV
    hostile[launcher.OPT_OUT_VARIABLE] = "as-is"
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "env"],
        cwd=PROJECT_ROOT,
        env=hostile,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "TZ=Asia/Tokyo" in result.stdout.splitlines()


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
        [base, "-m", PACKAGE, "env"],
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
