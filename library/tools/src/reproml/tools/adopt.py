"""``make adopt EXP=<name>``: an experiment's parameters become conf/experiment/<name>.yaml on
a branch of their own, selected by conf/config.yaml, and every stage reruns and must match the
experiment's dvc.lock: the values, never code, and only results the project can rebuild."""

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError, ProjectError
from ..runtime.proc import run
from . import dvc_lock
from .ci_sweep import RESULTS_DIR, experiment_ref, import_bundle
from .commands import dvc_command
from .dvc_lock import DVC_LOCK
from .experiment_runs import PARAMS_FILE, SweepError, tool_environment
from .experiment_table import flatten
from .git import git_show
from .sweep import CODE_NAME, NAME_PATTERN

EXPERIMENT_GROUP = "experiment"
# The defaults entry in conf/config.yaml that selects an adopted experiment's file.
EXPERIMENT_ENTRY = re.compile(rf"^(\s*-\s*{EXPERIMENT_GROUP}:\s*)(\S+)\s*$", re.MULTILINE)
SELF_ENTRY = re.compile(r"^(\s*)-\s*_self_\s*$", re.MULTILINE)


def find_experiment(name: str, root: Path) -> str:
    """The commit of the experiment ``name`` (its ref under refs/exps/)."""
    if not NAME_PATTERN.match(name or ""):
        raise ConfigError(
            f"EXP={name!r} is not an experiment name. Fix: copy one from `make experiments`."
        )
    listed = run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/"], cwd=root
    ).stdout.split("\n")
    found = {
        line.split()[1] for line in listed if line.strip() and line.split()[0].endswith(f"/{name}")
    }
    if not found and (root / RESULTS_DIR / f"{name}.bundle").is_file():
        # A CI point's result, downloaded from its run's artifacts.
        problem = import_bundle(root, name)
        if problem:
            raise ConfigError(f"EXP={name!r}: {problem}. Fix: download it from the run again.")
        return run(["git", "rev-parse", experiment_ref(root, name)], cwd=root).stdout.strip()
    if len(found) != 1:
        problem = "no experiment has that name" if not found else "several experiments do"
        raise ConfigError(
            f"EXP={name!r}: {problem} here. Fix: pick one from `make experiments` (a failed "
            f"point has no results to adopt); a CI sweep's point: download the run's artifact "
            f"{name} into {RESULTS_DIR}/ first."
        )
    return found.pop()


def groups(conf_dir: Path) -> dict[str, list[str]]:
    """conf/'s config groups (folders of YAML files) and their options; not the experiment
    group, which is what adopting writes."""
    return {
        folder.name: sorted(path.stem for path in folder.glob("*.yaml"))
        for folder in sorted(conf_dir.iterdir())
        if folder.is_dir() and folder.name != EXPERIMENT_GROUP and any(folder.glob("*.yaml"))
    }


def _composed(conf_dir: Path, overrides: list[str]) -> dict:
    import yaml

    from ..runtime.params import compose

    try:
        return yaml.safe_load(compose(conf_dir, overrides))
    except ProjectError:
        raise
    except Exception as error:  # Hydra's composition errors name the file or key
        raise ConfigError(
            f"{conf_dir}/ does not compose with {' '.join(overrides) or 'no overrides'}: "
            f"{error}. Fix: correct conf/ (`make params` shows the same error)."
        ) from None


def _delta(composed: Any, target: Any, where: str) -> Any:
    """The values of ``target`` that differ from ``composed``, as a tree to merge on top."""
    if isinstance(composed, dict) and isinstance(target, dict):
        extra = sorted(set(composed) - set(target), key=str)
        if extra:
            raise ConfigError(
                f"the experiment has no {where}{extra[0]}, which conf/ composes to: adopting "
                "it would need a key deleted. Fix: edit conf/ by hand to match its params.yaml "
                "(`git show <experiment>:params.yaml`)."
            )
        changed = {}
        for key, value in target.items():
            if key not in composed:
                changed[key] = value
                continue
            sub = _delta(composed[key], value, f"{where}{key}.")
            if sub is not _SAME:
                changed[key] = sub
        return changed or _SAME
    return _SAME if composed == target and type(composed) is type(target) else target


_SAME = object()


def derive(conf_dir: Path, target: dict) -> tuple[dict[str, str], dict]:
    """What conf/ (selecting no experiment) needs to compose to ``target``: a choice per group
    that changed (the option closest to it) and the values that still differ."""
    from ..runtime.params import differences

    base = _composed(conf_dir, [])
    choices: dict[str, str] = {}
    for group, options in groups(conf_dir).items():
        if base.get(group) == target.get(group):
            continue
        scored = []
        for option in options:
            try:
                candidate = _composed(conf_dir, [f"{group}={option}"])
            except ProjectError:
                continue  # an option that does not fit this data (no class for its task)
            scored.append((len(differences(candidate.get(group), target.get(group))), option))
        if scored:
            best = min(scored)[1]
            if _composed(conf_dir, [f"{group}={best}"]) != base:
                choices[group] = best
    overrides = [f"{g}={o}" for g, o in choices.items()]
    values = _delta(_composed(conf_dir, overrides), target, "")
    return choices, ({} if values is _SAME else values)


