"""The project's tool commands (params, data, rebuild, release, report, ...): their table and
their arguments, nothing else. Each command's handler, ``run_<command>(args)``, lives in the
module whose job it is, and is imported only when that command runs. Make targets are one-line
calls into it; pipeline stages are not (they run through runtime/stage.py), so editing a command
never retrains a model.
"""

import argparse
import importlib
import sys

from ..runtime.errors import ProjectError


def option(*names: str, **settings) -> tuple[tuple[str, ...], dict]:
    """One argument of a command, as ``add_argument`` takes it."""
    return names, settings


# Option groups more than one command takes.
REMAINDER = {"nargs": argparse.REMAINDER}
REBUILDING = [
    option("--vary", action="store_true", help="also vary TZ, locale, hash seed and umask"),
    option("--timeout", type=float, help="seconds before a dvc repro is cut off"),
    option("--no-record", dest="record", action="store_false", help="do not keep git notes"),
    option("--push", action="store_true", help="then push the records to origin"),
    option(
        "--require-sealed",
        action="store_true",
        help="fail, running nothing, where the sandbox (bubblewrap) cannot run",
    ),
    option(
        "--accept-equivalent",
        action="store_true",
        help="exit 0, not 3, when only another machine's BLAS kernel moved the bytes",
    ),
]
PARAMS_FILE_OPTION = option("--params", default="params.yaml")

