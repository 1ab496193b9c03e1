"""Rebuild notes: what a rebuild, a field check or a rollback found, kept as a git note on the
commit it is about. (The model's own record, models/*.json, is the training's; a note is
about a rebuild of it. The user's text calls both "records"; the code says note.)

A note travels with the repository (``git push origin refs/notes/reproml``, fetched by
``make setup``), describes exactly one commit, and never dirties the working tree, so a
note can be added after the fact by anyone, CI included, without a new commit.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..runtime.io import compact_json
from . import signing
from .errors import RecordsError, RegistryError, SigningError
from .git import git, git_checked, is_utf8

NOTES_REF = "refs/notes/reproml"


def utc_now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _git(repo: Path, *args: str, check: bool = True):
    return git_checked(repo, *args, error=RecordsError) if check else git(repo, *args)


def _read_git(repo: Path, *args: str):
    """git output anyone who can push may have written: bytes that are not UTF-8 are kept
    (as surrogates), never a decoding traceback."""
    return git(repo, *args, errors="surrogateescape")


def signed_payload(record: dict) -> str:
    """What a record's signature covers: the record without its signature, canonically."""
    unsigned = {key: value for key, value in record.items() if key != "signature"}
    return compact_json(unsigned)


def append_note(repo: str | Path, commit: str, record: dict) -> str | None:
    """Add ``record``, signed, to the notes of ``commit`` (one JSON object per line), naming
    the newest claims it follows (``claims.py``: so a deleted claim is missed). Without
    a signing key the record is kept unsigned and the returned warning says it will not
    count; with signing off (``release_signing = "off"``) records are never signed."""
    from . import claims  # claims reads the records: imported here, not at the top

    repo = Path(repo)
    warning = None
    record = {**record, "previous": claims.heads(repo)}
    try:
        if signing.mode(repo) != "off":
            record["signature"] = signing.sign_text(repo, signed_payload(record))
    except (SigningError, RegistryError) as error:
        warning = f"this record is kept UNSIGNED, so the report will not count it: {error}"
    line = compact_json(record)
    _git(repo, "notes", f"--ref={NOTES_REF}", "append", "-m", line, commit)
    return warning


REQUIRED_FIELDS = {
    "rebuild": {"revision": str, "result": str, "varied_environment": bool, "timings": dict},
    "rollback": {"revision": str, "result": str, "release": str},
    "incident": {"revision": str, "cause": str, "release": str, "note": str, "reported": str},
}
# The values a kind's closed field may take, spelled exactly: a re-spelled value
# ("Unreproducible") is not a record, so it counts nowhere.
CLOSED_VALUES = {
    "rebuild": ("result", {"match", "equivalent", "mismatch", "error", "timeout"}),
    "rollback": ("result", {"success", "failure"}),
    "incident": ("cause", {"unreproducible", "other"}),
}
# When a record says it happened: a UTC time as utc_now() writes it (the report's quarters).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parsed_time(value) -> datetime | None:
    """A claim's or tag's time (``2026-12-07T16:35:10Z``, or an ISO time with an offset) in
    UTC; None for no time or not one."""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def environment_key(record: dict) -> str:
    """What names the environment a rebuild record ran in: its fingerprint's hash, or the
    whole fingerprint when it has none."""
    fingerprint = record.get("environment") or {}
    return fingerprint.get("hash") or compact_json(fingerprint)


def is_utc_time(value) -> bool:
    """A real UTC time written as utc_now() writes it (2026-02-31 is none)."""
    try:
        datetime.strptime(str(value), TIME_FORMAT)
    except ValueError:
        return False
    return True


def check_note(repo: Path, line: str, commit: str) -> tuple[dict | None, str | None]:
    """A note line as a record, or the reason it is not one. A record must be a JSON object
    of a known kind, with its fields of the right types, about the commit it is attached to
    (a note claiming another commit was moved or forged), signed by a key in
    ``.allowed_signers`` unless the project opted out of signing."""
    record, problem = well_formed(line, commit)
    if record is None:
        return None, problem
    if signing.mode(repo) == "off":
        return record, None
    if not isinstance(record.get("signature"), str):
        return None, "not signed (written by hand, or by a rebuild without a signing key)"
    signer, problem = signing.text_signer(repo, signed_payload(record), record["signature"])
    if problem:
        return None, problem
    return {**record, "signed_by": signer}, None


