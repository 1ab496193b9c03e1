"""The project's reproducibility measures, computed from its own records.

Inputs: the release tags (with their provenance statements) and the records kept as git
notes by rebuilds and rollbacks. Success rates are split as reproducible-builds.org splits
them: "field" for rebuilds of released versions as they are, "lab" for rebuilds in a varied
environment. A rebuild that timed out is "unchecked", not a failure. Field rebuilds that ran
sealed (tools/sandbox.py) are also counted apart: only those ran nothing but the release's
declared inputs.
"""

import argparse
import collections
import json
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path

from ..runtime.io import atomic_write_text
from . import claims, confidence, criteria, registry
from .notes import all_notes, environment_key, parsed_time

STEPS = ("environment", "fetch", "compute", "compare")


def _rate(records: list[dict], accepted: tuple[str, ...] = ("match",)) -> dict:
    checked = [r for r in records if r["result"] != "timeout"]
    successes = sum(r["result"] in accepted for r in checked)
    return {
        "successes": successes,
        "checked": len(checked),
        "unchecked": len(records) - len(checked),
        "rate": successes / len(checked) if checked else None,
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def quarter(timestamp: str | None) -> str | None:
    """``2026-Q4`` for a time the records and tags give (``2026-12-07T16:35:10Z``, or GTO's
    ISO time with an offset), counted in UTC; None for no time."""
    when = parsed_time(timestamp) if timestamp else None
    return None if when is None else f"{when.year}-Q{(when.month - 1) // 3 + 1}"


def _environments(rebuilds: list[dict]) -> dict[str, dict]:
    """``{fingerprint key: {fingerprint, match, other}}`` of the environments rebuilds ran in."""
    environments: dict[str, dict] = {}
    for record in rebuilds:
        entry = environments.setdefault(
            environment_key(record),
            {"fingerprint": record.get("environment", {}), "match": 0, "other": 0},
        )
        entry["match" if record["result"] == "match" else "other"] += 1
    return environments


def _consistent(environments: dict[str, dict]) -> list[str]:
    return [key for key, entry in environments.items() if entry["match"] and not entry["other"]]


def _timed(rebuilds: list[dict]) -> list[dict]:
    return [r for r in rebuilds if r["result"] in ("match", "equivalent", "mismatch")]


def _time_to_reproduce(rebuilds: list[dict]) -> dict:
    totals = [r["timings"]["total"] for r in _timed(rebuilds)]
    return {
        "n": len(totals),
        "mean_seconds": statistics.mean(totals) if totals else None,
        "p95_seconds": _p95(totals) if totals else None,
    }


def _incidents(incidents: list[dict]) -> dict:
    unreproducible = sum(r["cause"] == "unreproducible" for r in incidents)
    return {
        "total": len(incidents),
        "unreproducible": unreproducible,
        "share_unreproducible": unreproducible / len(incidents) if incidents else None,
    }


def _rollbacks(rollbacks: list[dict]) -> dict:
    return _rate(
        [{"result": "match" if r["result"] == "success" else "failure"} for r in rollbacks]
    )


def by_quarter(releases: list, verified: dict, counted: list[dict]) -> list[dict]:
    """The standard's five measures for each quarter that has a release or a claim: releases
    made then, and rebuilds, rollbacks and incidents recorded then (UTC)."""
    kinds: dict[str, dict[str, list]] = collections.defaultdict(
        lambda: {"releases": [], "rebuild": [], "rollback": [], "incident": []}
    )
    for release in releases:
        if (when := quarter(release.created)) is not None:
            kinds[when]["releases"].append(release)
    for record in counted:
        when = quarter(record.get("reported" if record["kind"] == "incident" else "finished"))
        if when is not None:
            kinds[when][record["kind"]].append(record)
    rows = []
    for when in sorted(kinds):
        found = kinds[when]
        made = found["releases"]
        environments = _environments(found["rebuild"])
        field = [r for r in found["rebuild"] if not r["varied_environment"]]
        rows.append(
            {
                "quarter": when,
                "releases": len(made),
                "with_full_provenance": sum(r.commit in verified for r in made),
                "field": _rate(field),
                "time_to_reproduce": _time_to_reproduce(found["rebuild"]),
                "incidents": _incidents(found["incident"]),
                "environments": {
                    "seen": len(environments),
                    "confirmed_consistent": len(_consistent(environments)),
                },
                "rollback": _rollbacks(found["rollback"]),
            }
        )
    return rows


def measures(repo: Path, now: datetime | None = None) -> dict:
    """Every measure, and each release's confidence as of ``now`` (default: this moment)."""
    now = now or datetime.now(UTC)
    registry.require_full_history(repo)
    releases, ignored = registry.registry_view(repo)
    provenance = {release.tag: registry.check_release(repo, release) for release in releases}
    # Only records about releases that verify (signature and provenance) count: a record about
    # a broken release, or about any other commit, says nothing about what was released.
    verified = {r.commit: r for r in releases if not provenance[r.tag]}
    records, skipped = all_notes(repo)
    counted = [
        r
        for r in records
        if r["revision"] in verified
        and (r.get("kind") == "rebuild" or r.get("release") == verified[r["revision"]].tag)
    ]
    rebuilds = [r for r in counted if r.get("kind") == "rebuild"]
    rollbacks = [r for r in counted if r.get("kind") == "rollback"]
    incidents = [r for r in counted if r.get("kind") == "incident"]
    field = [r for r in rebuilds if not r["varied_environment"]]
    lab = [r for r in rebuilds if r["varied_environment"]]
    timed = _timed(rebuilds)
    environments = _environments(rebuilds)
    consistent = _consistent(environments)
    verified_tags = {release.tag for release in verified.values()}

    per_release = []
    for release in releases:
        own = [r for r in rebuilds if r["revision"] == release.commit]
        times = [r["timings"]["total"] for r in _timed(own)]
        verified_release = release.tag in verified_tags
        decision = registry.recorded_decision(repo, release) if verified_release else None
        own_incidents = [r for r in incidents if r["revision"] == release.commit]
        per_release.append(
            {
                "release": release.tag,
                "commit": release.commit,
                "created": release.created,
                "stages": release.registry_stages,
                "provenance": "ok" if not provenance[release.tag] else "broken",
                "provenance_problems": provenance[release.tag],
                "rebuilds": len(own),
                "matches": sum(r["result"] == "match" for r in own),
                "mean_seconds": statistics.mean(times) if times else None,
                "incidents": len(own_incidents),
                "gate_overridden": bool((decision or {}).get("override")),
                "gate": criteria.summary(decision) if verified_release else None,
                # Only a release that verifies has evidence to score (None otherwise).
                "confidence": confidence.score(own, decision, own_incidents, now)
                if verified_release
                else None,
            }
        )

    return {
        "releases": len(releases),
        # A release verifies exactly when its provenance is full (signature included).
        "with_full_provenance": len(verified),
        "broken_releases": len(releases) - len(verified),
        "records_not_counted": len(records) - len(counted),
        "ignored_tags": ignored,
        "field": _rate(field),
        "field_sealed": _rate([r for r in field if r.get("sealed") is True]),
        # The portable level: predictions and metrics the same on another machine.
        "field_portable": _rate(field, accepted=("match", "equivalent")),
        "lab": _rate(lab),
        "time_to_reproduce": {
            **_time_to_reproduce(rebuilds),
            "mean_breakdown": {
                step: statistics.mean(r["timings"].get(step, 0.0) for r in timed) if timed else None
                for step in STEPS
            },
        },
        "rollback": _rollbacks(rollbacks),
        "gate_overrides": sum(entry["gate_overridden"] for entry in per_release),
        "incidents": {
            **_incidents(incidents),
            "list": [
                {
                    key: r[key]
                    for key in ("release", "cause", "note", "reported", "signed_by")
                    if key in r
                }
                for r in sorted(incidents, key=lambda r: r["reported"])
            ],
        },
        "environments": {
            "seen": len(environments),
            "confirmed_consistent": len(consistent),
            "fingerprints": [environments[key] for key in consistent],
        },
        "by_quarter": by_quarter(releases, verified, counted),
        "per_release": per_release,
        # Recency (a confidence part) is counted up to this moment.
        "confidence_as_of": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signers": dict(collections.Counter(r["signed_by"] for r in counted if "signed_by" in r)),
        "skipped_records": skipped,
        # Claims a later claim names, or this clone held, that are gone: the rates above
        # are then not the project's, and say so (never "no data").
        "claims_deleted": claims.problems(repo),
    }


def confidence_line(found: dict, data: dict) -> str:
    """``confidence 78/100 (...)``: the score and the words of its parts; none while claims
    are deleted (a deleted incident would raise it), which the lines after name."""
    if data["claims_deleted"]:
        return "confidence n/a: claims were deleted (named below), so the evidence is not whole"
    return f"confidence {found['score']}/100 ({found['says']})"


def _percent(part: int, whole: int, empty: str = "no data") -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else f"0/0 ({empty})"


def _rate_line(rate: dict, empty: str = "no data") -> str:
    counted = _percent(rate["successes"], rate["checked"], empty)
    return f"{counted}, {rate['unchecked']} unchecked"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def format_report(data: dict) -> str:
    time = data["time_to_reproduce"]
    deleted = data["claims_deleted"]
    lines = (
        [
            f"CLAIMS DELETED ({len(deleted)}): the figures below lack them and are NOT the "
            "project's; fix this first:"
        ]
        if deleted
        else []
    )
    lines += [f"  {line}" for line in deleted]
    # With claims deleted, an empty rate is not "no data": the data is what was deleted.
    empty = "claims deleted: see above" if deleted else "no data"
    lines += [
        f"Reproducibility report: {data['releases']} releases "
        f"({data['with_full_provenance']} verified, {data['broken_releases']} broken)",
        "  releases with full provenance:       "
        + _percent(data["with_full_provenance"], data["releases"]),
        f"  reproduction success, field:         {_rate_line(data['field'], empty)}"
        "  (released versions, as is; byte for byte)",
        f"    at the portable level:             {_rate_line(data['field_portable'], empty)}"
        "  (same predictions and metrics on another machine)",
        f"    sealed:                            {_rate_line(data['field_sealed'], empty)}"
        "  (in the sandbox: no network, no other files)",
        f"  reproduction success, lab:           {_rate_line(data['lab'], empty)}"
        "  (varied environments)",
        f"  time to reproduce:                   mean {_seconds(time['mean_seconds'])}, "
        f"p95 {_seconds(time['p95_seconds'])} over {time['n']} rebuilds",
        "    mean per step: "
        + ", ".join(f"{step} {_seconds(value)}" for step, value in time["mean_breakdown"].items()),
        f"  rollback success:                    {_rate_line(data['rollback'], empty)}",
        "  incidents, unreproducible state:     "
        + _percent(data["incidents"]["unreproducible"], data["incidents"]["total"], empty)
        + "  (of the signed incidents recorded: `make incident`)",
        "  environments with identical outputs: "
        + _percent(
            data["environments"]["confirmed_consistent"], data["environments"]["seen"], empty
        ),
    ]
    for entry in data["environments"]["fingerprints"]:
        fingerprint = entry["fingerprint"]
        lines.append(
            f"    {fingerprint.get('hash', '?')[:12]}  python {fingerprint.get('python')}, "
            f"{fingerprint.get('platform')}, {', '.join(fingerprint.get('blas', []))}"
            f"  ({entry['match']} matching rebuilds)"
        )
    lines.append("  per release:")
    for entry in data["per_release"]:
        stages = f" [{', '.join(entry['stages'])}]" if entry["stages"] else ""
        lines.append(
            f"    {entry['release']:<18} {entry['commit'][:10]}"
            f"  provenance {entry['provenance']:<6}"
            f" rebuilds {entry['matches']}/{entry['rebuilds']} match, "
            f"mean {_seconds(entry['mean_seconds'])}{stages}"
        )
        if entry["confidence"] is not None:
            lines.append(f"{'':<6}{confidence_line(entry['confidence'], data)}")
    lines.append(
        f"  release gate overridden:             {data['gate_overrides']} of "
        f"{data['with_full_provenance']} verified releases (OVERRIDE=, signed)"
    )
    lines += quarter_table(data["by_quarter"])
    for incident in data["incidents"]["list"]:
        lines.append(
            f"  incident {incident['reported'][:10]} {incident['release']} "
            f"{incident['cause']}: {incident['note'][:120]}"
        )
    if data["signers"]:
        lines.append(
            "  records signed by:                   "
            + ", ".join(f"{who} ({count})" for who, count in sorted(data["signers"].items()))
        )
    if data["records_not_counted"]:
        lines.append(
            f"  {data['records_not_counted']} valid records are about commits that are not "
            "verified releases (HEAD rebuilds, broken releases): not counted"
        )
    if data["ignored_tags"]:
        lines.append(f"  ignored {len(data['ignored_tags'])} tags (not releases or stages):")
        lines += [f"    {why}" for _, why in sorted(data["ignored_tags"].items())]
    if data["skipped_records"]:
        lines.append(f"  skipped {len(data['skipped_records'])} records (not counted):")
        lines += [f"    {line}" for line in data["skipped_records"]]
    return "\n".join(lines)


def quarter_table(rows: list[dict]) -> list[str]:
    """The five measures per quarter, one line each (the standard's quarterly reporting)."""
    if not rows:
        return ["  by quarter: no release or claim yet"]
    lines = [
        "  by quarter:  releases  provenance  field match  time mean/p95     "
        "incidents (unrepro)  consistent envs  rollback",
    ]
    for row in rows:
        time, incidents, environments = (
            row["time_to_reproduce"],
            row["incidents"],
            row["environments"],
        )
        consistent = _percent(environments["confirmed_consistent"], environments["seen"], "-")
        lines.append(
            f"    {row['quarter']:<9} {row['releases']:>8}  "
            f"{_percent(row['with_full_provenance'], row['releases'], '-'):<10}  "
            f"{_percent(row['field']['successes'], row['field']['checked'], '-'):<11}  "
            f"{_seconds(time['mean_seconds']):>7}/{_seconds(time['p95_seconds']):<8}  "
            f"{incidents['total']:>9} ({incidents['unreproducible']}){'':<7}"
            f"{consistent:<15}  "
            f"{_percent(row['rollback']['successes'], row['rollback']['checked'], '-')}"
        )
    return lines


def quarter_plot(data: dict, path: Path) -> Path:
    """The five measures per quarter as one Vega-Lite chart (drawn offline by vl-convert, as
    the DVC plots are), a panel per measure; shares in percent, times in seconds."""
    import vl_convert

    def share(part: int, whole: int) -> float | None:
        return round(100 * part / whole, 1) if whole else None

    values = []
    for row in data["by_quarter"]:
        measured = {
            "releases with full provenance (%)": share(
                row["with_full_provenance"], row["releases"]
            ),
            "mean time to reproduce (s)": row["time_to_reproduce"]["mean_seconds"],
            "p95 time to reproduce (s)": row["time_to_reproduce"]["p95_seconds"],
            "incidents, unreproducible state": row["incidents"]["unreproducible"],
            "environments with identical outputs (%)": share(
                row["environments"]["confirmed_consistent"], row["environments"]["seen"]
            ),
            "rollback success (%)": share(row["rollback"]["successes"], row["rollback"]["checked"]),
        }
        values += [
            {"quarter": row["quarter"], "measure": name, "value": value}
            for name, value in measured.items()
            if value is not None
        ]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Reproducibility measures by quarter",
        "data": {"values": values},
        "facet": {
            "row": {
                "field": "measure",
                "type": "nominal",
                "title": None,
                "header": {"labelAngle": 0, "labelAlign": "left", "labelOrient": "top"},
            }
        },
        "resolve": {"scale": {"y": "independent"}},
        "spec": {
            "width": 420,
            "height": 90,
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": {
                    "field": "quarter",
                    "type": "ordinal",
                    "title": "quarter",
                    "axis": {"labelAngle": 0},
                },
                "y": {"field": "value", "type": "quantitative", "title": None},
                # Okabe-Ito blue: readable by the colour-blind, in light and dark themes.
                "color": {"value": "#0072B2"},
            },
        },
    }
    svg = vl_convert.vegalite_to_svg(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, svg)


