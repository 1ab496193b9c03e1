# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""A model registry in git tags, in GTO's format, with releases gated on reproducibility.

- Release: an annotated tag ``<artifact>@vX.Y.Z`` whose message carries the in-toto/SLSA
  provenance statement. Created only when the tree is clean, the pipeline is up to date,
  verify passed on this commit, and the remote holds every object the commit references.
- Promotion: GTO's stage tags ``<artifact>#<stage>#<n>``.
- Rollback: the registered model materialised outside the workspace, hash-verified.
- Guarded gc: never deletes an object that a release or an unpushed commit still needs.
"""

import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..runtime.errors import RegistryError, RemoteError
from ..runtime.hashing import file_digest
from ..runtime.proc import console_script, run
from . import provenance, signing, tags
from .git import tracked_at
from .notes import append_record, utc_now
from .remote import remote_lacks

VERSION_PATTERN = re.compile(r"\Av(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
DVC_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"


@dataclass
class Release:
    tag: str
    version: str
    commit: str
    created: str
    stages: list[str] = field(default_factory=list)


def repo_root() -> Path:
    found = run(["git", "rev-parse", "--show-toplevel"], Path.cwd())
    if found.returncode != 0:
        raise RegistryError("not inside a git repository")
    return Path(found.stdout.strip())


def require_full_history(repo: Path, remote: str = "origin") -> None:
    """Refuse to check releases in a clone that cannot see them all: a shallow clone (CI's
    default depth of 1), or one that lacks release tags its origin has (a checkout that
    fetched no tags). Checks that pass on nothing would pass on every such runner."""
    shallow = run(["git", "rev-parse", "--is-shallow-repository"], repo).stdout.strip()
    if shallow == "true":
        raise RegistryError(
            "this clone is shallow: earlier commits and the releases on them are missing, so "
            "the releases cannot all be checked. Fix: `git fetch --unshallow --tags` (CI: "
            "actions/checkout with `fetch-depth: 0`, GitLab with `GIT_DEPTH: 0`)."
        )
    if run(["git", "remote", "get-url", remote], repo).returncode != 0:
        return  # no origin: this clone is all there is
    name, _ = artifact(repo)
    listed = run(["git", "ls-remote", "--tags", remote, f"refs/tags/{name}@*"], repo)
    if listed.returncode != 0:
        print(
            f"warning: could not list {remote}'s tags ({listed.stderr.strip()}); checking "
            "the tags this clone has",
            file=sys.stderr,
        )
        return
    theirs = {line.split()[1].removeprefix("refs/tags/") for line in listed.stdout.splitlines()}
    theirs = {tag.removesuffix("^{}") for tag in theirs}
    ours = set(run(["git", "tag", "--list", f"{name}@*"], repo).stdout.split())
    missing = sorted(theirs - ours)
    if missing:
        raise RegistryError(
            f"{remote} has release tags this clone lacks: {', '.join(missing)}. Fix: "
            "`git fetch --tags` (CI: actions/checkout with `fetch-tags: true`)."
        )


def artifact(repo: Path, commit: str | None = None) -> tuple[str, str]:
    """The model artifact declared in dvc.yaml (the workspace's, or ``commit``'s):
    ``(name, path)``."""
    if commit is None:
        text = (repo / DVC_FILE).read_text(encoding="utf-8")
    else:
        shown = run(["git", "show", f"{commit}:{DVC_FILE}"], repo)
        if shown.returncode != 0:
            raise RegistryError(f"{commit[:12]} has no {DVC_FILE}")
        text = shown.stdout
    declared = (yaml.safe_load(text) or {}).get("artifacts") or {}
    models = [
        (name, spec["path"]) for name, spec in declared.items() if spec.get("type") == "model"
    ]
    if len(models) != 1:
        raise RegistryError(f"{DVC_FILE} must declare exactly one `type: model` artifact")
    return models[0]


def registry_view(repo: Path) -> tuple[list[Release], dict[str, str]]:
    """Every active release of the artifact, oldest version first, with its registry stages,
    as GTO reads the tags that count (``tags.py``): deregistered versions, unassigned stages
    and a deprecated artifact are honoured exactly as `gto show` does. Also every tag of the
    artifact that does not count (unsigned, or signed by a key that may not sign it), with
    the reason: those are shown to no one as releases or stages."""
    name, _ = artifact(repo)
    found_tags = tags.artifact_tags(repo, name)
    found = []
    for entry in tags.gto_show(repo, name, found_tags):
        registrations = entry.get("registrations") or []
        if not entry.get("is_active", True) or not registrations:
            continue
        stages = [stage["stage"] for stage in entry.get("stages") or []]
        created = entry.get("created_at")
        found.append(
            Release(
                registrations[-1]["tag"],
                entry["version"],
                entry["commit_hexsha"],
                created.isoformat() if hasattr(created, "isoformat") else str(created),
                sorted(stages),
            )
        )
    ordered = sorted(
        found,
        key=lambda r: [int(p) if p.isdigit() else -1 for p in re.split(r"[.-]", r.version[1:])],
    )
    return ordered, found_tags.ignored


def releases(repo: Path) -> list[Release]:
    return registry_view(repo)[0]


def tags_for_version(repo: Path, version: str) -> tuple[str, str]:
    """The release tags ``version`` may name: itself (``model@v1.0.0``) or ``model@<version>``
    (``v1.0.0``), as every command takes a release."""
    name, _ = artifact(repo)
    return version, f"{name}@{version}"


def find_release(repo: Path, version: str) -> Release:
    found, ignored = registry_view(repo)
    names = tags_for_version(repo, version)
    for release in found:
        if release.tag in names:
            return release
    for tag in names:
        if tag in ignored:
            raise RegistryError(f"{tag} is not a verified release: {ignored[tag]}")
    raise RegistryError(f"{version} is not a registered version: `make registry` lists them")


def tag_statement(repo: Path, tag: str) -> tuple[dict, dict]:
    message = run(["git", "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)"], repo)
    return provenance.parse_tag_message(message.stdout)


def check_release(repo: Path, release: Release) -> list[str]:
    """Problems with a release's provenance (empty: it checks out)."""
    try:
        # The release's own files say where its model and record are: paths may have moved.
        _, path = artifact(repo, release.commit)
        fields, statement = tag_statement(repo, release.tag)
        facts = provenance.commit_facts(
            repo, release.commit, path, record_path(repo, release.commit)
        )
    except (ValueError, json.JSONDecodeError, RegistryError, KeyError, TypeError) as error:
        return [str(error)]
    problems = provenance.check_statement(fields, statement, facts, release=release.tag)
    unsigned = signing.signature_problem(repo, release.tag)
    if unsigned:
        problems.insert(0, unsigned)
    if not provenance.is_complete(statement):
        problems.append("the statement lacks a data version, commit, environment or params")
    return problems


