"""Releases gated on reproducibility, promotion and rollback, in GTO's tag format.

- Release: an annotated tag ``<artifact>@vX.Y.Z`` whose message carries the in-toto/SLSA
  provenance statement. Created only when the tree is clean, the pipeline is up to date,
  verify passed on this commit, the environment is the lock's, and the remote holds every
  object the commit references.
- Promotion: GTO's registry-stage tags ``<artifact>#<stage>#<n>``.
- Rollback: the registered model materialised outside the workspace, hash-verified.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..runtime.errors import DataError
from ..runtime.hashing import file_digest
from ..runtime.proc import run
from . import provenance, tags
from .commands import dvc_command
from .errors import RegistryError, RemoteError
from .git import show_json
from .notes import append_note, utc_now
from .registry import (
    VERSION_PATTERN,
    Release,
    _facts,
    artifact,
    check_release,
    find_release,
    record_path,
    repo_root,
    tag_statement,
    verify_reports,
)
from .remote import remote_lacks
from .storage import cached_objects_at

# ---- the release gates -------------------------------------------------------------------


def gate_clean_tree(repo: Path) -> str | None:
    dirty = run(["git", "status", "--porcelain"], repo).stdout.strip()
    if dirty:
        return (
            f"the working tree has uncommitted changes:\n{dirty}\n"
            "Fix: commit them (or stash them), so the release is exactly a commit."
        )
    return None


def gate_pipeline_up_to_date(repo: Path) -> str | None:
    status = run(dvc_command("status", "--json"), repo)
    stale = json.loads(status.stdout or "{}") if status.returncode == 0 else None
    if stale is None or stale:
        detail = ", ".join(sorted(stale)) if stale else status.stderr.strip()
        return (
            f"the pipeline is not up to date ({detail}). Fix: `make repro`, then commit dvc.lock."
        )
    return None


def gate_verify_passed(repo: Path) -> str | None:
    reports = verify_reports(repo)
    if not reports:
        return "verify never ran on this commit. Fix: `make repro`, then commit dvc.lock."
    for report_path, report in reports.items():
        if report.get("result") != "match":
            return (
                f"verify did not pass on this commit ({report_path}: {report.get('result')}). "
                "Fix: make the rebuild match (see the report), `make repro`, commit."
            )
    return None


def gate_no_drift(repo: Path) -> str | None:
    """A model trained or verified on an environment other than the lock is not released."""
    record = show_json(repo, "HEAD", record_path(repo)) or {}
    drift = list(record.get("drift") or [])
    for verified in verify_reports(repo).values():
        drift += list(verified.get("environment_drift") or [])
    if drift:
        lines = "\n".join(f"  {line}" for line in dict.fromkeys(drift))
        return (
            f"the model was trained on an environment that differs from the lock "
            f"(REPRO_ALLOW_DRIFT=1):\n{lines}\nFix: `make setup`, then `make repro` and commit."
        )
    return None


def gate_remote_complete(repo: Path) -> str | None:
    """The remote holds every object HEAD references (every file of a directory too), asked
    the way check-releases asks: a remote that cannot be read is named as such."""
    objects = cached_objects_at(repo, "HEAD")
    try:
        lacks = remote_lacks(repo, set(objects))
    except RemoteError as error:
        return str(error)
    missing = [
        f"  {path}" + (f"/{name}" if name else "")
        for md5, path in sorted(objects.items(), key=lambda item: item[1])
        for name in ([None] if lacks[md5] is None else lacks[md5])
    ]
    if missing:
        lines = "\n".join(missing)
        return f"the DVC remote lacks objects this commit references:\n{lines}\nFix: `dvc push`."
    return None


GATES = (
    ("clean tree", gate_clean_tree),
    ("pipeline up to date", gate_pipeline_up_to_date),
    ("verify passed", gate_verify_passed),
    ("environment matches the lock", gate_no_drift),
    ("data and model in the remote", gate_remote_complete),
)


def release_decision(repo: Path, override: str | None = None) -> dict:
    """The release criteria's decision on the workspace: against the release in prod on this
    commit's test rows (`make compare`), or on thresholds alone when none is in prod."""
    from . import claims, compare, criteria
    from .settings import team

    declared = criteria.load(repo / criteria.CRITERIA_FILE)
    # A promotion deleted on origin would leave no release in prod, and the criteria would
    # fall back to thresholds: a deleted claim stops the release instead.
    deleted = claims.problems(repo)
    if deleted:
        raise RegistryError(
            "claims were deleted, so which release is in prod cannot be trusted:\n"
            + "\n".join(f"  {line}" for line in deleted)
        )
    prod = compare.prod_release(repo, required=False)
    if prod is None:
        print("  no release is in prod: the release criteria's thresholds alone apply")
        found, baseline = compare.candidate(), None
    else:
        baseline = {"release": prod.tag, "commit": prod.commit}
        try:
            found = compare.compare(prod.tag, compare.WORKSPACE)
        except DataError as error:  # another schema: prod's model cannot read these rows
            return criteria.unscorable(baseline, str(error), override)
    primary = team().primary_score.get(found["task"], "")
    return criteria.decide(
        found["metrics"], declared, primary, baseline, found["rows"]["count"], override
    )


