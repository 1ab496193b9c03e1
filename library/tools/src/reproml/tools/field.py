"""The field rebuild: every release rebuilt as it was released, each result kept as a record.

CI runs it on a schedule (docs/ci.md), so the report's field rate and
time to reproduce come from runs nobody had to remember. A release whose data or model is
gone from the DVC remote fails without a rebuild: a warm CI cache must not hide what a
stranger could no longer fetch. One release failing never stops the others; the run fails
at the end, naming each release that no longer rebuilds and why.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import claims, rebuild, registry, tags
from .errors import RebuildError, RegistryError
from .locking import find_uv
from .notes import append_note, utc_now
from .storage import check_releases


@dataclass
class FieldResult:
    release: str
    result: str
    cause: str
    seconds: float
    # EQUIVALENT passes when asked (--accept-equivalent) but is still shown as such.
    equivalent_passes: bool = False

    @property
    def passed(self) -> bool:
        return self.result == "match" or (self.result == "equivalent" and self.equivalent_passes)


def release_tags(
    repo: Path, wanted: list[str] | None = None
) -> tuple[list[registry.Release], dict[str, str]]:
    """The releases to rebuild: all of them, or those named (``v1.0.0`` or its tag), that
    verify (signature and provenance); and every other release tag with why it is not
    rebuilt. A tag that does not verify is never checked out: its code could be anyone's."""
    registry.require_full_history(repo)
    deleted = claims.problems(repo)
    if deleted:  # a deleted deregistration would bring a release back: list nothing
        raise RegistryError(
            f"{len(deleted)} signed claims were deleted, so the releases cannot be listed as "
            "they were made; nothing was rebuilt:\n  " + "\n  ".join(deleted)
        )
    found, ignored = registry.registry_view(repo)
    if wanted:
        names = set()
        for version in wanted:
            named = registry.tags_for_version(repo, version)
            if not set(named) & ({r.tag for r in found} | set(ignored)):
                raise RegistryError(
                    f"{version} is not a registered version: `make registry` lists them"
                )
            names.update(named)
        found = [release for release in found if release.tag in names]
        ignored = {tag: why for tag, why in ignored.items() if tag in names}
    # Of the tags that do not count, those that would register a version: the releases that
    # are not rebuilt (stage and deprecation tags are no releases at all).
    refused = {tag: why for tag, why in ignored.items() if tags.registers_a_version(tag)}
    verified = []
    for release in found:
        problems = registry.check_release(repo, release)
        if problems:
            refused[release.tag] = "provenance BROKEN: " + problems[0]
        else:
            verified.append(release)
    return verified, refused


def cause(outcome: rebuild.Rebuild) -> str:
    """One line that says why a rebuild did not match (the rebuild's output has the rest)."""
    if outcome.timed_out:
        return "timed out"
    if outcome.error:
        return outcome.error.strip().splitlines()[0]
    if outcome.differences:
        return "; ".join(outcome.differences[:3])
    differing = sorted(stage for stage, value in outcome.stages.items() if value != "match")
    return "stages differ from the committed dvc.lock: " + ", ".join(differing)


def _lost_objects(
    repo: Path, release: registry.Release, lost: list[str], varied: bool, record: bool
) -> FieldResult | None:
    """A release the remote can no longer serve: a failed rebuild, kept as a record."""
    if not lost:
        return None
    error = "the DVC remote lacks what this release needs: " + ", ".join(lost)
    outcome = rebuild.Rebuild(
        ref=release.tag, commit=release.commit, varied=varied, error=error, started=utc_now()
    )
    outcome.finished = outcome.started
    outcome.timings["total"] = 0.0
    if record and (warning := append_note(repo, release.commit, outcome.as_note())):
        print(f"warning: {warning}", file=sys.stderr)
    return FieldResult(release.tag, "error", error, 0.0)


