"""``make sweep``: one DVC experiment per point of a Hydra sweep, queued and run on local
workers, each through the whole pipeline (verify included).

The points are expanded by DVC's own Hydra sweeper (what ``dvc exp run --queue -S`` does), so
a sweep means here exactly what it means to DVC; the queue and its workers are DVC's (celery).
What this adds: every point is checked against conf/ and the schema before anything runs, each
point is named with its overrides, a failed or non-reproducible one is reported with the
reason its log gives, and it never stops the others. The CI sweep (ci_sweep.py) plans and
checks its points with the same functions.
"""

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..runtime.errors import ConfigError, ProjectError
from ..runtime.proc import run
from .commands import dvc_command, run_leaving_daemons
from .experiment_runs import PARAMS_FILE, SweepError, failure_reason, tool_environment
from .experiment_table import compare

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
    from .settings import team

    contract = team()
    base = vars(contract.validate(yaml.safe_load(compose(conf_dir)), conf_dir).paths)
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
            checked = contract.validate(yaml.safe_load(text), where)
            contract.build(checked, where)
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
    command = dvc_command("queue", "start", "-j", str(jobs))
    started = run_leaving_daemons(command, cwd=root, env=tool_environment(root))
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


def run_sweep(args: argparse.Namespace) -> int:
    """`make sweep` here, or its CI steps (`make sweep-plan`, `-point`, `-collect`)."""
    from . import ci_sweep
    from .registry import repo_root

    root = repo_root()
    if args.point or args.plan or args.collect:  # a sweep across CI runners
        return ci_sweep.command(
            args.overrides,
            args.name,
            root,
            args.point,
            args.plan,
            args.collect,
            args.gitlab,
            args.require_sealed,
        )
    return sweep(args.overrides, args.jobs or os.cpu_count() or 1, args.name, root)