def plot(data: dict, path: Path) -> Path:
    """An SVG bar chart of the mean time to reproduce each release, from the records."""
    rows = [entry for entry in data["per_release"] if entry["mean_seconds"] is not None]
    width, bar, gap, left = 640, 28, 12, 150
    height = 60 + len(rows) * (bar + gap)
    longest = max((entry["mean_seconds"] for entry in rows), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        '<text x="10" y="24" font-size="16">Mean time to reproduce, per release</text>',
    ]
    for index, entry in enumerate(rows):
        y = 44 + index * (bar + gap)
        length = (width - left - 80) * entry["mean_seconds"] / longest
        parts += [
            f'<text x="10" y="{y + bar * 0.7:.0f}">{entry["release"]}</text>',
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="#4c78a8"/>',
            f'<text x="{left + length + 6:.1f}" y="{y + bar * 0.7:.0f}">'
            f"{entry['mean_seconds']:.1f} s</text>",
        ]
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def run_report(args: argparse.Namespace) -> int:
    """`make report`: text or JSON, and its plots; 1 while a claim is deleted."""
    data = measures(registry.repo_root())
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else format_report(data))
    if args.plot:
        print(f"plot: {plot(data, Path(args.plot))}")
    if args.quarters_plot:
        print(f"plot: {quarter_plot(data, Path(args.quarters_plot))}")
    return 1 if data["claims_deleted"] else 0
