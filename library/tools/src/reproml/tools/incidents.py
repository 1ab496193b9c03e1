"""`make incident`: a production incident attributed to a release, kept as a claim like a
rebuild's (a signed git note on the release's commit, chained to the claims before it), so
the report can count the standard's third measure: incidents attributed to unreproducible
model state, per quarter. An unsigned, re-spelled or edited incident counts nowhere."""

import argparse
import sys

from .errors import RegistryError
from .notes import CLOSED_VALUES, append_note, utc_now
from .registry import find_release, repo_root
from .release import require_provenance

CAUSES = tuple(sorted(CLOSED_VALUES["incident"][1]))
# A note says what happened; a ticket's link, not the ticket.
MAX_NOTE = 2000


def record(version: str, cause: str, note: str) -> tuple[str, str | None]:
    """Keep an incident about release ``version``: ``(its release tag, a warning or None)``.
    The release must verify, as only verified releases' claims count."""
    if cause not in CAUSES:
        raise RegistryError(
            f"CAUSE={cause!r} is not a cause. Fix: CAUSE=unreproducible (the model in "
            "production could not be rebuilt, rolled back or served as released) or "
            "CAUSE=other (anything else), spelled so."
        )
    note = note.strip()
    if not note or len(note) > MAX_NOTE:
        problem = "is empty" if not note else f"is longer than {MAX_NOTE} characters"
        raise RegistryError(
            f"NOTE= {problem}. Fix: say in a sentence what happened, with a ticket's link."
        )
    repo = repo_root()
    target = find_release(repo, version)
    require_provenance(repo, target)
    incident = {
        "kind": "incident",
        "revision": target.commit,
        "release": target.tag,
        "cause": cause,
        "note": note,
        "reported": utc_now(),
    }
    return target.tag, append_note(repo, target.commit, incident)


def run_incident(args: argparse.Namespace) -> int:
    """`make incident`."""
    tag, warning = record(args.version, args.cause, args.note)
    print(f"recorded an incident ({args.cause}) about {tag}: push it with `make push-records`")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
