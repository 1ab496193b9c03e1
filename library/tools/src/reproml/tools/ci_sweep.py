"""A sweep across CI runners: a first job plans the points (``plan``, or GitLab's child
pipeline), each runner runs its own point sealed and leaves the experiment as a git bundle, an
artifact of the same CI run (``run_point``), and a last job imports every bundle that is
that point's run on this commit and compares them (``collect_results``). Nothing is read from
refs/exps on origin, which anyone who can push could have written."""

import json
import sys
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError, ProjectError
from ..runtime.proc import run
from .commands import dvc_command
from .experiment_runs import PARAMS_FILE, SweepError, reason_in, tool_environment
from .experiment_table import Row, compare, flatten
from .git import git_environment, run_to_file, show_yaml
from .sweep import NAME_PATTERN, check_points, expand, point_names, sweep_prefix


def command(
    overrides: list[str],
    name: str | None,
    root: Path,
    point: str | None = None,
    planning: bool = False,
    collecting: bool = False,
    gitlab: bool = False,
    require_sealed: bool = False,
) -> int:
    """`make sweep` in CI: one runner's point (``point``), the plan (``planning``: the CI
    matrix as JSON, or GitLab's child pipeline), or the last job's comparison (``collecting``)."""
    if point:  # one CI runner's point: run it here, its result an artifact of the run
        return run_point(point, overrides, root, require_sealed=require_sealed)
    if not name:
        raise ProjectError(
            "a sweep across CI runners needs NAME=, the same in every job (the points' names "
            "derive from it). Fix: e.g. NAME=sweep-$CI_PIPELINE_ID."
        )
    planned = plan(overrides, name)
    if collecting:
        return collect_results(planned, root)
    if gitlab:
        print(gitlab_child_pipeline(planned, overrides, name), end="")
    else:
        print(json.dumps(planned))
    return 0


def plan(overrides: list[str], name: str | None) -> list[dict[str, str]]:
    """The points as a CI matrix: ``[{"name": ..., "overrides": ...}]``, checked first."""
    points = expand(overrides)
    check_points(points)
    prefix = sweep_prefix(name)
    names = point_names(prefix, len(points))
    return [
        {"name": point_name, "overrides": " ".join(point)}
        for point_name, point in zip(names, points, strict=True)
    ]


def gitlab_child_pipeline(planned: list[dict[str, str]], overrides: list[str], name: str) -> str:
    """GitLab's child pipeline for the plan: .gitlab/sweep.yml's jobs, with one sweep:point
    job per point (``parallel: matrix``). The values are YAML data, never shell text."""
    import yaml

    pipeline = {
        "include": [{"local": ".gitlab/sweep.yml"}],
        "variables": {"NAME": name, "ARGS": " ".join(overrides)},
        "sweep:point": {
            "extends": ".sweep-point",
            "parallel": {
                "matrix": [
                    {"POINT": point["name"], "ARGS": point["overrides"]} for point in planned
                ]
            },
        },
    }
    header = f"# Written by `make sweep-plan GITLAB=1` for {name}: one job per point.\n"
    return header + yaml.safe_dump(pipeline, sort_keys=False)


# Where a CI point leaves its result, and where the collect job finds every point's: the CI
# run's own artifacts (GitHub upload/download-artifact, GitLab artifacts with needs:).
RESULTS_DIR = Path("build") / "sweep"


def experiment_ref(root: Path, name: str) -> str:
    """The ref DVC keeps experiment ``name`` of this commit under."""
    head = run(["git", "rev-parse", "HEAD"], cwd=root).stdout.strip()
    return f"refs/exps/{head[:2]}/{head[2:]}/{name}"