# The commands: name -> ("module:handler" in this package, help, arguments). Make targets call
# these.
COMMANDS = {
    "params": (
        "params:run_params",
        "compose conf/ into params.yaml, or check it",
        [
            option("action", choices=("compose", "check")),
            option("--conf", default="conf"),
            PARAMS_FILE_OPTION,
        ],
    ),
    "data": (
        "ingest:run_data",
        "bring a table under DVC and write its schema",
        [
            option("source", help="a local CSV/Parquet file, or a URL or bucket path"),
            option("--target", required=True, help="the column to predict"),
            option("--name", help="the dataset's name (default: from the file name)"),
            option("--force", action="store_true", help="replace an existing schema"),
            option(
                "--task",
                choices=("classification", "regression"),
                help="what the target is (default: inferred from it, and printed)",
            ),
            option("--delimiter", help="a CSV's field separator (default: sniffed)"),
            option(
                "--missing-target",
                choices=("drop",),
                help="leave out the rows whose target is missing (default: refuse them)",
            ),
        ],
    ),
    "lock": (
        "locking:run_lock",
        "re-lock with uv and rewrite the exported locks",
        [
            option("--check", action="store_true", help="only check that the locks agree"),
            option("--add", metavar="REQUIREMENT", help="add a runtime library first"),
        ],
    ),
    "repro": (
        "repro:run_repro",
        "dvc repro, in this environment",
        [option("dvc_args", **REMAINDER)],
    ),
    "deps": (
        "deps:run_deps",
        "write each stage's code deps in dvc.yaml from what it loads when it runs",
        [option("--check", action="store_true", help="only fail if they differ")],
    ),
    "env": (
        "locking:run_env",
        "the pinned variables, or drift from the lock",
        [option("--check", action="store_true", help="exit 1 if packages differ from the lock")],
    ),
    "rebuild": (
        "rebuild:run_rebuild",
        "rebuild a revision; compare with its dvc.lock",
        [
            option("rev", nargs="?", default="HEAD", help="commit, tag or version (default HEAD)"),
            option("--keep", action="store_true", help="keep the temporary worktree"),
            option(
                "--trust",
                metavar="REV",
                help="the revision again, to rebuild one that is not a verified release",
            ),
            option("--json", action="store_true", help="also print the record as JSON"),
            *REBUILDING,
        ],
    ),
    "sandbox": (
        "sandbox:run_sandbox",
        "make sure rebuilds run sealed (installs bubblewrap as root)",
        [],
    ),
    "field-rebuild": (
        "field:run_field_rebuild",
        "rebuild every release as it was released",
        [
            option("--release", action="append", help="only this version or tag (repeatable)"),
            option("--list", action="store_true", help="print the release tags as JSON"),
            *REBUILDING,
        ],
    ),
    "predict": (
        "predicting:run_predict",
        "label new rows with the verified model",
        [
            option("features", help="raw rows (CSV or Parquet) with the columns the model uses"),
            option("out", help="where to write one prediction per row"),
            option(
                "--version",
                help="a release (v1.0.0): its own model, code and environment (default: the "
                "workspace's model)",
            ),
            PARAMS_FILE_OPTION,
        ],
    ),
    "release": (
        "release:run_release",
        "tag HEAD as a release, if the gates pass",
        [
            option("version", help="like v1.2.0"),
            option("--override", help="why a release the criteria refuse goes out (signed)"),
        ],
    ),
    "provenance": (
        "provenance:run_provenance",
        "the provenance statement of a release or commit",
        [
            option("rev", nargs="?", default="HEAD", help="version, release tag or commit"),
            option("--json", action="store_true", help="only the JSON statement"),
        ],
    ),
    "registry": (
        "registry_listing:run_registry",
        "list released versions and their registry stages",
        [],
    ),
    "gto": (
        "tags:run_gto",
        "a GTO action that makes a tag (unassign, deprecate, ...), signed",
        [option("gto_args", **REMAINDER)],
    ),
    "promote": (
        "release:run_promote",
        "assign a registry stage (prod, staging) to a version",
        [option("version"), option("stage")],
    ),
    "rollback": (
        "release:run_rollback",
        "materialise a released model, verified",
        [option("version"), option("--out", help="directory (default build/rollback/<tag>)")],
    ),
    "compare": (
        "compare:run_compare",
        "score two versions on the same rows (B's test table), A in its own environment",
        [
            option("--a", help="a release or revision (default: the release in prod)"),
            option("--b", help="a release or revision, or workspace (the default)"),
            option("--resamples", type=int, default=1000, help="bootstrap draws"),
            option("--trust", help="the revisions (not releases) named again: their code runs"),
        ],
    ),
    "incident": (
        "incidents:run_incident",
        "record a production incident about a release, signed",
        [
            option("--version", required=True),
            option("--cause", required=True),
            option("--note", default=""),
        ],
    ),
    "check-releases": ("storage:run_check_releases", "is every release in the remote?", []),
    "gc": ("storage:run_gc", "collect the DVC cache, guarding releases and unpushed work", []),
    "report": (
        "report:run_report",
        "the reproducibility measures",
        [
            option("--json", action="store_true"),
            option("--plot", help="also write an SVG of time to reproduce per release"),
            option("--quarters-plot", help="also write an SVG of the measures by quarter"),
        ],
    ),
    "claims": (
        "claims:run_claims",
        "the signed claims' chain: what is newest, and any claim deleted",
        [option("--accept", action="append", help="a tag or commit deleted on purpose")],
    ),
    "records": (
        "notes:run_records",
        "exchange rebuild notes with the remote",
        [option("action", choices=("fetch", "push"))],
    ),
    "check-files": (
        "guards:run_check_files",
        "refuse large or DVC-tracked files in git",
        [option("files", nargs="*")],
    ),
    "plots": (
        "offline_plots:run_plots",
        "dvc plots as SVG files, rendered offline",
        [
            option("revisions", nargs="*", help="compare with these (dvc plots diff)"),
            option("--out", default="build/plots"),
        ],
    ),
    "remote-credentials": ("remote:run_remote_credentials", "CI secrets -> .dvc/config.local", []),
    "signing-key": ("signing:run_signing_key", "sign with the key in $REPROML_SIGNING_KEY", []),
    "status": ("commands:run_status", "fail unless dvc.lock matches the workspace", []),
    "experiments": (
        "experiment_table:run_experiments",
        "the experiments compared: verify's result, the parameters that vary, the scores",
        [option("--all", action="store_true", help="dvc exp show, every column to compare")],
    ),
    "sweep": (
        "sweep:run_sweep",
        "one verified DVC experiment per point of a Hydra sweep, on local workers",
        [
            option("overrides", nargs="*", help="Hydra overrides, e.g. model.C=0.1,1,10"),
            option("--jobs", type=int, help="workers (default: one per core)"),
            option("--name", help="the experiments' name prefix"),
            option("--plan", action="store_true", help="print the points as a CI matrix"),
            option("--gitlab", action="store_true", help="the plan as a GitLab child pipeline"),
            option(
                "--point", help="run this one point here, its result in build/sweep/ (a CI runner)"
            ),
            option(
                "--collect",
                action="store_true",
                help="compare every point's result from build/sweep/",
            ),
            option("--require-sealed", action="store_true", help="a point: refuse to run unsealed"),
        ],
    ),
    "adopt": (
        "adopt:run_adopt",
        "an experiment as a commit on a new branch, conf/ saying what it ran with",
        [option("experiment"), option("branch")],
    ),
    "pull": (
        "commands:run_pull",
        "dvc pull, in this environment",
        [option("dvc_args", **REMAINDER)],
    ),
    "lint": ("commands:run_lint", "ruff check and ruff format --check", []),
    "test": (
        "commands:run_test",
        "the project's pytest suite",
        [option("pytest_args", **REMAINDER)],
    ),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reproml", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    for name, (target, summary, arguments) in COMMANDS.items():
        command = commands.add_parser(name, help=summary)
        for names, settings in arguments:
            command.add_argument(*names, **settings)
        command.set_defaults(handler=target)
    return root


# Values that name a revision, version or stage: dest -> (make variable, what, the fix).
NAMED_VALUES = {
    "rev": (
        "REV",
        "revision",
        "name a commit, tag or version, e.g. REV=v1.0.0 (options such as --vary go in "
        "REBUILD_ARGS)",
    ),
    "version": ("VERSION", "version", "give a version, e.g. VERSION=v1.2.0"),
    "stage": ("STAGE", "stage", "give a stage name, e.g. STAGE=prod"),
    "release": ("RELEASE", "release", "give a version or release tag, e.g. RELEASE=v1.0.0"),
    "revisions": ("PLOTS_REV", "revision", "name a commit, tag or branch, e.g. PLOTS_REV=main"),
    "experiment": ("EXP", "experiment", "copy a name from `make experiments`"),
    "a": ("A", "version", "give a version, e.g. A=v1.0.0"),
    "b": ("B", "version", "give a version or workspace, e.g. B=v2.0.0"),
    "branch": ("BRANCH", "branch", "give a new branch name, e.g. BRANCH=adopt-sweep-1"),
}


def refuse_option_like(args: argparse.Namespace) -> str | None:
    """What is wrong with a revision, version or stage that is empty or begins with '-'
    (git, dvc and gto would read it as an option), or None."""
    for dest, (variable, what, fix) in NAMED_VALUES.items():
        values = getattr(args, dest, None)
        for value in [values] if isinstance(values, str) else values or []:
            if not value or value.startswith("-"):
                problem = "it is empty" if not value else "it begins with '-', like an option"
                return f"{variable}={value!r} is not a {what}: {problem}. Fix: {fix}."
    return None


def handler(name: str):
    """The function a table entry names ("module:function"), imported now."""
    module, function = name.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), function)


def main(argv: list[str]) -> int:
    from . import signing

    # CI's key leaves the environment before anything runs, so no child process inherits it.
    signing.hold_key_from_environment()
    args = parser().parse_args(argv)
    problem = refuse_option_like(args)
    if problem:  # a usage error, as argparse's own (exit 2): nothing has run
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return handler(args.handler)(args)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
