"""Release confidence: one score per release, from 0 to 100, built only from that release's
own signed evidence (the standard's level 5: reproducibility metrics inform release
confidence).

The inputs are what `make report` counts for a release whose signature and provenance
verify: the rebuild notes signed by an allowed key, the release decision in the signed
statement, and the signed incidents. An unsigned, forged or misattached claim never reaches
here (notes.all_notes and report.measures leave it out), and a release that does not verify
gets no score at all.

    reproduced  40 x (matches + equivalents / 2) / rebuilds checked (field and lab; a
                timed-out rebuild checked nothing)
    coverage    10 x min(environments with a successful rebuild, 3) / 3
                + 5 if both a field and a lab rebuild succeeded
    recency     15 if the newest successful rebuild is at most 30 days old, falling in a
                straight line to 0 at 180 days
    gate        0 with no recorded decision or an override; else 15 for passing, and 15 more
                when every rule passed with a margin (the primary score's whole interval of
                B - A no worse, every other rule strictly beyond its limit), 7.5 when a rule
                passed only on its limit or the interval reaches below 0, and nothing more
                when no rule was checked (no release in prod and no threshold)
    incidents   the sum is multiplied by 0.5 for each incident attributed to unreproducible
                model state and by 0.8 for each other one

The score is the rounded result; each part is given beside it, so a reader sees why.
"""

from datetime import datetime

from .criteria import NOT_CLEARLY_WORSE, better
from .notes import environment_key, parsed_time

WEIGHTS = {"reproduced": 40.0, "coverage": 15.0, "recency": 15.0, "gate": 30.0}
FULL_ENVIRONMENTS = 3
FRESH_DAYS = 30
STALE_DAYS = 180
INCIDENT_FACTOR = {"unreproducible": 0.5, "other": 0.8}
SUCCESS_WEIGHT = {"match": 1.0, "equivalent": 0.5}
CHECKED = ("match", "equivalent", "mismatch", "error")


def _reproduced(rebuilds: list[dict]) -> tuple[float, str]:
    checked = [r for r in rebuilds if r["result"] in CHECKED]
    if not checked:
        return 0.0, "no rebuild checked"
    share = sum(SUCCESS_WEIGHT.get(r["result"], 0.0) for r in checked) / len(checked)
    matches = sum(r["result"] == "match" for r in checked)
    return WEIGHTS["reproduced"] * share, f"{matches}/{len(checked)} rebuilds MATCH"


def _coverage(successes: list[dict]) -> tuple[float, str]:
    environments = {environment_key(r) for r in successes}
    kinds = {bool(r.get("varied_environment")) for r in successes}
    points = 10.0 * min(len(environments), FULL_ENVIRONMENTS) / FULL_ENVIRONMENTS
    points += 5.0 if kinds == {True, False} else 0.0
    which = "field and lab" if kinds == {True, False} else "lab" if True in kinds else "field"
    said = f"{len(environments)} environment{'s' * (len(environments) != 1)}"
    return points, f"{said}, {which}" if successes else "no environment"


def _recency(successes: list[dict], now: datetime) -> tuple[float, str]:
    times = [when for r in successes if (when := parsed_time(r.get("finished"))) is not None]
    if not times:
        return 0.0, "never rebuilt"
    days = max(0.0, (now - max(times)).total_seconds() / 86400)
    fading = (STALE_DAYS - days) / (STALE_DAYS - FRESH_DAYS)
    share = 1.0 if days <= FRESH_DAYS else max(0.0, fading)
    return WEIGHTS["recency"] * share, f"last rebuilt {days:.0f} days ago"


def _margin(rule: dict, metrics: dict) -> bool:
    """Whether a passed rule passed with room: beyond its limit, or (the primary score's
    rule) with its whole interval of B - A no worse."""
    value, limit = rule.get("value"), rule.get("limit")
    if rule.get("rule") == NOT_CLEARLY_WORSE:
        score = rule.get("score")
        entry = metrics.get(score) if isinstance(score, str) else None
        try:
            low, high = entry["interval"]
            return min(better(entry, low), better(entry, high)) >= 0
        except (KeyError, TypeError, ValueError):
            return False
    if not isinstance(value, int | float) or not isinstance(limit, int | float):
        return rule.get("rule") == "min_relative_change"  # a gain from 0: unbounded
    if rule.get("rule") == "threshold":
        return value != limit
    if rule.get("rule") == "max_drop":
        return value > -limit
    return value > limit


def _gate(decision: object) -> tuple[float, str]:
    if not isinstance(decision, dict):
        return 0.0, "no gate recorded"
    if decision.get("override"):
        return 0.0, "gate overridden"
    if not decision.get("passed"):
        return 0.0, "gate failed"
    checked = [r for r in decision.get("rules") or [] if isinstance(r, dict) and r.get("passed")]
    baseline = decision.get("baseline")
    against = (baseline.get("release") if isinstance(baseline, dict) else None) or "thresholds only"
    if not checked:  # no release in prod and no threshold: nothing was measured
        return WEIGHTS["gate"] * 0.5, "gate passed, no rule to check"
    metrics = decision.get("metrics") if isinstance(decision.get("metrics"), dict) else {}
    if all(_margin(rule, metrics) for rule in checked):
        return WEIGHTS["gate"], f"gate passed with margin vs {against}"
    return WEIGHTS["gate"] * 0.75, f"gate passed on its limit vs {against}"


def score(rebuilds: list[dict], decision: object, incidents: list[dict], now: datetime) -> dict:
    """The confidence of one verified release: ``score`` (0-100), each part's points and a
    line of words. ``rebuilds`` and ``incidents`` are its counted (signed) notes, ``decision``
    the release decision its signed statement holds."""
    successes = [r for r in rebuilds if r["result"] in SUCCESS_WEIGHT]
    parts = {
        "reproduced": _reproduced(rebuilds),
        "coverage": _coverage(successes),
        "recency": _recency(successes, now),
        "gate": _gate(decision),
    }
    factor = 1.0
    for incident in incidents:
        cause = "unreproducible" if incident.get("cause") == "unreproducible" else "other"
        factor *= INCIDENT_FACTOR[cause]
    total = sum(points for points, _ in parts.values()) * factor
    words = [said for _, said in parts.values()]
    if incidents:
        unreproducible = sum(i.get("cause") == "unreproducible" for i in incidents)
        words.append(f"{len(incidents)} incidents ({unreproducible} unreproducible)")
    return {
        "score": round(total),
        "parts": {name: round(points, 2) for name, (points, _) in parts.items()},
        "incident_factor": factor,
        "says": "; ".join(words),
    }
