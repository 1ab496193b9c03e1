# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""``make sweep``: one DVC experiment per point of a Hydra sweep, queued and run on local
workers, each through the whole pipeline (verify included); ``make experiments``: the runs
compared (scores, verify's result, the parameters that vary).

The points are expanded by DVC's own Hydra sweeper (what ``dvc exp run --queue -S`` does), so
a sweep means here exactly what it means to DVC; the queue and its workers are DVC's (celery).
What this adds: every point is checked against conf/ and the schema before anything runs, each
point is named with its overrides, a failed or non-reproducible one is reported with the
reason its log gives, and it never stops the others.
"""

import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError, ProjectError
from ..runtime.proc import dvc_command, interpreter_first_on_path, run
from .git import git_environment, git_show, run_to_file, show_yaml
from .registry import verify_reports

PARAMS_FILE = "params.yaml"
# How often the queue is read while the points run, in seconds (the sweep's last point is
# reported up to this long after it ends).
POLL_SECONDS = 1.0
# Polls (10 s) a point may be missing from the queue (between its states) before it counts as
# lost.
LOST_POLLS = 10
# Polls (60 s) with points queued and no worker alive before the sweep stops waiting (workers
# take a few seconds to start).
IDLE_POLLS = 60
# Hydra's and the model file's keys that name code (_target_, _args_, _allowed_targets_): a
# sweep's overrides may not mention one, nor an adopted experiment's values set one.
CODE_NAME = re.compile(r"(?<!\w)_\w*_(?!\w)")
# A name a sweep gives its points: <prefix>-<n>; DVC refuses names git refs cannot hold.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")
# How a failed run's log says why: the project's stages print ``error: <message>`` for an
# error they handle (reproml/runtime/stage.py); any other exception leaves a traceback; DVC
# then adds its own line, which names the stage but not the cause.
STAGE_ERROR = "error:"
TRACEBACK_START = "Traceback (most recent call last):"
DVC_STAGE_FAILED = re.compile(r"^ERROR: failed to reproduce '([^']+)'")


class SweepError(ProjectError):
    """A sweep could not be queued or run (as opposed to: a point ran and failed)."""


@dataclass
class Point:
    """One run of a sweep: its experiment name, its overrides and, once run, how it went."""

    name: str
    overrides: list[str]
    state: str = "queued"
    reason: str = ""


def expand(overrides: list[str]) -> list[list[str]]:
    """The points of a sweep, in DVC's order (``dvc exp run --queue -S`` names them
    ``<name>-1``, ``<name>-2``, ... in this order)."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    for override in overrides:
        if "$" in override or CODE_NAME.search(override):
            raise ConfigError(
                f"the sweep override {override!r} names code or an interpolation ($, _target_ "
                "and the like): a sweep sets values, and a point's params.yaml is pushed where "
                "others read it. Fix: give plain values; change code in conf/ on a branch."
            )
    if not overrides:
        raise ConfigError(
            "the sweep has no overrides. Fix: give Hydra's sweep syntax, e.g. "
            'make sweep ARGS="model.C=0.1,1,10 split.test_size=0.2,0.3".'
        )
    try:
        sweeps = get_hydra_sweeps({PARAMS_FILE: list(overrides)})
    except (HydraException, InvalidArgumentError) as error:
        raise ConfigError(
            f"the sweep {' '.join(overrides)!r} is not Hydra override syntax: {error}. Fix: "
            "key=value, key=a,b,c for a sweep, or key=range(1,4); quote the whole ARGS."
        ) from None
    return [sweep[PARAMS_FILE] for sweep in sweeps]


