"""Claims that cannot be quietly removed: a hash chain through every signed claim.

A claim is a release, registry-stage or deprecation tag that counts (``tags.py``), or a
rebuild or rollback record that counts (``notes.py``). Each new claim names, under its own
signature, the newest claims its maker had seen (the *heads*: claims no other claim names):
a record in its ``previous`` field, a tag in ``Reproml-Previous:`` lines of its message. So a
claim deleted on origin (a tag, a record, the whole notes ref) is still named by every later
claim, and a clone that lacks it says so instead of reading "no data", or a deprecated release
as active.

What the chain cannot see: the newest claims, which nothing names yet. Two things close that.
The clone's own memory (``.git/reproml/claims.json``): a claim this clone once held, or once
saw on origin, and no longer finds is named. Server-side protection: tags that cannot be
deleted (GitHub rulesets, GitLab protected tags; docs/trust-model.md).

A claim that is still there but no longer counts (its signer was removed from
``.allowed_signers``, or signing was turned on) is not a deletion: only someone who can
merge to the default branch can do that, so it is shown by ``make claims``, never an error.
"""

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.io import atomic_write_text
from . import notes, signing, tags
from .git import git

TRAILER = "Reproml-Previous"
# tag:<name>:<tag object> and record:<commit>:<sha256 of the signed payload, 32 hex digits>.
ID_PATTERN = re.compile(
    r"\A(tag:[^\s:]{1,200}:[0-9a-f]{40,64}|record:[0-9a-f]{40,64}:[0-9a-f]{32})\Z"
)
_TRAILER_LINE = re.compile(rf"\A{TRAILER}: (\S+)\Z")
# The most heads a claim names: the first that many, in order (more only right after an
# upgrade, when every older claim is a head; those beyond stay unnamed, like the newest).
MAX_PREVIOUS = 500
MEMORY = "reproml/claims.json"


@dataclass(frozen=True)
class Claim:
    id: str
    name: str
    previous: tuple[str, ...] = ()


@dataclass
class Chain:
    """The claims that count in one clone, by id."""

    claims: dict[str, Claim] = field(default_factory=dict)
    # Claims present here that no longer count ({id: why}): a later claim that names one
    # finds it, but not as a claim.
    not_counted: dict[str, str] = field(default_factory=dict)

    def heads(self) -> list[str]:
        """The ids a new claim names: claims no other claim names, at most MAX_PREVIOUS."""
        named = {ref for claim in self.claims.values() for ref in claim.previous}
        return sorted(ref for ref in set(self.claims) - named if ID_PATTERN.match(ref))[
            :MAX_PREVIOUS
        ]

    def missing(self) -> dict[str, list[str]]:
        """``{id: [names of the claims that name it]}`` for every named claim not here."""
        found: dict[str, list[str]] = {}
        for claim in self.claims.values():
            for ref in claim.previous:
                if ref not in self.claims:
                    found.setdefault(ref, []).append(claim.name)
        return {ref: sorted(namers) for ref, namers in found.items()}


def tag_id(tag: str, target: str) -> str:
    return f"tag:{tag}:{target}"


def note_id(record: dict) -> str:
    """A record's id: its commit and the hash of what its signature covers."""
    payload = notes.signed_payload({k: v for k, v in record.items() if k != "signed_by"})
    digest = hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()
    return f"record:{record['revision']}:{digest[:32]}"


def describe(claim_id: str) -> str:
    """An id as a person reads it: ``tag model@v1.0.0!`` or ``a record on commit 1a2b3c4d5e6f``."""
    kind, _, rest = claim_id.partition(":")
    if kind == "tag":
        return f"tag {rest.rsplit(':', 1)[0]}"
    return f"a record on commit {rest.split(':', 1)[0][:12]}"


def valid_previous(value) -> bool:
    """Whether a record's ``previous`` is a list of claim ids a signer could have written."""
    return (
        isinstance(value, list)
        and len(value) <= MAX_PREVIOUS
        and all(isinstance(item, str) and ID_PATTERN.match(item) for item in value)
    )