def resolve_commit(repo: Path, rev: str) -> str:
    found = run(["git", "rev-parse", "--verify", "--quiet", rev + "^{commit}"], repo)
    if found.returncode != 0:
        raise RegistryError(f"{rev!r} is not a commit, tag or registered version")
    return found.stdout.strip()


def _facts(repo: Path, commit: str, path: str) -> dict:
    try:
        return provenance.commit_facts(repo, commit, path, record_path(repo, commit))
    except ValueError as error:
        raise RegistryError(str(error)) from None


def record_path(repo: Path, commit: str = "HEAD") -> str:
    """Where ``commit`` keeps the model's record: beside its model artifact."""
    from ..runtime.model_file import record_path as beside

    return beside(artifact(repo, commit)[1]).as_posix()


def verify_reports(repo: Path, commit: str = "HEAD") -> dict[str, dict]:
    """``{path: report}`` of every verify report ``commit`` holds: the outputs its dvc.lock
    records that parse as one (verification.is_report), whichever stage wrote them."""
    from ..runtime.verification import is_report

    lock = yaml.safe_load(run(["git", "show", f"{commit}:{LOCK_FILE}"], repo).stdout or "{}")
    found = {}
    for stage in ((lock or {}).get("stages") or {}).values():
        for out in stage.get("outs") or []:
            path = str(out.get("path", ""))
            if not path.endswith(".json"):
                continue
            shown = run(["git", "show", f"{commit}:{path}"], repo)
            try:
                document = json.loads(shown.stdout) if shown.returncode == 0 else None
            except ValueError:
                continue
            if is_report(document):
                found[path] = document
    return found