def experiment_file_text(name: str, choices: dict[str, str], values: dict) -> str:
    import yaml

    lines = [
        "# @package _global_",
        f"# Adopted from the DVC experiment {name} (`make adopt`): conf/config.yaml selects",
        "# this file, so `make params` composes exactly the params.yaml the experiment ran with.",
    ]
    if choices:
        lines.append("defaults:")
        lines += [f"  - override /{group}: {option}" for group, option in choices.items()]
    text = "\n".join(lines) + "\n"
    if values:
        text += yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    return text


def select_experiment(config_text: str, name: str) -> str:
    """conf/config.yaml with its defaults selecting ``experiment: name`` (after _self_, so
    the experiment's values win)."""
    if EXPERIMENT_ENTRY.search(config_text):
        return EXPERIMENT_ENTRY.sub(lambda m: f"{m.group(1)}{name}", config_text, count=1)
    found = SELF_ENTRY.search(config_text)
    if not found:
        raise ConfigError(
            "conf/config.yaml: its defaults list has no `- _self_` entry to put the experiment "
            f"after. Fix: add `- _self_` and then `- {EXPERIMENT_GROUP}: null` to it."
        )
    entry = f"\n{found.group(1)}- {EXPERIMENT_GROUP}: {name}"
    return config_text[: found.end()] + entry + config_text[found.end() :]


def only_results(name: str, revision: str, root: Path) -> None:
    """Refuse an experiment whose commit brings anything but results: its baseline must be
    in this branch's history, and it may change only params.yaml, dvc.lock and the outputs
    dvc.lock declares. Adopting runs the pipeline (the params stage, or a rebuild of a CI
    point's outputs), and an experiment ref pulled from origin is anyone's who can push:
    this way only code already on the branch runs."""
    from .git import git

    baseline = git(root, "rev-parse", "--verify", "--quiet", f"{revision}^").stdout.strip()
    if not baseline or git(root, "merge-base", "--is-ancestor", baseline, "HEAD").returncode:
        raise ConfigError(
            f"experiment {name} was not run on this branch's history (its baseline "
            f"{baseline[:12] or '?'} is not an ancestor of HEAD). Fix: switch to the branch it "
            "was run from, or run the point again here."
        )
    # The baseline's word, not the ref's.
    paths = {path.rstrip("/") for path in dvc_lock.outputs(dvc_lock.at_commit(root, baseline))}
    # Only outputs git already tracks (cache: false: scores, plots, reports, the record); a
    # cached one (the model) in the ref's tree would be a file nobody's pipeline wrote.
    declared = {
        path
        for path in paths
        if path and git(root, "ls-tree", "-r", "--name-only", baseline, "--", path).stdout.strip()
    }
    changed = git(root, "diff", "--name-only", "--no-renames", baseline, revision).stdout.split()
    others = [
        path
        for path in changed
        if path not in (PARAMS_FILE, DVC_LOCK)
        and not any(path == out or path.startswith(f"{out}/") for out in declared)
    ]
    if others:
        raise ConfigError(
            f"experiment {name} changes more than results: {', '.join(others[:5])}. An "
            "experiment only sets parameters; adopting would run code nobody reviewed. "
            "Fix: adopt an experiment made by `make sweep` or `dvc exp run` here, or review "
            f"that change as a branch (`git diff {baseline[:12]} {revision[:12]}`)."
        )


def values_only(name: str, values: Any, where: str = "") -> None:
    """Refuse derived values that name code (``_target_``, ``_allowed_targets_``, ...) or
    paths: a group choice may pick a conf/ option, but nothing else may bring code."""
    if not isinstance(values, dict):
        return
    for key, value in values.items():
        dotted = f"{where}{key}"
        if CODE_NAME.fullmatch(str(key)) or dotted == "paths" or dotted.startswith("paths."):
            raise ConfigError(
                f"experiment {name} sets {dotted}, which names code or a path, not a value. "
                "Adopting only takes values and conf/ options. Fix: put that change in conf/ "
                "by hand, on a branch, and review it."
            )
        values_only(name, value, f"{dotted}.")


def _settings(values: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in values.items()]