def release(version: str, override: str | None = None) -> Release:
    """Tag HEAD as ``<artifact>@<version>`` with its provenance statement, if every gate passes
    (the release criteria's last: the model against prod's, on the same rows)."""
    from . import criteria

    override = criteria.require_reason(override)
    started = utc_now()
    repo = repo_root()
    name, path = artifact(repo)
    if not VERSION_PATTERN.match(version):
        raise RegistryError(f"{version!r} is not a version like v1.2.0 (SemVer with a leading v)")
    tag = f"{name}@{version}"
    if run(["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"], repo).returncode == 0:
        raise RegistryError(f"{tag} exists already: releases are immutable, pick a new version")
    tags.refuse_blocked(repo, tag)  # before the gates: no point checking what cannot be tagged
    for gate, check in GATES:
        problem = check(repo)
        print(f"  gate {gate}: {'REFUSED' if problem else 'passed'}")
        if problem:
            raise RegistryError(f"release refused by the gate '{gate}': {problem}")
    decision = release_decision(repo, override)
    problem = criteria.refusal(decision)
    verdict = "REFUSED" if problem else "OVERRIDDEN" if decision["override"] else "passed"
    print(f"  gate release criteria: {verdict}")
    for rule in decision["rules"]:
        print(f"    {rule['says']}: {'not checked' if rule['passed'] is None else rule['rule']}")
    if problem:
        raise RegistryError(f"release refused by the gate 'release criteria': {problem}")
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    facts = _facts(repo, commit, path)
    origin = run(["git", "remote", "get-url", "origin"], repo).stdout.strip()
    source = f"git+{provenance.public_url(origin)}" if origin else f"git+file://{repo}"
    statement = provenance.build_statement(
        facts, source, started, utc_now(), artifact=name, release=tag, release_decision=decision
    )
    message = provenance.tag_message(f"Release {name} {version}", statement)
    # GTO's tag names and format, git's signature (scmrepo, which GTO uses, cannot sign).
    try:
        tags.make_signed(
            repo, name, ["register", name, commit, "--version", version, "-m", message]
        )
    except RegistryError as error:
        raise RegistryError(f"release {tag} {error}") from None
    return find_release(repo, version)


def promote(version: str, stage: str) -> str:
    repo = repo_root()
    name, _ = artifact(repo)
    target = find_release(repo, version)
    problems = check_release(repo, target)
    if problems:
        raise RegistryError(
            f"{target.tag} cannot be promoted: its provenance does not check out: {problems[0]}"
        )
    action = ["assign", name, "--version", target.version, "--stage", stage]
    return tags.make_signed(repo, name, action)


def require_provenance(repo: Path, target: Release) -> None:
    """Refuse a release whose provenance does not check out (its tag's signature counts
    already: find_release sees no other tag)."""
    problems = check_release(repo, target)
    if problems:
        raise RegistryError(f"{target.tag}: provenance does not check out: {problems[0]}")


def fetch_released_model(repo: Path, target: Release, path: str, destination: Path) -> Path:
    """The release's model file (``path`` at its commit) at ``destination``, refused unless
    it hashes to the sha256 its signed statement records."""
    fields, _ = tag_statement(repo, target.tag)
    with tempfile.TemporaryDirectory() as scratch:
        fetched = Path(scratch) / Path(path).name
        # `dvc get` at the release's commit, not `dvc artifacts get --rev <version>`: that
        # resolves the version through GTO over every tag, where a stray tag shadows it.
        command = dvc_command("get", str(repo), path, "--rev", target.commit)
        got = run([*command, "-o", str(fetched)], repo)
        if got.returncode != 0:
            raise RegistryError(f"`dvc get` failed: {got.stderr.strip()}")
        actual = file_digest(fetched)
        if actual != fields["model-sha256"]:
            raise RegistryError(
                f"the fetched model hashes to {actual}, not the released "
                f"{fields['model-sha256']}: refusing it"
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(fetched, destination)
    return destination


def rollback(version: str, out_dir: Path | None = None) -> Path:
    """Materialise a registered version's model outside the workspace, hash-verified."""
    repo = repo_root()
    target = find_release(repo, version)
    _, path = artifact(repo, target.commit)
    start = time.perf_counter()
    result, detail, destination = "failure", "", None
    try:
        require_provenance(repo, target)
        out = (out_dir or repo / "build" / "rollback" / target.tag.replace("@", "-")).resolve()
        destination = fetch_released_model(repo, target, path, out / Path(path).name)
        result, detail = "success", str(destination)
        return destination
    except RegistryError as error:
        detail = str(error)
        raise
    finally:
        warning = append_note(
            repo,
            target.commit,
            {
                "kind": "rollback",
                "release": target.tag,
                "revision": target.commit,
                "result": result,
                "detail": detail,
                "seconds": round(time.perf_counter() - start, 3),
                "finished": utc_now(),
            },
        )
        if warning:
            print(f"warning: {warning}", file=sys.stderr)


def run_release(args: argparse.Namespace) -> int:
    """`make release`."""
    created = release(args.version, args.override)
    print(
        f"released {created.tag} at {created.commit[:12]}; publish it with "
        f"`git push origin {created.tag}`"
    )
    return 0


def run_promote(args: argparse.Namespace) -> int:
    """`make promote`."""
    print(f"assigned {promote(args.version, args.stage)} to {args.version}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    """`make rollback`."""
    path = rollback(args.version, Path(args.out) if args.out else None)
    print(f"rollback to {args.version}: success, hash-verified model at {path}")
    return 0