def previous_in_message(message: str) -> tuple[str, ...]:
    """The ids a tag's message names, read up to its signature (which covers them)."""
    data = message.encode("utf-8", "surrogateescape")
    signed = signing.split_signed(data)
    payload = (signed[0] if signed else data).decode("utf-8", "replace")
    found = []
    for line in payload.splitlines():
        matched = _TRAILER_LINE.match(line.strip())
        if matched and ID_PATTERN.match(matched.group(1)):
            found.append(matched.group(1))
    return tuple(found[:MAX_PREVIOUS])


def trailer(previous: list[str]) -> str:
    """The lines a new tag's message ends with: the heads its maker saw."""
    return "".join(f"{TRAILER}: {ref}\n" for ref in previous)


def read(repo: Path) -> tuple[Chain, list[str]]:
    """Every claim that counts here (and those present that no longer count), and the
    record lines that were skipped."""
    from .registry import artifact

    name, _ = artifact(repo)
    chain = Chain()
    found = tags.artifact_tags(repo, name)
    for tag, (target, _) in found.found.items():
        claim_id = tag_id(tag, target)
        if tag not in found.signers:
            chain.not_counted[claim_id] = found.ignored.get(tag, "it does not count")
            continue
        shown = git(repo, "cat-file", "-p", target, errors="surrogateescape")
        kind = git(repo, "cat-file", "-t", target).stdout.strip()
        previous = previous_in_message(shown.stdout) if kind == "tag" else ()
        chain.claims[claim_id] = Claim(claim_id, f"tag {tag}", previous)
    uncounted: list[tuple[dict, str]] = []
    records, skipped = notes.all_notes(repo, uncounted=uncounted)
    for record in records:
        claim_id = note_id(record)
        previous = tuple(record.get("previous") or ())
        when = record.get("finished") or record.get("started") or ""
        title = f"{record['kind']} record on commit {record['revision'][:12]} ({when})"
        chain.claims[claim_id] = Claim(claim_id, title, previous)
    for record, why in uncounted:
        chain.not_counted.setdefault(note_id(record), why)
    return chain, skipped


def heads(repo: Path) -> list[str]:
    """What a claim made now names: the newest claims here (none if the claims cannot be
    read: a claim is never lost for want of its chain)."""
    try:
        chain, _ = read(repo)
    except ProjectError:
        return []
    return chain.heads()


# ---- the clone's memory --------------------------------------------------------------------


def _memory_file(repo: Path) -> Path:
    common = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()
    return Path(common) / MEMORY