def adopt(name: str, branch: str, root: Path, out=sys.stdout) -> str:
    """``make adopt``: a branch whose commit is the experiment's results with conf/ saying
    what it ran with (conf/experiment/<name>.yaml), so the params check, ``make rebuild`` and
    ``make release`` treat it as any other commit. Every stage reruns once (the run's
    results are not taken on the ref's word) and must give the run's dvc.lock."""
    import yaml

    from ..runtime.params import CONF_DIR, compose
    from .git import git

    revision = find_experiment(name, root)
    if git(root, "check-ref-format", "--branch", branch or "-").returncode != 0 or (
        branch or "-"
    ).startswith("-"):
        raise ConfigError(f"BRANCH={branch!r} is not a branch name. Fix: e.g. BRANCH=adopt-{name}.")
    if git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0:
        raise ConfigError(f"BRANCH={branch!r} exists already. Fix: pick another name.")
    if git(root, "status", "--porcelain").stdout.strip():
        raise ConfigError(
            "the workspace has uncommitted changes, which switching branches could lose. "
            "Fix: commit or stash them (`git status` lists them), then adopt."
        )
    only_results(name, revision, root)
    target_text = git_show(root, revision, PARAMS_FILE) or ""
    try:
        target = yaml.safe_load(target_text)
    except yaml.YAMLError:
        target = None
    if not isinstance(target, dict):
        raise ConfigError(
            f"experiment {name}'s {PARAMS_FILE} is not a YAML mapping, so it cannot be what "
            "conf/ composes to. Nothing was adopted. Fix: adopt another experiment."
        )
    on_branch = git(root, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip()
    back = ["switch", "-q", on_branch] if on_branch else ["switch", "-q", "--detach"]
    back += [] if on_branch else [git(root, "rev-parse", "HEAD").stdout.strip()]
    conf_dir = root / CONF_DIR
    config_path = conf_dir / "config.yaml"
    file_path = conf_dir / EXPERIMENT_GROUP / f"{name}.yaml"
    switched = git(root, "switch", "-q", "-c", branch, revision)
    if switched.returncode != 0:
        raise SweepError(f"`git switch -c {branch}` failed:\n{switched.stderr.strip()}")
    try:
        config_path.write_text(
            select_experiment(config_path.read_text(encoding="utf-8"), "null"), encoding="utf-8"
        )
        choices, values = derive(conf_dir, target)
        values_only(name, values)
        file_path.parent.mkdir(exist_ok=True)
        file_path.write_text(experiment_file_text(name, choices, values), encoding="utf-8")
        config_path.write_text(
            select_experiment(config_path.read_text(encoding="utf-8"), name), encoding="utf-8"
        )
        if compose(conf_dir) != target_text:
            raise SweepError(
                f"conf/ with {file_path.relative_to(root)} does not compose to the params.yaml "
                f"experiment {name} ran with. Fix: edit conf/ by hand to match "
                f"`git show {revision[:12]}:params.yaml`."
            )
        locked = dvc_lock.outputs(dvc_lock.in_tree(root))
        # Nothing the ref claims is taken on its word (its scores, verify's report, a model a
        # CI point never pushed): every stage reruns, and the lock must come out the same.
        for step in (("checkout", "--quiet", "--allow-missing"), ("repro", "--quiet", "--force")):
            done = run(dvc_command(*step), cwd=root, env=tool_environment(root))
            if done.returncode != 0:
                said = (done.stderr or done.stdout).strip()
                raise SweepError(f"`dvc {' '.join(step)}` failed on the adopted commit:\n{said}")
        if dvc_lock.outputs(dvc_lock.in_tree(root)) != locked:
            raise SweepError(
                f"experiment {name}'s outputs, rebuilt here, differ from the ones it recorded "
                "(its dvc.lock): it does not reproduce on this machine. Nothing was adopted."
            )
        git(root, "add", "-A")
        summary = ", ".join(
            [*(f"{g}={o}" for g, o in choices.items()), *_settings(flatten(values))]
        )
        committed = git(root, "commit", "-q", "-m", f"Adopt experiment {name}: {summary}")
        if committed.returncode != 0:
            raise SweepError(f"`git commit` failed:\n{committed.stderr.strip()}")
    except BaseException as error:
        file_path.unlink(missing_ok=True)
        if file_path.parent.is_dir() and not any(file_path.parent.iterdir()):
            file_path.parent.rmdir()
        git(root, "reset", "-q", "--hard")
        returned = git(root, *back).returncode == 0
        if returned:
            git(root, "branch", "-q", "-D", branch)
        run(dvc_command("checkout", "--quiet"), cwd=root, env=tool_environment(root))
        where = (
            "nothing was adopted"
            if returned
            else f"you are still on {branch}: `git switch {back[-1]}`, then "
            f"`git branch -D {branch}`"
        )
        if isinstance(error, ProjectError):
            raise type(error)(f"{error}\n({where})") from None
        if isinstance(error, Exception):
            raise SweepError(f"adopting {name} failed: {error} ({where})") from None
        raise
    shown = summary or "no changes"
    print(f"on branch {branch}: experiment {name} as a commit ({shown}).", file=out)
    print(
        f"conf/config.yaml selects {file_path.relative_to(root)}; every stage reran and matched "
        "the run's dvc.lock. Next: "
        f"`make rebuild`, then merge {branch} (or `make release`).",
        file=out,
    )
    return branch


def run_adopt(args: argparse.Namespace) -> int:
    """`make adopt`."""
    from .registry import repo_root

    adopt(args.experiment, args.branch, repo_root())
    return 0