def statement_for(rev: str) -> tuple[str, dict, list[str]]:
    """``(title, statement, problems)`` for a version, a release tag, or any commit. A commit
    that was never released gets a statement built from its files, without run times; a tag
    that does not count as a release shows its statement, with why it does not count."""
    repo = repo_root()
    _, path = artifact(repo)
    found, ignored = registry_view(repo)
    names = tags_for_version(repo, rev)
    release = next((r for r in found if r.tag in names), None)
    unverified = next((tag for tag in names if tag in ignored), None)
    if release is None and unverified:
        commit = resolve_commit(repo, unverified)
        release = Release(unverified, unverified.partition("@")[2], commit, "")
        _, statement = tag_statement(repo, unverified)
        problems = [ignored[unverified]]
        problems += [p for p in check_release(repo, release) if p != ignored[unverified]]
        return f"{unverified} (commit {commit[:12]}, NOT a verified release)", statement, problems
    if release is None:
        commit = resolve_commit(repo, rev)
        facts = _facts(repo, commit, path)
        statement = provenance.build_statement(facts, f"git+file://{repo}", "", "")
        return f"commit {commit[:12]} (not released: no run times)", statement, []
    _, statement = tag_statement(repo, release.tag)
    return f"{release.tag} (commit {release.commit[:12]})", statement, check_release(repo, release)


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
    status = run([console_script("dvc"), "status", "--json"], repo)
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
    shown = run(["git", "show", f"HEAD:{record_path(repo)}"], repo)
    record = json.loads(shown.stdout) if shown.returncode == 0 else {}
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
    objects = _cached_objects_at(repo, "HEAD")
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