def _load(repo: Path) -> dict:
    try:
        data = json.loads(_memory_file(repo).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        data = {}
    data = data if isinstance(data, dict) else {}
    for key in ("seen", "on_origin", "accepted"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    return data


def _save(repo: Path, data: dict) -> None:
    path = _memory_file(repo)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only .git: the chain still speaks, the memory just does not grow


def _today() -> str:
    return notes.utc_now()[:10]


def _deleted(chain: Chain, memory: dict) -> dict[str, str]:
    """``{id: the line that names it}`` for every claim deleted as far as this clone can
    tell: named by a later claim but not here, or held here once and gone; never one that
    is here but no longer counts, nor one accepted as deleted on purpose."""
    found = {}
    for ref, namers in sorted(chain.missing().items()):
        if ref in memory["accepted"] or ref in chain.not_counted:
            continue
        named_by = namers[0] + (f" and {len(namers) - 1} more" if len(namers) > 1 else "")
        found[ref] = (
            f"{describe(ref)} is named by the signed {named_by} but is not in this clone: "
            f"deleted on origin, or not fetched. Fix: {_fix(ref)}"
        )
    for ref, since in sorted(memory["seen"].items()):
        if ref in chain.claims or ref in found or ref in memory["accepted"]:
            continue
        if ref in chain.not_counted:
            continue
        found[ref] = (
            f"{describe(ref)} was a claim in this clone (seen {since}) and is gone. "
            f"Fix: {_fix(ref)}"
        )
    return found


def problems(repo: Path) -> list[str]:
    """Every claim deleted as far as this clone can tell, one line each with the fix.
    Remembers the claims it saw."""
    chain, _ = read(repo)
    memory = _load(repo)
    lines = list(_deleted(chain, memory).values())
    for ref in chain.claims:
        memory["seen"].setdefault(ref, _today())
    _save(repo, memory)
    return lines


def _fix(ref: str) -> str:
    if ref.startswith("tag:"):
        tag = ref.split(":")[1]
        return (
            f"`git fetch origin tag {tag}`; if origin lost it or holds another tag of that "
            f"name, push it from a clone that has it (`git push --force origin "
            f"refs/tags/{tag}`). If it was deleted on purpose: `make claims ACCEPT={tag}`."
        )
    commit = ref.split(":")[1]
    return (
        "`make setup` (fetches the records); if origin lost them, `make push-records` from a "
        f"clone that has them. If deleted on purpose: `make claims ACCEPT={commit[:12]}`."
    )


def _names(ref: str, name: str) -> bool:
    """Whether ``name`` (an id, a tag, or a commit or its first 7+ digits) names ``ref``."""
    subject = ref.split(":")[1]
    is_prefix = ref.startswith("record:") and len(name) >= 7 and subject.startswith(name)
    return ref == name or subject == name or is_prefix


def accept(repo: Path, names: list[str]) -> list[str]:
    """Mark claims reported as deleted (by tag name, commit or id) as deleted on purpose, in
    this clone only; only those reported now, never a claim still here."""
    chain, _ = read(repo)
    memory = _load(repo)
    reported = set(_deleted(chain, memory)) | set(_dropped(memory, None))
    chosen = sorted(ref for ref in reported if any(_names(ref, name) for name in names if name))
    for ref in chosen:
        memory["accepted"][ref] = _today()
    _save(repo, memory)
    return chosen


# ---- what origin holds ---------------------------------------------------------------------

_ORIGIN_VIEW = "refs/notes/reproml-origin-view"


def _dropped(memory: dict, theirs: set[str] | None) -> dict[str, str]:
    """``{id: since}`` of claims origin held and (per ``theirs``, or as last found) lost."""
    lost = memory.setdefault("lost_on_origin", {})
    if theirs is None:
        return {ref: lost[ref] for ref in lost if ref not in memory["accepted"]}
    return {
        ref: since
        for ref, since in memory["on_origin"].items()
        if ref not in theirs and ref not in memory["accepted"]
    }


def origin_drops(repo: Path, remote: str = "origin") -> list[str]:
    """Claims origin held when this clone last looked and holds no more, each named with the
    fix. A fetch never drops them here (tags stay, records merge as a union), so this is
    where a deletion on origin shows before a fresh clone would silently lack it. What origin
    holds is remembered as it is (cheap: `make setup` runs this); a loss is named only for a
    claim that counts here, since anyone can push, then delete, other tags and notes."""
    from .registry import artifact

    if git(repo, "remote", "get-url", remote).returncode != 0:
        return []
    listed = git(repo, "ls-remote", "--tags", remote, errors="surrogateescape")
    try:
        name, _ = artifact(repo)
    except ProjectError:
        return []  # no model artifact to read claims of: the registry commands say why
    if listed.returncode != 0:
        return []
    theirs = set()
    for line in listed.stdout.splitlines():
        target, _, ref = line.partition("\t")
        tag = ref.removeprefix("refs/tags/")
        if not tag.endswith("^{}") and tags.artifact_name(tag) == name:
            theirs.add(tag_id(tag, target))
    fetched = git(repo, "fetch", "--quiet", remote, f"+{notes.NOTES_REF}:{_ORIGIN_VIEW}")
    try:
        if fetched.returncode == 0 and not notes.malformed_notes(repo, _ORIGIN_VIEW):
            records, _ = notes.all_notes(repo, _ORIGIN_VIEW, verify=False)
            theirs |= {note_id(record) for record in records}
    finally:
        git(repo, "update-ref", "-d", _ORIGIN_VIEW)
    # What this clone holds that origin lacks, read cheaply (no signature checked yet).
    here = {
        tag_id(tag, target) for tag, target in _local_tags(repo) if tags.artifact_name(tag) == name
    }
    here |= {note_id(record) for record in notes.all_notes(repo, verify=False)[0]}
    memory = _load(repo)
    dropped = _dropped(memory, theirs)
    unheld = {ref: "" for ref in here - theirs - set(memory["on_origin"]) - set(memory["accepted"])}
    if dropped or unheld:  # only now the chain: only claims that count are named
        chain, _ = read(repo)
        dropped = {ref: since for ref, since in dropped.items() if ref in chain.claims}
        unheld = {ref: since for ref, since in unheld.items() if ref in chain.claims}
    memory["lost_on_origin"] = {**dropped, **unheld}
    for ref in theirs:
        memory["on_origin"].setdefault(ref, _today())
    _save(repo, memory)
    lines = [
        f"{remote} no longer has {describe(ref)}, which it held on {since}; this clone keeps "
        f"it. Fix: {_restore(ref, remote)}"
        for ref, since in sorted(dropped.items())
    ]
    lines += [
        f"{remote} does not have {describe(ref)}, which this clone holds: deleted there, or "
        f"not pushed yet. Fix: {_restore(ref, remote)}"
        for ref in sorted(unheld)
    ]
    return lines


def _local_tags(repo: Path) -> list[tuple[str, str]]:
    listed = git(
        repo,
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:strip=2) %(objectname)",
        errors="surrogateescape",
    )
    return [tuple(line.split(" ", 1)) for line in listed.stdout.splitlines() if " " in line]


def _restore(ref: str, remote: str) -> str:
    if ref.startswith("tag:"):
        tag = ref.split(":")[1]
        return (
            f"`git push --force {remote} refs/tags/{tag}` (and protect tags on the server: "
            "docs/trust-model.md)."
        )
    return "`make push-records` publishes it again."


def summary(repo: Path) -> tuple[str, bool]:
    """``make claims``: the chain as it stands, and whether a claim was deleted."""
    found = problems(repo)
    lacking = origin_drops(repo)
    chain, skipped = read(repo)
    lines = [
        f"{len(chain.claims)} signed claims, {len(chain.heads())} newest (named by no later "
        "claim yet: only server-side protection and the clones that saw them keep those)"
    ]
    lines += [f"  newest: {describe(ref)}" for ref in chain.heads()]
    for ref, why in sorted(chain.not_counted.items()):
        if ref in {named for claim in chain.claims.values() for named in claim.previous}:
            lines.append(f"  named, here, but no longer counts: {describe(ref)}: {why}")
    if skipped:
        lines.append(f"{len(skipped)} record lines do not count (`make report` names them)")
    lines += [f"warning: {line}" for line in lacking]  # `make setup` says so too
    lines += [f"error: {line}" for line in found]
    return "\n".join(lines), bool(found)


def report_deleted(repo: Path) -> int:
    """Name every claim deleted as far as this clone can tell (claims.py); 1 if any."""
    deleted = problems(repo)
    for line in deleted:
        print(f"error: CLAIM DELETED: {line}", file=sys.stderr)
    return 1 if deleted else 0


def run_claims(args: argparse.Namespace) -> int:
    """`make claims`: the chain's heads and any claim deleted (ACCEPT=: deleted on purpose)."""
    from .registry import repo_root

    repo = repo_root()
    if args.accept:
        accepted = accept(repo, [name for names in args.accept for name in names.split()])
        print(f"accepted as deleted on purpose, in this clone: {len(accepted)}")
        print("".join(f"  {describe(ref)}\n" for ref in accepted), end="")
    text, deleted = summary(repo)
    print(text)
    return 1 if deleted else 0