def well_formed(line: str, commit: str) -> tuple[dict | None, str | None]:
    """A note line as a record of ``commit`` whatever its signature, or why it is not one."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # malformed, a number of thousands of digits, deep
        return None, "not JSON that can be read (malformed, a number too long, or nested too deep)"
    if not isinstance(record, dict) or record.get("kind") not in REQUIRED_FIELDS:
        return None, "not a rebuild, rollback or incident record"
    kind = record["kind"]
    for key, expected in REQUIRED_FIELDS[kind].items():
        if not isinstance(record.get(key), expected):
            return None, f"{kind} record without a valid {key!r}"
    closed, values = CLOSED_VALUES[kind]
    if record[closed] not in values:
        return None, f"unknown {closed} {str(record[closed])[:40]!r}"
    when = "reported" if kind == "incident" else "finished"  # older records may lack "finished"
    if (kind == "incident" or record.get(when)) and not is_utc_time(record.get(when)):
        return None, f"{kind} record whose {when!r} is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)"
    if record["revision"] != commit:
        return None, f"it describes {record['revision'][:12]}, not the commit it is attached to"
    if kind == "rebuild":
        if not _seconds(record["timings"].get("total")):
            return None, "rebuild record without a total time in seconds"
        for step, seconds in record["timings"].items():
            if not _seconds(seconds):
                return None, f"rebuild record whose timings.{str(step)[:40]} is not seconds"
        for key in ("environment", "stages"):
            if not isinstance(record.get(key, {}), dict):
                return None, f"rebuild record whose {key!r} is not an object"
        if not isinstance(record.get("sealed", False), bool):  # older records lack it
            return None, "rebuild record whose 'sealed' is not true or false"
    if "previous" in record and not _previous(record["previous"]):
        return None, "'previous' is not a list of claim ids"
    return record, None


# The longest a rebuild can be said to have taken: about four months.
MAX_SECONDS = 1e7


def _seconds(value) -> bool:
    """A number of seconds a rebuild can have taken: finite, from 0 to MAX_SECONDS (a number
    of thousands of digits, or infinity, would break every mean the report takes)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and 0 <= value <= MAX_SECONDS


def _previous(value) -> bool:
    from .claims import valid_previous

    return valid_previous(value)


# A line's verdict never changes for one commit and one trust root: checked once per run
# (the claims' chain reads every record again, and signatures cost a process each).
_verdicts: dict[tuple[Path, str, str], tuple[dict | None, str | None]] = {}


def _checked(repo: Path, line: str, commit: str) -> tuple[dict | None, str | None]:
    key = (repo.resolve(), commit, line)
    if key not in _verdicts:
        _verdicts[key] = check_note(repo, line, commit)
    return _verdicts[key]


def _once_counted(repo: Path, line: str, commit: str, problem: str, uncounted: list) -> None:
    """Add the record to ``uncounted`` if it is the project's own that no longer counts:
    well formed and signed by a key the default branch once listed (anyone can strip or
    replace a signature, so an unsigned copy of a record never stands for it)."""
    formed, _ = well_formed(line, commit)
    if formed is None:
        return
    payload = signed_payload(formed)
    who = signing.once_allowed_signer(repo, payload, formed.get("signature"))
    if who:
        uncounted.append((formed, f"{problem} (signed by {who}, once listed)"))


