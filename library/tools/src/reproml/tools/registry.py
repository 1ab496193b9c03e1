"""The model registry as GTO reads it from git tags: the artifact, its releases and their
registry stages, each release's provenance checked, and what a revision name means. Making
releases is release.py; what the remote must hold, and gc, storage.py."""

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.proc import run
from . import dvc_lock, provenance, signing, tags
from .errors import RegistryError
from .git import git_show, is_utf8, parse_yaml, show_json
from .verify_reports import is_report

VERSION_PATTERN = re.compile(r"\Av(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
DVC_FILE = "dvc.yaml"


@dataclass
class Release:
    tag: str
    version: str
    commit: str
    created: str
    # GTO's registry stages (dev, staging, prod): where a release is promoted, not the
    # pipeline's stages of dvc.yaml.
    registry_stages: list[str] = field(default_factory=list)


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
    listed = run(
        ["git", "ls-remote", "--tags", remote, f"refs/tags/{name}@*"],
        repo,
        errors="surrogateescape",
    )
    if listed.returncode != 0:
        print(
            f"warning: could not list {remote}'s tags ({listed.stderr.strip()}); checking "
            "the tags this clone has",
            file=sys.stderr,
        )
        return
    theirs = {line.split()[1].removeprefix("refs/tags/") for line in listed.stdout.splitlines()}
    theirs = {tag.removesuffix("^{}") for tag in theirs}
    readable = {tag for tag in theirs if is_utf8(tag)}
    if readable != theirs:
        print(
            f"warning: {remote} has {len(theirs - readable)} tags whose names are not UTF-8: "
            "passed over (no registry tag is named so)",
            file=sys.stderr,
        )
    theirs = readable
    odd = tags.unreadable_names(theirs)
    for tag in odd:
        print(
            f"warning: {remote}'s tag {tag} is not a registry tag, so it is passed over; it "
            f"blocks a tag named {tag.split('/', 1)[0]} (git keeps tags as paths). If it is not "
            f"yours: `git push {remote} :refs/tags/{tag}`.",
            file=sys.stderr,
        )
    theirs -= set(odd)
    ours = set(
        run(["git", "tag", "--list", f"{name}@*"], repo, errors="surrogateescape").stdout.split()
    )
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
        if not (repo / DVC_FILE).is_file():
            raise RegistryError(f"{repo} has no {DVC_FILE}")
        text = (repo / DVC_FILE).read_text(encoding="utf-8")
    else:
        text = git_show(repo, commit, DVC_FILE)
        if text is None:
            raise RegistryError(f"{commit[:12]} has no {DVC_FILE}")
    where = DVC_FILE if commit is None else f"{DVC_FILE} at {commit[:12]}"
    parsed = parse_yaml(text, where)
    declared = (parsed.get("artifacts") if isinstance(parsed, dict) else None) or {}
    models = [
        (name, spec["path"])
        for name, spec in (declared.items() if isinstance(declared, dict) else [])
        if isinstance(spec, dict)
        and spec.get("type") == "model"
        and isinstance(spec.get("path"), str)
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


def verified_release(repo: Path, version: str) -> Release | None:
    """The verified release ``version`` names (v1.0.0 or model@v1.0.0), or None."""
    names = tags_for_version(repo, version)
    return next((release for release in registry_view(repo)[0] if release.tag in names), None)


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


def recorded_decision(repo: Path, release: Release) -> dict | None:
    """The release criteria's decision its signed statement holds (None: a release made
    before there were criteria)."""
    _, statement = tag_statement(repo, release.tag)
    external = (statement.get("predicate") or {}).get("buildDefinition", {})
    return (external.get("externalParameters") or {}).get("release_decision")


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
    records that parse as one (verify_reports.is_report), whichever stage wrote them. A dvc.lock
    that is not DVC's shape (anyone may push a commit) holds none."""
    try:
        locked = dvc_lock.outputs(dvc_lock.at_commit(repo, commit))
    except ProjectError:
        return {}
    found = {}
    for path in locked:
        document = show_json(repo, commit, path) if path.endswith(".json") else None
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