def sealed_point(root: Path, require_sealed: bool = False):
    """``(wrap, env)``: how a CI point's commands run (``wrap(command)``), sealed
    (tools/sandbox.py) where bubblewrap runs, with no network (the data was pulled before), a
    HOME of its own, none of the job's secrets in its environment, the remote's credentials
    (``.dvc/config.local``) shown empty and the environment read-only; the project itself
    writable, as the run writes its outputs and its experiment. Unsealed, it says so first;
    ``require_sealed`` refuses."""
    import shutil

    from .rebuild import isolated_environment
    from .sandbox import Seal, bubblewrap, interpreter_prefix

    env = tool_environment(root)
    bwrap, why = bubblewrap()
    if bwrap is None:
        if require_sealed:
            raise SweepError(f"a sealed point was required, and {why}. Nothing was run.")
        print(f"warning: UNSEALED: {why}; the point runs with this job's files and network")
        return (lambda command: command), env
    scratch = root / ".dvc" / "tmp" / "sealed-point"
    shutil.rmtree(scratch, ignore_errors=True)
    sealed = isolated_environment(env, scratch / "home", None)
    # DVC commits the experiment: the identity is read here, since HOME is not the user's
    # inside (git_environment's fallback when none is configured).
    for what, key in (("NAME", "user.name"), ("EMAIL", "user.email")):
        value = run(["git", "config", key], cwd=root).stdout.strip()
        for who in ("AUTHOR", "COMMITTER"):
            variable = f"GIT_{who}_{what}"
            sealed[variable] = (
                env.get(variable) or value or git_environment(root).get(variable, "reproml")
            )
    sealed["PYTHONPYCACHEPREFIX"] = str(scratch / "bytecode")
    venv = root / ".venv"
    prefix = interpreter_prefix(venv, [Path.home().resolve()]) if venv.is_dir() else None
    # Shown empty: the remote's credentials, and the key files `make remote-credentials`
    # and `make signing-key` keep under .git/ (tools/git.py, secret_file).
    git_dir = root / ".git"
    secrets = [root / ".dvc" / "config.local"]
    secrets += sorted(git_dir.glob("reproml-*")) if git_dir.is_dir() else []
    empty = scratch / "empty"
    empty.write_text("", encoding="utf-8")
    hidden = {path: empty for path in secrets if path.is_file() and not path.is_symlink()}
    # Read-only inside as well: the project's git hooks, config, info and alternates, and a
    # uv cache kept in the project (GitLab's), whose files .venv's are. (No git runs in the
    # project unsealed after the point's code has: a run can rename .git itself.)
    guarded = [
        git_dir / "config",
        git_dir / "hooks",
        git_dir / "info",
        git_dir / "objects" / "info",
    ]
    for folder in guarded[1:] if git_dir.is_dir() else []:
        folder.mkdir(parents=True, exist_ok=True)
    guarded.append(root / ".cache")
    read_only = [path for path in (venv, *guarded) if path.exists()]
    seal = Seal(bwrap, root, [prefix] if prefix else [], read_only=read_only, hidden=hidden)
    return (lambda command: seal.wrap(command, root)), sealed


def run_point(
    name: str,
    overrides: list[str],
    root: Path,
    results: Path = RESULTS_DIR,
    require_sealed: bool = False,
) -> int:
    """Run one point in this workspace (the whole pipeline, verify included) as the
    experiment ``name``, and write its commit as a git bundle to ``results/<name>.bundle``
    for the CI run to carry to the collect job as an artifact (params, scores and verify's
    report are in git; the model stays on the runner: `make adopt` rebuilds it, which
    proves it once more). Nothing is pushed: a ref on origin is anyone's, an artifact is
    this run's. The run, and the bundle's git, are sealed (``sealed_point``); this process
    only writes the bundle's bytes, to a file it creates. 1, naming the point and the
    cause, if it fails; no bundle then."""
    if not NAME_PATTERN.match(name or ""):
        raise ConfigError(f"POINT={name!r} is not an experiment name. Fix: take it from the plan.")
    check_points([overrides])
    ref = experiment_ref(root, name)  # read before any of the point's code runs
    command = dvc_command("exp", "run", "--name", name)
    for override in overrides:
        command += ["-S", override]
    wrap, env = sealed_point(root, require_sealed)
    ran = run(wrap(command), cwd=root, env=env, stream=True)
    if ran.returncode != 0:
        reason = reason_in(ran.stdout) or "no output"
        print(f"error: the point {name} ({' '.join(overrides)}) failed: {reason}", file=sys.stderr)
        return 1
    bundle = _result_file(root, results, name)
    made = run_to_file(
        wrap(["git", "bundle", "create", "-q", "-", ref, "--not", "HEAD"]), bundle, root, env
    )
    if made.returncode != 0:
        raise SweepError(
            f"the point {name} ran and verified, but its result could not be written to "
            f"{results / bundle.name}: {made.stderr.strip()}"
        )
    print(f"{name} ({' '.join(overrides)}): ran and verified; result in {results / bundle.name}")
    return 0


def _result_file(root: Path, results: Path, name: str) -> Path:
    """Where a point's bundle goes, made safe after the point's code ran in the project: no
    link on the way (the artifact upload would follow one out of the project) and nothing
    there yet."""
    folder = root
    for part in results.parts:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise SweepError(
                f"{folder.relative_to(root)} is a link or a file after the point ran: its "
                "result is not written there"
            )
        folder.mkdir(exist_ok=True)
    bundle = folder / f"{name}.bundle"
    if bundle.is_symlink() or bundle.is_file():
        bundle.unlink()
    elif bundle.exists():
        raise SweepError(f"{results / bundle.name} is a folder after the point ran")
    return bundle