def notes_of(
    repo: str | Path,
    commit: str,
    ref: str = NOTES_REF,
    uncounted: list | None = None,
    verify: bool = True,
) -> tuple[list[dict], list[str]]:
    """The valid records of ``commit``'s note, and one line for each line that is not. A
    record counts once: copies are found by what the signature covers (the canonical
    payload), so the same record spelled with other spaces, key order or armour is a copy.
    ``uncounted`` gets ``(record, why)`` for each well-formed record of this commit that
    does not count (unsigned, or by a key no longer listed): it is there, but no claim.
    ``verify=False``: well-formed records, their signatures unchecked (to name them only)."""
    shown = _read_git(Path(repo), "notes", f"--ref={ref}", "show", commit)
    if shown.returncode != 0:
        return [], []
    records, skipped, seen = [], [], {}
    for number, line in enumerate(shown.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{ref} note on {commit[:12]}, line {number}"
        if not is_utf8(line):
            skipped.append(f"{where}: not UTF-8 text")
            continue
        if verify:
            record, problem = _checked(Path(repo), line, commit)
        else:
            record, problem = well_formed(line, commit)
        if record is None:
            skipped.append(f"{where}: {problem}")
            if uncounted is not None:
                _once_counted(Path(repo), line, commit, problem, uncounted)
            continue
        payload = signed_payload({k: v for k, v in record.items() if k != "signed_by"})
        if payload in seen:
            skipped.append(f"{where}: a copy of line {seen[payload]} (a record counts once)")
            continue
        seen[payload] = number
        records.append(record)
    return records, skipped


def all_notes(
    repo: str | Path, ref: str = NOTES_REF, uncounted: list | None = None, verify: bool = True
) -> tuple[list[dict], list[str]]:
    """Every valid record in the repository (or in ``ref``), and what was skipped (never
    counted); ``uncounted`` and ``verify`` as notes_of takes them."""
    listed = _read_git(Path(repo), "notes", f"--ref={ref}", "list")
    records, skipped = [], []
    if listed.returncode != 0:
        problem = malformed_notes(Path(repo), ref) or listed.stderr.strip()
        return [], [f"{ref} cannot be read as notes ({problem}): no record counted"]
    for line in listed.stdout.splitlines():
        _, commit = line.split()
        found, problems = notes_of(repo, commit, ref, uncounted, verify)
        records.extend(found)
        skipped.extend(problems)
    return records, skipped


def malformed_notes(repo: Path, ref: str) -> str | None:
    """Why ``ref`` is not a notes tree git can merge (anyone who can push can push one), or
    None: it must be a commit whose tree holds only blobs named by the commit they annotate."""
    kind = _git(repo, "cat-file", "-t", ref, check=False).stdout.strip()
    if kind != "commit":
        return f"it points at a {kind or 'missing object'}, not a commit"
    listed = _git(repo, "ls-tree", "-r", "-z", "--full-tree", ref, check=False)
    if listed.returncode != 0:
        return "its tree cannot be read"
    for entry in listed.stdout.split("\0"):
        if not entry:
            continue
        info, _, path = entry.partition("\t")
        mode, kind, _ = info.split(" ", 2)
        name = path.replace("/", "")
        if kind != "blob" or mode not in ("100644", "100755"):
            return f"its tree holds a {kind} at {path[:60]!r}"
        if len(name) != 40 or any(char not in "0123456789abcdef" for char in name):
            return f"its tree holds {path[:60]!r}, not a note named by a commit"
    return None


def fetch(repo: str | Path, remote: str = "origin") -> str:
    """Merge the remote's records into ours (line union: nothing is ever dropped). A remote
    notes ref that is not a notes tree is named and left out, never merged and never a
    failure: it must not stop `make setup`."""
    repo = Path(repo)
    if _git(repo, "remote", "get-url", remote, check=False).returncode != 0:
        return f"no git remote {remote!r}: nothing to fetch"
    staging = "refs/notes/reproml-incoming"
    got = _git(repo, "fetch", "--quiet", remote, f"+{NOTES_REF}:{staging}", check=False)
    if got.returncode != 0:
        return f"{remote} has no records yet"
    try:
        problem = malformed_notes(repo, staging)
        if problem:
            return (
                f"warning: {remote}'s {NOTES_REF} is not a notes tree ({problem}); it was not "
                "merged, and the records here are as they were. Fix: whoever can push to "
                f"{remote} restores {NOTES_REF} from a clone that holds the records."
            )
        if _git(repo, "rev-parse", "--verify", "--quiet", NOTES_REF, check=False).returncode:
            _git(repo, "update-ref", NOTES_REF, staging)
            return f"merged the records of {remote}"
        merge = ["notes", f"--ref={NOTES_REF}", "merge", "--quiet", "--strategy=cat_sort_uniq"]
        merged = _git(repo, *merge, staging, check=False)
        if merged.returncode != 0:
            _git(repo, "notes", f"--ref={NOTES_REF}", "merge", "--abort", check=False)
            return (
                f"warning: {remote}'s records could not be merged ({merged.stderr.strip()[:200]});"
                " the records here are as they were."
            )
        return f"merged the records of {remote}"
    finally:
        _git(repo, "update-ref", "-d", staging, check=False)


PUSH_ATTEMPTS = 5


def push(repo: str | Path, remote: str = "origin") -> str:
    """Publish our records after merging the remote's, so a concurrent CI run loses none.
    Parallel jobs (a field rebuild's matrix) race: a push refused because another job pushed
    first merges again and retries."""
    repo = Path(repo)
    for _ in range(PUSH_ATTEMPTS):
        fetched = fetch(repo, remote)
        if fetched.startswith("warning:"):  # pushing over it would drop the remote's claims
            raise RecordsError(f"not pushed: {fetched.removeprefix('warning: ')}")
        if _git(repo, "rev-parse", "--verify", "--quiet", NOTES_REF, check=False).returncode:
            return "no records yet: nothing to push"
        pushed = _git(repo, "push", "--quiet", remote, NOTES_REF, check=False)
        if pushed.returncode == 0:
            return f"pushed the records to {remote}"
        if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
            break
    raise RecordsError(f"could not push {NOTES_REF} to {remote}: {pushed.stderr.strip()}")


def publish_after(code: int) -> int:
    """Push the records whatever the rebuild found: a CI job that fails still publishes them,
    and a push that fails fails the job (GitLab only warns about after_script)."""
    from .registry import repo_root

    try:
        print(push(repo_root()))
    except RecordsError as error:
        print(f"error: {error}", file=sys.stderr)
        return code or 1
    return code


def run_records(args: argparse.Namespace) -> int:
    """`make push-records`, and the fetch in `make setup`."""
    from . import claims
    from .registry import repo_root

    repo = repo_root()
    action = fetch if args.action == "fetch" else push
    print(action(repo))
    if args.action == "fetch":  # make setup: a fetch never drops a claim here, but says so
        for line in claims.origin_drops(repo):
            print(f"warning: ORIGIN LACKS A CLAIM: {line}", file=sys.stderr)
    return 0