def check_points(points: list[list[str]], conf_dir: str = "conf") -> None:
    """Compose every point, check it against the team's schema and build its model (keys and
    values against the estimator's own constraints) before anything is queued: a key that
    does not exist would otherwise fail every point, after minutes, one by one."""
    import yaml

    from ..runtime.params import compose
    from .settings import team_module

    config, models = team_module("config"), team_module("models")
    base = vars(config.validate(yaml.safe_load(compose(conf_dir)), source=conf_dir).paths)
    for overrides in points:
        where = f"the sweep point {' '.join(overrides)!r}"
        try:
            text = compose(conf_dir, overrides)
        except ProjectError:
            raise
        except Exception as error:  # Hydra names the key it cannot place
            raise ConfigError(
                f"{where} does not compose with {conf_dir}/: {error}. Fix: use a key that "
                f"conf/ has (params.yaml lists them), or +key=value to add one."
            ) from None
        try:
            checked = config.validate(yaml.safe_load(text), source=where)
            models.build(checked, source=where)
        except ProjectError as error:
            fix = "" if "Fix:" in str(error) else " Fix: change that value in ARGS."
            raise ConfigError(f"{error}{fix}") from None
        refuse_paths_outside(vars(checked.paths), base, where)


def refuse_paths_outside(
    paths: dict[str, str], base: dict[str, str], where: str, root: Path | None = None
) -> None:
    """A point's paths stay in the project, and a path the project keeps in data/ (``base``,
    conf/paths as composed without the sweep's overrides) stays in data/: an override such as
    ``paths.raw_data=/home/you/.ssh/id_ed25519`` would make a stage read, and a pushed
    experiment carry, any file the user can read."""
    root = (root or Path.cwd()).resolve()
    data = root / "data"
    for key, value in paths.items():
        in_data = (root / str(base.get(key, ""))).resolve().is_relative_to(data)
        inside = data if in_data else root
        if not (root / str(value)).resolve().is_relative_to(inside):
            raise ConfigError(
                f"{where}: paths.{key}: {value!r} is outside "
                f"{'the data/ folder' if in_data else 'the project'}. Fix: leave the paths "
                "to conf/paths, or keep them in the project (data in data/)."
            )


