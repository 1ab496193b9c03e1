"""What `make registry` prints: each release with its commit, date and registry stages,
whether its provenance verifies, the gate's decision its signed statement holds, and its
confidence (confidence.py) from its own signed evidence."""

import argparse
from pathlib import Path

from . import registry, report


def listing(repo: Path) -> list[str]:
    """The lines of `make registry` for the repository at ``repo``."""
    name, _ = registry.artifact(repo)
    found = report.measures(repo)
    releases, ignored = found["per_release"], found["ignored_tags"]
    lines = [] if releases else [f"no releases of {name} yet: `make release VERSION=v0.1.0`"]
    for entry in releases:
        problems = entry["provenance_problems"]
        stages = ", ".join(entry["stages"]) or "-"
        verdict = "provenance ok" if not problems else f"provenance BROKEN: {problems[0]}"
        lines.append(
            f"{entry['release']:<20} {entry['commit'][:12]}  {entry['created'][:10]}  "
            f"stages: {stages:<12} {verdict}"
        )
        if not problems:
            lines.append(f"{'':<22}{entry['gate']}")
            lines.append(f"{'':<22}{report.confidence_line(entry['confidence'], found)}")
    if ignored:
        lines.append(f"ignored {len(ignored)} tags (not releases or stages for anyone):")
        lines += [f"  {why}" for _, why in sorted(ignored.items())]
    return lines


def run_registry(args: argparse.Namespace) -> int:
    """`make registry`: the listing, then any claim deleted (1 if one is)."""
    from .claims import report_deleted

    repo = registry.repo_root()
    print("\n".join(listing(repo)))
    return report_deleted(repo)
