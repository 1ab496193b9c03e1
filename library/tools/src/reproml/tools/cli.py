"""The project's tool commands (params, data, rebuild, release, report, ...). Make targets are
one-line calls into it; pipeline stages are not (they run through runtime/stage.py), so editing
a command here never retrains a model. Subcommands import what they need when they run.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.proc import interpreter_first_on_path


def _params(args: argparse.Namespace) -> int:
    from ..runtime.params import check
    from .params import write
    from .settings import team

    if args.action == "compose":
        print(f"wrote {write(args.conf, args.params)} from {args.conf}/")
    elif args.action == "check":
        check(team().load_params, args.conf, args.params)
        print(f"{args.params} matches the composition of {args.conf}/")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .ingest import bring_in, summary

    options = {"delimiter": args.delimiter, "missing_target": args.missing_target}
    written = bring_in(args.source, args.target, args.name, args.force, args.task, **options)
    text, warning = summary(written, args.target, task_given=bool(args.task))
    print(text)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _lock(args: argparse.Namespace) -> int:
    from . import locking

    if args.check:
        locking.check()
        print("uv.lock, runtime.lock and requirements.lock agree with pyproject.toml")
        return 0
    if args.add:
        locking.add_and_lock(args.add)
        print(f"added {args.add} to pyproject.toml's runtime dependencies")
    for path in locking.update():
        print(f"wrote {path}")
    if args.add:
        locking.sync()
        print("installed the new lock into .venv (the stages retrain on the next `make repro`)")
    return 0


def _deps(args: argparse.Namespace) -> int:
    from . import deps

    changed = deps.write(check=args.check)
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


def _env(args: argparse.Namespace) -> int:
    from ..runtime.environment import drift
    from ..runtime.launcher import PINNED_ENV

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
    from .errors import LockError, RebuildError

    try:
        outcome = rebuild.rebuild(
            args.rev,
            varied=args.vary,
            keep=args.keep,
            record=args.record,
            timeout=args.timeout,
            trust=args.trust,
            require_sealed=args.require_sealed,
        )
    except (RebuildError, LockError) as error:  # nothing rebuilt (no uv, say): "could not"
        print(f"error: {error}", file=sys.stderr)
        # The workspace note (uncommitted changes left out) ends the output, as it began it.
        for note in getattr(error, "__notes__", ()):
            print(note, file=sys.stderr)
        return rebuild.EXIT_ERROR
    if args.json:
        print(json.dumps(outcome.as_note(), indent=2, sort_keys=True))
    print(rebuild.report(outcome))
    code = rebuild.exit_code(outcome, accept_equivalent=args.accept_equivalent)
    return _publish_notes(code) if args.push and args.record else code


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox import install

    print(install())
    return 0


def _publish_notes(code: int) -> int:
    """Push the records whatever the rebuild found: a CI job that fails still publishes them,
    and a push that fails fails the job (GitLab only warns about after_script)."""
    from . import notes, registry
    from .errors import RecordsError

    try:
        print(notes.push(registry.repo_root()))
    except RecordsError as error:
        print(f"error: {error}", file=sys.stderr)
        return code or 1
    return code


def _field_rebuild(args: argparse.Namespace) -> int:
    from . import field, registry

    repo = registry.repo_root()
    if args.list:
        print(json.dumps(field.release_list(repo)))
        return 0
    results = field.rebuild_releases(
        repo,
        args.release,
        varied=args.vary,
        accept_equivalent=args.accept_equivalent,
        record=args.record,
        timeout=args.timeout,
        require_sealed=args.require_sealed,
    )
    text, code = field.summary(results, args.vary)
    print(text, file=sys.stderr if code else sys.stdout)
    return _publish_notes(code) if args.push and args.record else code


def _predict(args: argparse.Namespace) -> int:
    if args.version:
        from .serving import predict_with_release

        print(f"wrote {predict_with_release(args.version, args.features, args.out)}")
        return 0
    from .settings import team

    contract = team()
    print(f"wrote {contract.predict(contract.load_params(args.params), args.features, args.out)}")
    return 0


def _release(args: argparse.Namespace) -> int:
    from .release import release

    created = release(args.version, args.override)
    print(
        f"released {created.tag} at {created.commit[:12]}; publish it with "
        f"`git push origin {created.tag}`"
    )
    return 0


def _provenance(args: argparse.Namespace) -> int:
    from . import provenance, registry

    title, statement, problems = registry.statement_for(args.rev)
    if not args.json:
        print(provenance.describe(statement, title) + "\n")
    print(json.dumps(statement, indent=2, sort_keys=True))
    if problems:
        print("provenance does NOT check out:\n" + "\n".join(f"  - {p}" for p in problems))
        return 1
    return 0


def _registry(args: argparse.Namespace) -> int:
    from .registry import repo_root
    from .registry_listing import listing

    repo = repo_root()
    print("\n".join(listing(repo)))
    return _deleted_claims(repo)


def _deleted_claims(repo: Path) -> int:
    """Name every claim deleted as far as this clone can tell (claims.py); 1 if any."""
    from . import claims

    deleted = claims.problems(repo)
    for line in deleted:
        print(f"error: CLAIM DELETED: {line}", file=sys.stderr)
    return 1 if deleted else 0


def _claims(args: argparse.Namespace) -> int:
    from . import claims, registry

    repo = registry.repo_root()
    if args.accept:
        accepted = claims.accept(repo, [name for names in args.accept for name in names.split()])
        print(f"accepted as deleted on purpose, in this clone: {len(accepted)}")
        print("".join(f"  {claims.describe(ref)}\n" for ref in accepted), end="")
    text, deleted = claims.summary(repo)
    print(text)
    return 1 if deleted else 0


def _gto(args: argparse.Namespace) -> int:
    from . import registry, tags

    repo = registry.repo_root()
    name, _ = registry.artifact(repo)
    print(f"made {tags.make_signed(repo, name, args.gto_args)}, signed")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from .release import promote

    print(f"assigned {promote(args.version, args.stage)} to {args.version}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from .release import rollback

    path = rollback(args.version, Path(args.out) if args.out else None)
    print(f"rollback to {args.version}: success, hash-verified model at {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from . import compare

    report = compare.compare(args.a, args.b, args.resamples, args.trust or "")
    print(compare.format_comparison(report))
    data, plot = compare.write(report)
    print(f"wrote {data} and {plot}")
    return 0


def _incident(args: argparse.Namespace) -> int:
    from . import incidents

    tag, warning = incidents.record(args.version, args.cause, args.note)
    print(f"recorded an incident ({args.cause}) about {tag}: push it with `make push-records`")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _check_releases(args: argparse.Namespace) -> int:
    from .storage import check_releases

    missing = check_releases()
    if not missing:
        print("no releases yet: nothing to check (`make release VERSION=v0.1.0` makes one)")
    for tag, objects in missing.items():
        print(f"{tag}: {'complete' if not objects else 'MISSING ' + ', '.join(objects)}")
    if any(missing.values()):
        print(
            "error: the remote lacks objects of released versions. Fix: `dvc push` them "
            "from a clone that has them (`dvc push --all-tags`)."
        )
        return 1
    return 0


def _gc(args: argparse.Namespace) -> int:
    from .storage import gc

    removed = gc()
    print(
        f"removed {len(removed)} cache objects; kept everything that releases, branches, the "
        "workspace and unpushed commits need"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from . import registry, report

    data = report.measures(registry.repo_root())
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else report.format_report(data))
    if args.plot:
        print(f"plot: {report.plot(data, Path(args.plot))}")
    if args.quarters_plot:
        print(f"plot: {report.quarter_plot(data, Path(args.quarters_plot))}")
    return 1 if data["claims_deleted"] else 0


def _records(args: argparse.Namespace) -> int:
    from . import claims, notes, registry

    repo = registry.repo_root()
    action = notes.fetch if args.action == "fetch" else notes.push
    print(action(repo))
    if args.action == "fetch":  # make setup: a fetch never drops a claim here, but says so
        for line in claims.origin_drops(repo):
            print(f"warning: ORIGIN LACKS A CLAIM: {line}", file=sys.stderr)
    return 0


def _check_files(args: argparse.Namespace) -> int:
    from . import guards, registry

    problems = guards.files_git_should_not_hold(registry.repo_root(), args.files)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _plots(args: argparse.Namespace) -> int:
    from . import offline_plots, registry

    index = offline_plots.render(registry.repo_root(), args.revisions, Path(args.out))
    print(f"plots: {index} (no network needed to view it)")
    return 0


def _remote_credentials(args: argparse.Namespace) -> int:
    from . import registry, remote

    for line in remote.credentials_from_environment(registry.repo_root()):
        print(line)
    return 0


def _signing_key(args: argparse.Namespace) -> int:
    from . import registry, signing

    print(signing.use_key_from_environment(registry.repo_root()))
    return 0


def _status(args: argparse.Namespace) -> int:
    if _run_tool(["dvc", "status", "--quiet"]) == 0:
        print("the pipeline is up to date with dvc.lock")
        return 0
    _run_tool(["dvc", "status"])
    print("error: the pipeline is not up to date: run `make repro` and commit dvc.lock")
    return 1


def _run_tool(command: list[str]) -> int:
    return subprocess.call(
        [sys.executable, "-m", *command], env=interpreter_first_on_path(os.environ)
    )


def _repro(args: argparse.Namespace) -> int:
    from . import repro

    return repro.repro(args.dvc_args)


def _experiments(args: argparse.Namespace) -> int:
    from . import experiment_table, registry
    from .settings import settings

    if args.all:
        dropped = settings().get("experiments_drop", experiment_table.COLUMNS_DROPPED)
        return _run_tool(["dvc", "exp", "show", "--drop", str(dropped)])
    print(experiment_table.compare(registry.repo_root()))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from . import ci_sweep, registry, sweep

    root = registry.repo_root()
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
    return sweep.sweep(args.overrides, args.jobs or os.cpu_count() or 1, args.name, root)


def _adopt(args: argparse.Namespace) -> int:
    from . import adopt, registry

    adopt.adopt(args.experiment, args.branch, registry.repo_root())
    return 0


def _pull(args: argparse.Namespace) -> int:
    return _run_tool(["dvc", "pull", *args.dvc_args])


def _lint(args: argparse.Namespace) -> int:
    return _run_tool(["ruff", "check", "."]) or _run_tool(["ruff", "format", "--check", "."])


def _test(args: argparse.Namespace) -> int:
    return _run_tool(["pytest", *args.pytest_args])


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

# The commands: name -> (handler, help, arguments). Make targets call these.
COMMANDS = {
    "params": (
        _params,
        "compose conf/ into params.yaml, or check it",
        [
            option("action", choices=("compose", "check")),
            option("--conf", default="conf"),
            PARAMS_FILE_OPTION,
        ],
    ),
    "data": (
        _data,
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
        _lock,
        "re-lock with uv and rewrite the exported locks",
        [
            option("--check", action="store_true", help="only check that the locks agree"),
            option("--add", metavar="REQUIREMENT", help="add a runtime library first"),
        ],
    ),
    "repro": (_repro, "dvc repro, in this environment", [option("dvc_args", **REMAINDER)]),
    "deps": (
        _deps,
        "write each stage's code deps in dvc.yaml from what it loads when it runs",
        [option("--check", action="store_true", help="only fail if they differ")],
    ),
    "env": (
        _env,
        "the pinned variables, or drift from the lock",
        [option("--check", action="store_true", help="exit 1 if packages differ from the lock")],
    ),
    "rebuild": (
        _rebuild,
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
    "sandbox": (_sandbox, "make sure rebuilds run sealed (installs bubblewrap as root)", []),
    "field-rebuild": (
        _field_rebuild,
        "rebuild every release as it was released",
        [
            option("--release", action="append", help="only this version or tag (repeatable)"),
            option("--list", action="store_true", help="print the release tags as JSON"),
            *REBUILDING,
        ],
    ),
    "predict": (
        _predict,
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
        _release,
        "tag HEAD as a release, if the gates pass",
        [
            option("version", help="like v1.2.0"),
            option("--override", help="why a release the criteria refuse goes out (signed)"),
        ],
    ),
    "provenance": (
        _provenance,
        "the provenance statement of a release or commit",
        [
            option("rev", nargs="?", default="HEAD", help="version, release tag or commit"),
            option("--json", action="store_true", help="only the JSON statement"),
        ],
    ),
    "registry": (_registry, "list released versions and their registry stages", []),
    "gto": (
        _gto,
        "a GTO action that makes a tag (unassign, deprecate, ...), signed",
        [option("gto_args", **REMAINDER)],
    ),
    "promote": (
        _promote,
        "assign a registry stage (prod, staging) to a version",
        [option("version"), option("stage")],
    ),
    "rollback": (
        _rollback,
        "materialise a released model, verified",
        [option("version"), option("--out", help="directory (default build/rollback/<tag>)")],
    ),
    "compare": (
        _compare,
        "score two versions on the same rows (B's test table), A in its own environment",
        [
            option("--a", help="a release or revision (default: the release in prod)"),
            option("--b", help="a release or revision, or workspace (the default)"),
            option("--resamples", type=int, default=1000, help="bootstrap draws"),
            option("--trust", help="the revisions (not releases) named again: their code runs"),
        ],
    ),
    "incident": (
        _incident,
        "record a production incident about a release, signed",
        [
            option("--version", required=True),
            option("--cause", required=True),
            option("--note", default=""),
        ],
    ),
    "check-releases": (_check_releases, "is every release in the remote?", []),
    "gc": (_gc, "collect the DVC cache, guarding releases and unpushed work", []),
    "report": (
        _report,
        "the reproducibility measures",
        [
            option("--json", action="store_true"),
            option("--plot", help="also write an SVG of time to reproduce per release"),
            option("--quarters-plot", help="also write an SVG of the measures by quarter"),
        ],
    ),
    "claims": (
        _claims,
        "the signed claims' chain: what is newest, and any claim deleted",
        [option("--accept", action="append", help="a tag or commit deleted on purpose")],
    ),
    "records": (
        _records,
        "exchange rebuild notes with the remote",
        [option("action", choices=("fetch", "push"))],
    ),
    "check-files": (
        _check_files,
        "refuse large or DVC-tracked files in git",
        [option("files", nargs="*")],
    ),
    "plots": (
        _plots,
        "dvc plots as SVG files, rendered offline",
        [
            option("revisions", nargs="*", help="compare with these (dvc plots diff)"),
            option("--out", default="build/plots"),
        ],
    ),
    "remote-credentials": (_remote_credentials, "CI secrets -> .dvc/config.local", []),
    "signing-key": (_signing_key, "sign with the key in $REPROML_SIGNING_KEY", []),
    "status": (_status, "fail unless dvc.lock matches the workspace", []),
    "experiments": (
        _experiments,
        "the experiments compared: verify's result, the parameters that vary, the scores",
        [option("--all", action="store_true", help="dvc exp show, every column to compare")],
    ),
    "sweep": (
        _sweep,
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
        _adopt,
        "an experiment as a commit on a new branch, conf/ saying what it ran with",
        [option("experiment"), option("branch")],
    ),
    "pull": (_pull, "dvc pull, in this environment", [option("dvc_args", **REMAINDER)]),
    "lint": (_lint, "ruff check and ruff format --check", []),
    "test": (_test, "the project's pytest suite", [option("pytest_args", **REMAINDER)]),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reproml", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    for name, (handler, summary, arguments) in COMMANDS.items():
        command = commands.add_parser(name, help=summary)
        for names, settings in arguments:
            command.add_argument(*names, **settings)
        command.set_defaults(handler=handler)
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
        return args.handler(args)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