def rebuild_releases(
    repo: Path,
    wanted: list[str] | None = None,
    varied: bool = False,
    accept_equivalent: bool = False,
    record: bool = True,
    timeout: float | None = None,
    require_sealed: bool = False,
) -> list[FieldResult]:
    find_uv()  # no uv fails the run once, not once per release
    if require_sealed and (why := rebuild.unsealed_warning()):
        raise RebuildError(f"a sealed field rebuild was required; nothing was run. {why}")
    chosen, refused = release_tags(repo, wanted)
    for tag, why in sorted(refused.items()):
        print(f"== {tag}: NOT VERIFIED, not rebuilt: {why}", flush=True)
    # One question to the remote for every release, before any rebuild.
    missing = check_releases([release.tag for release in chosen])
    results = [FieldResult(tag, "not verified", why, 0.0) for tag, why in sorted(refused.items())]
    for release in chosen:
        print(f"== {release.tag} ({release.commit[:12]})", flush=True)
        lost = _lost_objects(repo, release, missing[release.tag], varied, record)
        if lost:
            print(f"error: {lost.cause}", flush=True)
            results.append(lost)
            continue
        try:
            outcome = rebuild.rebuild(
                release.tag,
                varied=varied,
                record=record,
                timeout=timeout,
                commit=release.commit,
                require_sealed=require_sealed,
            )
        except RebuildError as error:
            results.append(FieldResult(release.tag, "error", str(error), 0.0))
            print(f"error: {error}", flush=True)
            continue
        print(rebuild.report(outcome), flush=True)
        found = FieldResult(
            release.tag, outcome.result, "", outcome.timings.get("total", 0.0), accept_equivalent
        )
        if outcome.result != "match":
            found.cause = cause(outcome)
        results.append(found)
    return results


def summary(results: list[FieldResult], varied: bool) -> tuple[str, int]:
    """The table CI prints last, and the exit code: 1 when any release did not rebuild. A tag
    that does not verify is listed, not rebuilt, and fails nothing: anyone can push a tag."""
    kind = "lab (varied environment)" if varied else "field (as released)"
    if not results:
        return "no releases yet: nothing to rebuild (`make release VERSION=v0.1.0` makes one)", 0
    lines = [f"{kind} rebuild of {len(results)} release{'s' if len(results) != 1 else ''}:"]
    for item in results:
        lines.append(
            f"  {item.release:<24} {item.result.upper():<11} {item.seconds:7.1f} s"
            + (f"  {item.cause}" if item.cause else "")
        )
    failed = [item for item in results if not item.passed and item.result != "not verified"]
    if failed:
        named = "; ".join(
            f"{item.release} ({item.result.upper()}: {item.cause})" for item in failed
        )
        lines.append(f"error: {len(failed)} of {len(results)} releases no longer rebuild: {named}")
    lines.append(
        "Each result is a record: `make push-records` publishes it, `make report` counts it."
    )
    return "\n".join(lines), 1 if failed else 0


def release_list(repo: Path) -> list[str]:
    """Every release tag that verifies, for a CI matrix (GitHub: ``fromJSON``); the others are
    named on stderr."""
    verified, refused = release_tags(repo)
    for tag, why in sorted(refused.items()):
        print(f"not verified, not listed: {tag}: {why}", file=sys.stderr)
    return [release.tag for release in verified]


def run_field_rebuild(args: argparse.Namespace) -> int:
    """`make field-rebuild` and `make release-list`."""
    from .notes import publish_after

    repo = registry.repo_root()
    if args.list:
        print(json.dumps(release_list(repo)))
        return 0
    results = rebuild_releases(
        repo,
        args.release,
        varied=args.vary,
        accept_equivalent=args.accept_equivalent,
        record=args.record,
        timeout=args.timeout,
        require_sealed=args.require_sealed,
    )
    text, code = summary(results, args.vary)
    print(text, file=sys.stderr if code else sys.stdout)
    return publish_after(code) if args.push and args.record else code