def sweep_prefix(name: str | None) -> str:
    prefix = name or datetime.now().strftime("sweep-%m%d-%H%M%S")
    if not NAME_PATTERN.match(prefix):
        raise ConfigError(
            f"NAME={prefix!r} cannot name experiments. Fix: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        )
    return prefix


def point_names(prefix: str, count: int) -> list[str]:
    """DVC names a sweep's points <prefix>-<n>, and a single point <prefix>."""
    return [prefix] if count == 1 else [f"{prefix}-{index + 1}" for index in range(count)]


def tool_environment(root: Path) -> dict[str, str]:
    """This interpreter's bin directory first on PATH (DVC's workers run the stages with it),
    and a git identity if none is configured (DVC commits each experiment)."""
    return interpreter_first_on_path(git_environment(root))


def queue(points: list[list[str]], overrides: list[str], prefix: str, root: Path) -> list[Point]:
    """Queue the sweep with DVC (``dvc exp run --queue --name``): one experiment per point."""
    names = point_names(prefix, len(points))
    taken = existing_names(root) & set(names)
    if taken:
        raise SweepError(
            f"experiments named {', '.join(sorted(taken))} exist already. Fix: pick another "
            "NAME=, or remove them (dvc exp remove <name>; dvc queue remove <name>)."
        )
    command = dvc_command("exp", "run", "--queue", "--name", prefix)
    for override in overrides:
        command += ["-S", override]
    result = run(command, cwd=root, env=tool_environment(root))
    if result.returncode != 0:
        raise SweepError(f"`dvc exp run --queue` refused the sweep:\n{result.stderr.strip()}")
    return [Point(name, point) for name, point in zip(names, points, strict=True)]


def existing_names(root: Path) -> set[str]:
    """Names already taken by experiments or queue entries."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        names = {entry.name for entry in queue.iter_queued()}
        names |= {entry.name for entry in queue.iter_active()}
        names |= {done.entry.name for done in queue.iter_done()}
    shown = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], cwd=root)
    names |= {ref.rsplit("/", 1)[-1] for ref in shown.stdout.split()}
    return {name for name in names if name}


def run_points(points: list[Point], jobs: int, root: Path, out=sys.stdout) -> None:
    """Start ``jobs`` DVC workers and wait until every point has run, saying as each ends."""
    started = run(
        dvc_command("queue", "start", "-j", str(jobs)), cwd=root, env=tool_environment(root)
    )
    if started.returncode != 0:
        raise SweepError(f"`dvc queue start` failed:\n{started.stderr.strip()}")
    from dvc.repo import Repo

    waiting = {point.name: point for point in points}
    lost_polls = idle_polls = 0
    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        while waiting:
            active = {entry.name for entry in queue.iter_active()}
            in_flight = active | {entry.name for entry in queue.iter_queued()}
            # Points still queued, none running and no worker alive: nothing will run them.
            idle = bool(set(waiting) & in_flight) and not active
            idle_polls = idle_polls + 1 if idle and not queue.worker_status() else 0
            if idle_polls > IDLE_POLLS:
                raise SweepError(
                    f"{', '.join(sorted(waiting))} are queued but no DVC worker is running. "
                    "Fix: `dvc queue start -j <n>` runs them (`make experiments` then compares)."
                )
            done_now = list(queue.iter_done())
            seen = in_flight | {done.entry.name for done in done_now}
            lost_polls = lost_polls + 1 if set(waiting) - seen else 0
            if lost_polls > LOST_POLLS:
                raise SweepError(
                    f"{', '.join(sorted(set(waiting) - seen))} left DVC's queue without a "
                    "result (removed or killed?). Fix: `dvc queue status` shows the queue; "
                    "run the sweep again under another NAME=."
                )
            for done in done_now:
                point = waiting.pop(done.entry.name, None)
                if point is None:
                    continue
                result = done.result
                if result is not None and result.exp_hash and result.ref_info:
                    point.state = "verified"
                else:
                    point.state = "failed"
                    point.reason = failure_reason(point.name, root)
                print(f"  {point.name} ({' '.join(point.overrides)}): {describe(point)}", file=out)
            if waiting:
                time.sleep(POLL_SECONDS)


def failure_reason(name: str, root: Path) -> str:
    """Why a point failed, from its own log (``dvc queue logs``): see ``reason_in``."""
    said = run(dvc_command("queue", "logs", name), cwd=root).stdout
    return reason_in(said) or f"no log (see `dvc queue logs {name}`)"


def reason_in(log: str) -> str:
    """Why a run failed, from its log: the failing stage's own message (its ``error:`` line
    for an error the project handles, else the line its traceback ends with) and the first
    outputs verify found different, after the stage's name. DVC's own error only when no
    stage said anything: its "failed to reproduce" names the stage, never the cause."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    stages = [found.group(1) for line in lines if (found := DVC_STAGE_FAILED.match(line))]
    handled = [
        line.removeprefix(STAGE_ERROR).strip() for line in lines if line.startswith(STAGE_ERROR)
    ]
    said = handled[-1:] or raised_in(log)[-1:]
    mismatched = [line for line in lines if "MISMATCH" in line][:3]
    if said or mismatched:
        where = f"in {stages[-1]}: " if stages else ""
        return where + " | ".join(said + mismatched)
    dvcs = [line for line in lines if line.startswith("ERROR:")]
    return " | ".join(dvcs[-1:] or lines[-1:])


def raised_in(log: str) -> list[str]:
    """The exception line of every Python traceback in ``log`` (``ValueError: ...``): the
    first line after ``Traceback (most recent call last):`` that is not indented (the frames
    are). The last one is what was raised in the end (chained tracebacks come first)."""
    found, inside = [], False
    for line in log.splitlines():
        if line.strip() == TRACEBACK_START:
            inside = True
        elif inside and line.strip() and not line[0].isspace():
            found.append(line.strip())
            inside = False
    return found


