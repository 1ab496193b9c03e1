"""A small runner for the generated GitHub workflows, because no Docker-free GitHub runner
exists here: each job's ``run:`` steps, in order, under ``bash -eo pipefail``, in a clone made
the way actions/checkout makes it (the depth and tags its ``with:`` asks for).

It skips what changes speed or the interpreter but never a result: setup-python (the pinned
uv and a Python are on PATH) and the cache action. upload-artifact and download-artifact
move files through a folder of the run's own, as GitHub moves them between a run's jobs.
Expressions are the forms the generated workflows use: context lookups (``github``,
``secrets``, ``vars``, ``inputs``, ``matrix``, ``needs``, ``steps``, and ``env`` in an
artifact step), string literals, ``==``, ``!=``, ``&&``, ``always()`` and ``fromJSON``.
Anything else raises, so a workflow that outgrows the runner fails its test rather than being
misread. The workflow's own ``env:`` reaches every step, under the job's and the step's.
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from conftest import CHILD_ENV

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
LOOKUP = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*")


@dataclass
class Step:
    command: str
    returncode: int | None  # None: skipped
    output: str
    seconds: float = 0.0


@dataclass
class Job:
    name: str
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: bool = False

    @property
    def passed(self) -> bool:
        return not self.skipped and all(step.returncode in (0, None) for step in self.steps)

    @property
    def output(self) -> str:
        return "\n".join(f"$ {step.command}\n{step.output}" for step in self.steps)


def checkout(origin: Path, clone: Path, options: dict) -> None:
    """What actions/checkout v4 runs: fetch-depth 0 fetches every branch and tag; any other
    depth fetches that many commits of the one ref, and tags only if fetch-tags is true."""
    url = f"file://{origin}"  # a plain path would make git ignore --depth
    git = ["git", "-C", str(clone)]
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    subprocess.run([*git, "remote", "add", "origin", url], check=True)
    head = subprocess.run(
        [*git, "ls-remote", "origin", "refs/heads/main"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    depth = int(options.get("fetch-depth", 1))
    if depth == 0:
        refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        fetch = ["fetch", "-q", "--prune", "origin", *refspecs]
    else:
        tags = [] if options.get("fetch-tags") else ["--no-tags"]
        fetch = [
            "fetch",
            "-q",
            *tags,
            f"--depth={depth}",
            "origin",
            f"+{head}:refs/remotes/origin/main",
        ]
    subprocess.run([*git, *fetch], check=True)
    subprocess.run(
        [*git, "checkout", "-q", "--force", "-B", "main", "refs/remotes/origin/main"], check=True
    )


def _value(expression: str, context: dict):
    expression = expression.strip()
    if "&&" in expression:
        parts = [_value(part, context) for part in expression.split("&&")]
        return parts[-1] if all(parts) else next(part for part in parts if not part)
    for operator in ("==", "!="):
        if operator in expression:
            left, right = (_value(part, context) for part in expression.split(operator, 1))
            return (str(left) == str(right)) == (operator == "==")
    if expression == "always()":
        return True
    if re.fullmatch(r"'[^']*'", expression):
        return expression[1:-1]
    called = re.fullmatch(r"fromJSON\((.*)\)", expression)
    if called:
        return json.loads(_value(called.group(1), context))
    if LOOKUP.fullmatch(expression):
        value = context
        for part in expression.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value
    raise ValueError(f"the workflow runner does not evaluate ${{{{ {expression} }}}}")


def expand(text: str, context: dict):
    """A string with each ``${{ }}`` evaluated; a string that is one expression keeps its type."""
    whole = EXPRESSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if whole:
        return _value(whole.group(1), context)
    return EXPRESSION.sub(lambda match: str(_value(match.group(1), context)), str(text))


def _condition(condition, context: dict) -> bool:
    if isinstance(condition, bool):
        return condition
    return bool(_value(EXPRESSION.sub(r"\1", str(condition)), context))


def run_job(
    name: str,
    job: dict,
    origin: Path,
    clone: Path,
    context: dict,
    env: dict,
    checkout_options: dict | None = None,
    artifacts: Path | None = None,
) -> Job:
    """One job (one matrix entry): checkout, then its ``run:`` steps. A failed step skips
    the rest, except steps whose ``if:`` says ``always()``."""
    result = Job(name)
    job_env = {key: str(expand(value, context)) for key, value in (job.get("env") or {}).items()}
    failed = False
    step_outputs: dict[str, dict] = {}
    for step in job["steps"]:
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout@"):
            checkout(origin, clone, {**(step.get("with") or {}), **(checkout_options or {})})
            continue
        scope = {**context, "steps": step_outputs}
        if uses.startswith(("actions/upload-artifact@", "actions/download-artifact@")):
            options = {
                k: str(expand(v, {**scope, "env": {**env, **job_env}}))
                for k, v in step["with"].items()
            }
            if failed and "always()" not in str(step.get("if")):
                result.steps.append(Step(uses, None, "skipped"))
                continue
            done = move_artifact(uses, options, clone, artifacts)
            result.steps.append(Step(uses, 0 if done is None else 1, done or ""))
            failed = failed or done is not None
            continue
        if uses:
            continue  # setup-python, cache: speed and interpreter only
        condition = step.get("if")
        wanted = _condition(condition, scope) if condition else True
        if not wanted or (failed and "always()" not in str(condition)):
            result.steps.append(Step(step["run"], None, "skipped"))
            continue
        with tempfile.NamedTemporaryFile("r", suffix=".github_output") as outputs:
            step_env = {key: str(expand(v, scope)) for key, v in (step.get("env") or {}).items()}
            command = expand(step["run"], scope)
            start = time.perf_counter()
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command],
                cwd=clone,
                env={**env, **job_env, **step_env, "GITHUB_OUTPUT": outputs.name, "CI": "true"},
                capture_output=True,
                text=True,
            )
            written = dict(
                line.split("=", 1) for line in outputs.read().splitlines() if "=" in line
            )
        if "id" in step:
            step_outputs[step["id"]] = {"outputs": written}
        seconds = time.perf_counter() - start
        result.steps.append(Step(command, done.returncode, done.stdout + done.stderr, seconds))
        failed = failed or done.returncode != 0
    result.outputs = {
        key: str(expand(value, {**context, "steps": step_outputs}))
        for key, value in (job.get("outputs") or {}).items()
    }
    return result


def move_artifact(uses: str, options: dict, clone: Path, artifacts: Path | None) -> str | None:
    """upload-artifact (``name``, ``path``, ``if-no-files-found``) or download-artifact
    (``pattern``, ``merge-multiple``, ``path``) against the run's folder; None, or why the
    step fails."""
    if artifacts is None:
        return "this run keeps no artifacts"
    if uses.startswith("actions/upload-artifact@"):
        source = clone / options["path"]
        if not source.exists():
            found = options.get("if-no-files-found", "warn").lower() == "error"
            return (
                f"No files were found with the provided path: {options['path']}" if found else None
            )
        target = artifacts / options["name"]
        if target.exists():
            return f"an artifact named {options['name']} exists already in this run"
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)
        return None
    destination = clone / options.get("path", ".")
    merge = options.get("merge-multiple", "false").lower() == "true"
    for found in sorted(artifacts.glob("*")) if artifacts.is_dir() else []:
        if fnmatch.fnmatchcase(found.name, options.get("pattern", "*")):
            shutil.copytree(
                found, destination if merge else destination / found.name, dirs_exist_ok=True
            )
    return None


def run_workflow(
    path: Path,
    origin: Path,
    workdir: Path,
    env: dict,
    context: dict | None = None,
    jobs: list[str] | None = None,
    checkout_options: dict | None = None,
) -> dict[str, list[Job]]:
    """Every job of the workflow (or those in ``jobs``), in ``needs`` order, each matrix
    entry in a clone of its own; returns the runs of each job."""
    workflow = yaml.safe_load(path.read_text())
    context = {"secrets": {}, "vars": {}, "inputs": {}, **(context or {})}
    workflow_env = {k: str(expand(v, context)) for k, v in (workflow.get("env") or {}).items()}
    env = {**env, **workflow_env}  # the workflow's env, under each job's and step's own
    chosen = [name for name in workflow["jobs"] if jobs is None or name in jobs]
    runs: dict[str, list[Job]] = {}
    needs_context: dict[str, dict] = {}
    pending = list(chosen)
    while pending:
        name = next(
            n
            for n in pending
            if all(need in runs or need not in chosen for need in _needs(workflow["jobs"][n]))
        )
        pending.remove(name)
        job = workflow["jobs"][name]
        needs = _needs(job)
        scope = {**context, "needs": {need: needs_context.get(need, {}) for need in needs}}
        # A job left out of ``jobs`` counts as passed: the caller runs one job on purpose.
        upstream_ok = all(
            need not in chosen or needs_context[need]["result"] == "success" for need in needs
        )
        condition = job.get("if")
        wanted = _condition(condition, scope) if condition else upstream_ok
        if condition and "always()" not in str(condition):
            wanted = wanted and upstream_ok
        if not wanted:
            runs[name] = [Job(name, skipped=True)]
            needs_context[name] = {"result": "skipped", "outputs": {}}
            continue
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        entries = [{}]
        for key, values in matrix.items():
            values = expand(values, scope) if isinstance(values, str) else values
            entries = [{**entry, key: value} for entry in entries for value in values]
        runs[name] = []
        for index, entry in enumerate(entries):
            clone = workdir / f"{name}-{index}"
            run = run_job(
                name,
                job,
                origin,
                clone,
                {**scope, "matrix": entry},
                env,
                checkout_options,
                artifacts=workdir / "artifacts",
            )
            runs[name].append(run)
        outputs = runs[name][-1].outputs if runs[name] else {}
        result = "success" if all(run.passed for run in runs[name]) else "failure"
        needs_context[name] = {"result": result, "outputs": outputs}
    return runs


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def step_environment(home: Path, path_first: Path, uv_cache: str) -> dict:
    """A runner's environment: this machine's tools, a HOME of its own (no global git config,
    no ~/.ssh), the pinned uv and its Python first on PATH, and the warm uv cache."""
    return {
        **os.environ,
        **CHILD_ENV,
        "HOME": str(home),
        "PATH": f"{path_first}{os.pathsep}{os.environ['PATH']}",
        "UV_CACHE_DIR": uv_cache,
        "GITHUB_ACTIONS": "true",
    }