def import_bundle(root: Path, name: str, results: Path = RESULTS_DIR) -> str | None:
    """Take experiment ``name`` of this commit from ``results/<name>.bundle`` (a CI point's
    artifact) into its ref, or say why not (nothing is imported then)."""
    bundle = (root / results / f"{name}.bundle").resolve()
    ref = experiment_ref(root, name)
    if not bundle.is_file():
        return f"no {results / bundle.name}"
    heads = run(["git", "bundle", "list-heads", str(bundle)], cwd=root)
    listed = [line.split() for line in heads.stdout.splitlines() if line.strip()]
    if heads.returncode != 0 or len(listed) != 1 or listed[0][1:] != [ref]:
        return f"{bundle.name} is not experiment {name} of this commit (it holds no {ref})"
    if run(["git", "bundle", "verify", "-q", str(bundle)], cwd=root).returncode != 0:
        return f"{bundle.name} does not build on this commit"
    fetched = run(["git", "fetch", "-q", "--no-tags", str(bundle), f"+{ref}:{ref}"], cwd=root)
    if fetched.returncode != 0:
        return f"{bundle.name} could not be read: {fetched.stderr.strip()}"
    if run(["git", "cat-file", "-t", ref], cwd=root).stdout.strip() != "commit":
        run(["git", "update-ref", "-d", ref], cwd=root)
        return f"{bundle.name} holds no commit under {ref}"
    parents = run(["git", "rev-list", "--parents", "-n", "1", ref], cwd=root).stdout.split()[1:]
    if parents != [run(["git", "rev-parse", "HEAD"], cwd=root).stdout.strip()]:
        run(["git", "update-ref", "-d", ref], cwd=root)
        return f"{bundle.name} is not a run on this commit"
    return None


def _import_result(point: dict[str, str], root: Path, results: Path) -> str | None:
    """Take one point's result from this run's artifacts into its experiment ref, or say why
    it is not this point's result from this run (nothing is imported then)."""
    name, ref = point["name"], experiment_ref(root, point["name"])
    run(["git", "update-ref", "-d", ref], cwd=root)  # only this run's result may stand there
    if not (root / results / f"{name}.bundle").is_file():
        return (
            f"its job left no result in this run ({results / name}.bundle); its log says why, "
            f"in the line `error: the point {name} ({point['overrides']}) failed: ...`"
        )
    problem = import_bundle(root, name, results)
    if problem:
        return f"{problem}: not from this run, ignored"
    try:
        ran_with = flatten(show_yaml(root, ref, PARAMS_FILE))
    except ProjectError:
        ran_with = None
    if ran_with != planned_params(point["overrides"].split(), root):
        run(["git", "update-ref", "-d", ref], cwd=root)
        return f"{name}.bundle did not run with {point['overrides']}: not this point's, ignored"
    return None


def planned_params(overrides: list[str], root: Path) -> dict[str, Any]:
    """The flattened params.yaml a point runs with (conf/ composed with its overrides)."""
    import yaml

    from ..runtime.params import CONF_DIR, compose

    return flatten(yaml.safe_load(compose(root / CONF_DIR, overrides)) or {})


def collect_results(
    planned: list[dict[str, str]], root: Path, results: Path = RESULTS_DIR, remote: str = "origin"
) -> int:
    """Take every planned point's result from this CI run's artifacts (``results``) and
    compare them; 1, naming them, if any point left none (its job failed or never ran) or
    left one that is not its own. Experiment refs on ``remote`` are never read: anyone who
    can push can push one, so a planned point's name there is named as not from this run.
    A point without a result is a row of its own (its parameters, no scores)."""
    refused = {}
    for point in planned:
        why = _import_result(point, root, results)
        if why:
            refused[point["name"]] = why
    listed = run(["git", "ls-remote", remote, "refs/exps/*"], cwd=root)
    on_remote = {line.rsplit("/", 1)[-1] for line in listed.stdout.splitlines()}
    for point in planned:
        if point["name"] in on_remote:
            print(
                f"warning: {remote} holds an experiment ref named {point['name']}: it did not "
                "come from this run, and is ignored (delete it: "
                f"`git push {remote} :<its ref>`, from `git ls-remote {remote} 'refs/exps/*'`)",
                file=sys.stderr,
            )
    present = [point["name"] for point in planned if point["name"] not in refused]
    failed = [
        Row(
            point["name"],
            "failed",
            "",
            planned_params(point["overrides"].split(), root),
            {},
            reason=refused[point["name"]],
        )
        for point in planned
        if point["name"] in refused
    ]
    print(compare(root, only=present, failed=failed))
    if refused:
        print(
            f"error: {len(refused)} of {len(planned)} points have no result from this run: "
            + "; ".join(
                f"{point['name']} ({point['overrides']}): {refused[point['name']]}"
                for point in planned
                if point["name"] in refused
            ),
            file=sys.stderr,
        )
        return 1
    print(f"all {len(planned)} points ran and verified in this run")
    return 0