def describe(point: Point) -> str:
    if point.state == "verified":
        return "ran, and verify's isolated rebuild matches"
    return f"FAILED: {point.reason}"


def sweep(overrides: list[str], jobs: int, name: str | None, root: Path, out=sys.stdout) -> int:
    """``make sweep``: queue, run and report; 1 if any point failed (after all have run)."""
    points = expand(overrides)
    check_points(points)
    prefix = sweep_prefix(name)
    queued = queue(points, overrides, prefix, root)
    print(f"queued {len(queued)} experiments ({prefix}), running on {jobs} workers:", file=out)
    try:
        run_points(queued, jobs, root, out=out)
    except KeyboardInterrupt:
        print(
            "stopped waiting; the points still run in the background: `dvc queue status`, "
            "`dvc queue kill <name>`, then `make experiments`.",
            file=sys.stderr,
        )
        return 130
    failed = [point for point in queued if point.state != "verified"]
    print(file=out)
    print(compare(root, only=[point.name for point in queued]), file=out)
    if failed:
        print(
            f"error: {len(failed)} of {len(queued)} points failed: "
            + "; ".join(f"{point.name} ({' '.join(point.overrides)})" for point in failed)
            + ". Their logs: `dvc queue logs <name>`.",
            file=sys.stderr,
        )
        return 1
    print("every point ran and verified. Keep one: make adopt EXP=<name> BRANCH=<branch>", file=out)
    return 0


# ---- comparing experiments -------------------------------------------------------------


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


# DVC's states of a run whose files are its own results (`dvc exp show`: success, queued,
# running, failed), and ours for the commit the experiments branch from.
SCORED_STATES = ("success", "baseline")


@dataclass
class Row:
    name: str
    state: str
    revision: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    verify: str = ""
    # Why a failed run failed, when its log is not here to read (a CI point's job).
    reason: str = ""

    @property
    def scored(self) -> bool:
        """Whether the run has scores of its own: a queued, running or failed one has only
        its baseline's files, so showing them would credit it with the baseline's scores."""
        return self.state in SCORED_STATES


def collect(root: Path) -> list[Row]:
    """The baseline and its experiments, from ``dvc exp show --json`` (queued, running and
    failed ones included)."""
    shown = run(dvc_command("exp", "show", "--json"), cwd=root, env=tool_environment(root))
    if shown.returncode != 0:
        raise SweepError(f"`dvc exp show` failed:\n{shown.stderr.strip()}")
    rows = []
    for baseline in json.loads(shown.stdout or "[]"):
        if baseline.get("rev") == "workspace":
            continue
        rows.append(_row(baseline, baseline.get("name") or baseline["rev"][:7], "baseline"))
        for experiment in baseline.get("experiments") or []:
            revision = (experiment.get("revs") or [{}])[0]
            state = (experiment.get("executor") or {}).get("state") or "success"
            name = experiment.get("name") or revision.get("name") or revision.get("rev", "")[:7]
            rows.append(_row(revision, name, state))
    return rows