def release(version: str) -> Release:
    """Tag HEAD as ``<artifact>@<version>`` with its provenance statement, if every gate passes."""
    started = utc_now()
    repo = repo_root()
    name, path = artifact(repo)
    if not VERSION_PATTERN.match(version):
        raise RegistryError(f"{version!r} is not a version like v1.2.0 (SemVer with a leading v)")
    tag = f"{name}@{version}"
    if run(["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"], repo).returncode == 0:
        raise RegistryError(f"{tag} exists already: releases are immutable, pick a new version")
    for gate, check in GATES:
        problem = check(repo)
        print(f"  gate {gate}: {'REFUSED' if problem else 'passed'}")
        if problem:
            raise RegistryError(f"release refused by the gate '{gate}': {problem}")
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    facts = _facts(repo, commit, path)
    origin = run(["git", "remote", "get-url", "origin"], repo).stdout.strip()
    source = f"git+{provenance.public_url(origin)}" if origin else f"git+file://{repo}"
    statement = provenance.build_statement(
        facts, source, started, utc_now(), artifact=name, release=tag
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


def rollback(version: str, out_dir: Path | None = None) -> Path:
    """Materialise a registered version's model outside the workspace, hash-verified."""
    repo = repo_root()
    target = find_release(repo, version)
    _, path = artifact(repo, target.commit)
    start = time.perf_counter()
    result, detail, destination = "failure", "", None
    try:
        problems = check_release(repo, target)
        if problems:
            raise RegistryError(f"{target.tag}: provenance does not check out: {problems[0]}")
        fields, _ = tag_statement(repo, target.tag)
        out = (out_dir or repo / "build" / "rollback" / target.tag.replace("@", "-")).resolve()
        with tempfile.TemporaryDirectory() as scratch:
            fetched = Path(scratch) / Path(path).name
            # `dvc get` at the release's commit, not `dvc artifacts get --rev <version>`: that
            # resolves the version through GTO over every tag, where a stray tag shadows it.
            command = [console_script("dvc"), "get", str(repo), path, "--rev", target.commit]
            got = run([*command, "-o", str(fetched)], repo)
            if got.returncode != 0:
                raise RegistryError(f"`dvc get` failed: {got.stderr.strip()}")
            actual = file_digest(fetched)
            if actual != fields["model-sha256"]:
                raise RegistryError(
                    f"the fetched model hashes to {actual}, not the released "
                    f"{fields['model-sha256']}: refusing it"
                )
            out.mkdir(parents=True, exist_ok=True)
            destination = out / Path(path).name
            shutil.move(fetched, destination)
        result, detail = "success", str(destination)
        return destination
    except RegistryError as error:
        detail = str(error)
        raise
    finally:
        warning = append_record(
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


# ---- remote completeness and guarded gc ---------------------------------------------------


def _cached_objects_at(repo: Path, commit: str) -> dict[str, str]:
    """``{md5: path}`` of every cached object a commit references (dvc.lock outs, .dvc files);
    a directory output is its ``.dir`` manifest, whose files the remote check lists."""
    objects = {}
    dvc_yaml = yaml.safe_load(run(["git", "show", f"{commit}:{DVC_FILE}"], repo).stdout or "{}")
    uncached = set()
    for stage in (dvc_yaml.get("stages") or {}).values():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section) or []:
                if isinstance(entry, dict):
                    for key, options in entry.items():
                        if isinstance(options, dict) and options.get("cache") is False:
                            uncached.add(key)
    lock = yaml.safe_load(run(["git", "show", f"{commit}:{LOCK_FILE}"], repo).stdout or "{}")
    params = yaml.safe_load(run(["git", "show", f"{commit}:params.yaml"], repo).stdout or "{}")
    uncached_paths = {_resolve(key, params) for key in uncached}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out["path"] not in uncached_paths and out.get("md5"):
                objects[out["md5"]] = out["path"]
    objects.update({md5: path for _, path, md5 in tracked_at(repo, commit)})
    return objects


def _resolve(key: str, params: dict) -> str:
    """A dvc.yaml path such as ``${paths.metrics}`` resolved against params.yaml."""
    match = re.fullmatch(r"\$\{([\w.]+)\}", key)
    if not match:
        return key
    value = params
    for part in match.group(1).split("."):
        value = value[part]
    return value


def check_releases(only: list[str] | None = None) -> dict[str, list[str]]:
    """For every release tag (or those in ``only``), what of it the remote lacks: whole
    objects, and single files of a directory output."""
    repo = repo_root()
    require_full_history(repo)
    chosen = [r for r in releases(repo) if only is None or r.tag in only]
    per_release = {r.tag: _cached_objects_at(repo, r.commit) for r in chosen}
    lacks = remote_lacks(repo, {md5 for objects in per_release.values() for md5 in objects})
    missing = {}
    for tag, objects in per_release.items():
        missing[tag] = []
        for md5, path in sorted(objects.items()):
            if lacks[md5] is None:
                missing[tag].append(f"{path} (md5 {md5})")
            else:
                missing[tag] += [f"{path}/{name} (in {path}, md5 {md5})" for name in lacks[md5]]
    return missing


def unpushed_commits(repo: Path) -> list[str]:
    """Commits of branches and tags on no remote-tracking branch (all of them when there is
    no git remote). Experiment refs (refs/exps) are not branches: gc protects them as DVC
    does, with --all-experiments."""
    listed = run(["git", "rev-list", "--branches", "--tags", "--not", "--remotes"], repo)
    return listed.stdout.split()


def gc() -> list[str]:
    """Collect the local DVC cache: remove only objects that no commit, tag, branch or the
    workspace references (leftovers of uncommitted runs and experiments).

    Before deleting anything it asks DVC for its plan (``--dry``) and refuses, deleting
    nothing, if the plan holds an object that a release or an unpushed commit needs: DVC's
    own flags have surprised users before (``--not-in-remote`` deletes *used* objects once
    they are in the remote)."""
    repo = repo_root()
    needed: dict[str, str] = {}
    keep = [r.commit for r in releases(repo)] + unpushed_commits(repo)
    for commit in dict.fromkeys(keep):
        needed.update(_cached_objects_at(repo, commit))
    flags = [
        "--workspace",
        "--all-tags",
        "--all-branches",
        "--all-commits",
        "--all-experiments",
        "--force",
    ]
    planned = run([console_script("dvc"), "gc", *flags, "--dry"], repo)
    if planned.returncode != 0:
        raise RegistryError(f"`dvc gc --dry` failed: {planned.stderr.strip()}")
    doomed = re.findall(r"files/md5/([0-9a-f]{2})/([0-9a-f.a-z]+)", planned.stdout + planned.stderr)
    at_risk = {a + b: needed[a + b] for a, b in doomed if a + b in needed}
    # Safe to delete locally only if the DVC remote holds it: ask the remote, not git.
    lacks = remote_lacks(repo, set(at_risk)) if at_risk else {}
    endangered = sorted({path for md5, path in at_risk.items() if lacks.get(md5) != []})
    if endangered:
        raise RegistryError(
            "gc refused, nothing deleted: DVC would remove objects that a release or an "
            "unpushed commit needs and the DVC remote does not hold:\n"
            + "\n".join(f"  {path}" for path in endangered)
            + "\nFix: `dvc push --all-commits` (then `make gc` again)."
        )
    done = run([console_script("dvc"), "gc", *flags], repo)
    if done.returncode != 0:
        raise RegistryError(f"`dvc gc` failed: {done.stderr.strip()}")
    return [f"{a}{b}" for a, b in doomed]
