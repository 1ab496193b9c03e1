"""The project's command line. Make targets and dvc.yaml stages are one-line calls into it.

Subcommands import what they need when they run, so ``params check`` never loads
scikit-learn and ``stage prepare`` never loads Hydra.
"""

import argparse
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

from .errors import ProjectError
from .stages import STAGES


def _stage(args: argparse.Namespace) -> int:
    from .config import load_params

    config = load_params(args.params)
    for name in args.names:
        outputs = import_module(f"{__package__}.stages.{name}").run(config)
        for label, path in outputs.items():
            print(f"{name}: {label} -> {path}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from . import params

    if args.action == "compose":
        print(f"wrote {params.write(args.conf, args.params)} from {args.conf}/")
    elif args.action == "check":
        params.check(args.conf, args.params)
        print(f"{args.params} matches the composition of {args.conf}/")
    else:
        print(f"stamped {params.check_and_stamp()}")
    return 0


def _lock(args: argparse.Namespace) -> int:
    from . import locking

    if args.check:
        locking.check()
        print("uv.lock, runtime.lock and requirements.lock agree with pyproject.toml")
    else:
        for path in locking.update():
            print(f"wrote {path}")
    return 0


def _env(args: argparse.Namespace) -> int:
    from .determinism import PINNED_ENV
    from .environment import drift

    if args.check:
        lines = drift()
        if lines:
            print("the environment differs from the lock (- locked, + installed):")
            print("\n".join(f"  {line}" for line in lines))
            print("Fix: `make setup` restores the locked environment.")
            return 1
        print("the environment matches the lock")
        return 0
    for key in sorted(PINNED_ENV):
        print(f"{key}={os.environ.get(key, '')}")
    print(f"interpreter={sys.executable}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from . import rebuild

    outcome = rebuild.rebuild(args.rev, varied=args.vary, keep=args.keep, record=args.record)
    if args.json:
        print(json.dumps(outcome.record(), indent=2, sort_keys=True))
    print(rebuild.report(outcome))
    return rebuild.exit_code(outcome)


def _status(args: argparse.Namespace) -> int:
    if _run_tool(["dvc", "status", "--quiet"]) == 0:
        print("the pipeline is up to date with dvc.lock")
        return 0
    _run_tool(["dvc", "status"])
    print("error: the pipeline is not up to date: run `make repro` and commit dvc.lock")
    return 1


def _tool_environment() -> dict[str, str]:
    """Put this interpreter's bin directory first, so stages run in the same environment."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run_tool(command: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", *command], env=_tool_environment())


def _repro(args: argparse.Namespace) -> int:
    return _run_tool(["dvc", "repro", *args.dvc_args])


def _pull(args: argparse.Namespace) -> int:
    return _run_tool(["dvc", "pull", *args.dvc_args])


def _lint(args: argparse.Namespace) -> int:
    return _run_tool(["ruff", "check", "."]) or _run_tool(["ruff", "format", "--check", "."])


def _test(args: argparse.Namespace) -> int:
    return _run_tool(["pytest", *args.pytest_args])


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    stage = commands.add_parser("stage", help="run pipeline stages (dvc.yaml runs one each)")
    stage.add_argument("names", nargs="+", choices=STAGES, metavar="stage")
    stage.add_argument("--params", default="params.yaml")
    stage.set_defaults(handler=_stage)

    params = commands.add_parser("params", help="compose conf/ into params.yaml, or check it")
    params.add_argument("action", choices=("compose", "check", "stage"))
    params.add_argument("--conf", default="conf")
    params.add_argument("--params", default="params.yaml")
    params.set_defaults(handler=_params)

    lock = commands.add_parser("lock", help="re-lock with uv and rewrite the exported locks")
    lock.add_argument("--check", action="store_true", help="only check that the locks agree")
    lock.set_defaults(handler=_lock)

    repro = commands.add_parser("repro", help="dvc repro, in this environment")
    repro.add_argument("dvc_args", nargs=argparse.REMAINDER)
    repro.set_defaults(handler=_repro)

    env = commands.add_parser("env", help="the pinned variables, or drift from the lock")
    env.add_argument("--check", action="store_true", help="exit 1 if packages differ from the lock")
    env.set_defaults(handler=_env)

    rebuild = commands.add_parser("rebuild", help="rebuild a revision; compare with its dvc.lock")
    rebuild.add_argument("rev", nargs="?", default="HEAD", help="commit or tag (default HEAD)")
    rebuild.add_argument("--vary", action="store_true", help="vary TZ, locale, hash seed, umask")
    rebuild.add_argument("--keep", action="store_true", help="keep the temporary worktree")
    rebuild.add_argument("--json", action="store_true", help="also print the record as JSON")
    rebuild.add_argument(
        "--no-record", dest="record", action="store_false", help="do not keep a git note"
    )
    rebuild.set_defaults(handler=_rebuild)

    status = commands.add_parser("status", help="fail unless dvc.lock matches the workspace")
    status.set_defaults(handler=_status)

    pull = commands.add_parser("pull", help="dvc pull, in this environment")
    pull.add_argument("dvc_args", nargs=argparse.REMAINDER)
    pull.set_defaults(handler=_pull)

    lint = commands.add_parser("lint", help="ruff check and ruff format --check")
    lint.set_defaults(handler=_lint)

    test = commands.add_parser("test", help="the project's pytest suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test.set_defaults(handler=_test)
    return root


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