def _row(revision: dict, name: str, state: str) -> Row:
    """A run's parameters and scores. A run that has not succeeded keeps no scores: DVC shows
    its queued commit, whose metrics files are its baseline's."""
    data = revision.get("data") or {}
    params = (data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {}
    metrics: dict[str, Any] = {}
    for found in (data.get("metrics") or {}).values():
        metrics.update(flatten(found.get("data") or {}))
    row = Row(name, state, revision.get("rev", ""), flatten(params), metrics)
    if not row.scored:
        row.metrics = {}
    return row


def verify_result(row: Row, root: Path) -> str:
    """What verify said about a run (its report at the run's commit), or that it failed."""
    if row.state == "failed":
        return "FAILED"
    if row.state in ("queued", "running"):
        return row.state
    reports = list(verify_reports(root, row.revision).values()) if row.revision else []
    if not reports:
        return "no report"
    checks = [c for report in reports for c in report["checks"] if isinstance(c, dict)]
    if all(report["result"] == "match" for report in reports):
        return f"match ({len(checks)} outputs)"
    differ = [str(c.get("artifact")) for c in checks if c.get("result") != "match"]
    return "MISMATCH: " + ", ".join(differ)


def compare(root: Path, only: list[str] | None = None, failed: list[Row] | None = None) -> str:
    """A table of the runs: name, verify's result, every parameter that varies among them
    (paths excluded) and every scalar score (none for a run that did not succeed), then why
    each failed run failed. ``failed``: runs DVC does not know here (a CI point that pushed
    nothing), with their reason."""
    rows = collect(root)
    if only is not None:
        rows = [row for row in rows if row.state == "baseline" or row.name in only]
    rows += failed or []
    runs = [row for row in rows if row.state != "baseline"]
    if not runs:
        return "no experiments of this commit yet: `make sweep ARGS=...` runs some."
    for row in rows:
        row.verify = verify_result(row, root)
    keys = sorted({key for row in rows for key in row.params if not key.startswith("paths.")})
    varying = [key for key in keys if len({repr(row.params.get(key)) for row in rows}) > 1]
    scores = sorted(
        {
            key
            for row in rows
            for key, value in row.metrics.items()
            if isinstance(value, int | float) and not key.startswith("per_class.")
        }
    )
    header = ["experiment", "verified", *varying, *scores]
    table = [header] + [
        [
            row.name,
            row.verify,
            *(_cell(row.params.get(key)) for key in varying),
            *(_cell(row.metrics.get(key)) if row.scored else "" for key in scores),
        ]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    for row in rows:  # why each failed run failed, from its log, under the table
        if row.state == "failed":
            lines.append(f"{row.name} FAILED: {row.reason or failure_reason(row.name, root)}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ---- adopting one ----------------------------------------------------------------------

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
    from .git import git, show_yaml

    baseline = git(root, "rev-parse", "--verify", "--quiet", f"{revision}^").stdout.strip()
    if not baseline or git(root, "merge-base", "--is-ancestor", baseline, "HEAD").returncode:
        raise ConfigError(
            f"experiment {name} was not run on this branch's history (its baseline "
            f"{baseline[:12] or '?'} is not an ancestor of HEAD). Fix: switch to the branch it "
            "was run from, or run the point again here."
        )
    lock = show_yaml(root, baseline, "dvc.lock") or {}  # the baseline's word, not the ref's
    stages = lock.get("stages") if isinstance(lock, dict) else None
    paths = {
        str(out.get("path", "")).rstrip("/")
        for stage in (stages or {}).values()
        if isinstance(stage, dict)
        for out in stage.get("outs") or []
        if isinstance(out, dict)
    }
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
        if path not in (PARAMS_FILE, "dvc.lock")
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


def outputs_locked(root: Path) -> dict[str, str]:
    """Every output's hash in dvc.lock, by path."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    return {
        out["path"]: out.get("md5") or out.get("hash", "")
        for stage in (lock.get("stages") or {}).values()
        for out in stage.get("outs") or []
    }


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
        locked = outputs_locked(root)
        # Nothing the ref claims is taken on its word (its scores, verify's report, a model a
        # CI point never pushed): every stage reruns, and the lock must come out the same.
        for step in (("checkout", "--quiet", "--allow-missing"), ("repro", "--quiet", "--force")):
            done = run(dvc_command(*step), cwd=root, env=tool_environment(root))
            if done.returncode != 0:
                said = (done.stderr or done.stdout).strip()
                raise SweepError(f"`dvc {' '.join(step)}` failed on the adopted commit:\n{said}")
        if outputs_locked(root) != locked:
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


# ---- across CI runners -----------------------------------------------------------------
# One runner per point: a first job plans the points (`plan`), each runner runs its own
# in its workspace and pushes the experiment to origin (git refs and the DVC remote), and a
# last job pulls them all and compares (`collect`). A point with nothing pushed failed.


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
