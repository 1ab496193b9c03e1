"""Release criteria: `make release` compares the candidate (the workspace) with the release in
prod on the candidate's test rows (`make compare`), and refuses it when a declared criterion
fails, naming the score, both values and the rule.

``conf/release/default.yaml`` declares per score, with MLflow's MetricThreshold semantics and
the score's own direction (``lower_is_better`` of the team contract):

- ``threshold``: the candidate's value is at least this (at most, for an error);
- ``min_absolute_change``: B - A is at least this, in the better direction;
- ``min_relative_change``: (B - A) / |A| is at least this, in the better direction;
- ``max_drop``: the paired bootstrap interval of B - A holds no drop larger than this.

Whatever is declared, the team's primary score (``primary_score``) may not be worse than
prod's beyond its interval (the whole interval on the worse side): a team that sets no
criteria keeps that protection. With no release in prod, only thresholds apply, and the
decision says so. A failed decision passes only with an explicit reason (OVERRIDE=), which
is signed into the release's statement with the rest of the decision.
"""

import math
from pathlib import Path
from typing import Any

import yaml

from ..runtime.errors import ConfigError
from .errors import RegistryError

CRITERIA_FILE = Path("conf/release/default.yaml")
RULES = ("threshold", "min_absolute_change", "min_relative_change", "max_drop")
NOT_CLEARLY_WORSE = "not_worse_beyond_interval"
FIX = f"Fix: see the comments of {CRITERIA_FILE} (a score, then one of {', '.join(RULES)})."


def load(path: Path = CRITERIA_FILE) -> dict[str, dict[str, float]]:
    """``{score: {rule: number}}`` from the criteria file (none: no file, or no criteria)."""
    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML ({error}). {FIX}") from None
    if not isinstance(document, dict) or set(document) - {"criteria"}:
        extra = sorted(map(str, set(document) - {"criteria"})) if isinstance(document, dict) else []
        what = f"the key {extra[0]!r} is not one" if extra else "expected a mapping"
        raise ConfigError(f"{path}: {what} (it holds criteria: only). {FIX}")
    found = document.get("criteria")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: criteria: expected a mapping of scores to rules. {FIX}")
    criteria: dict[str, dict[str, float]] = {}
    for score, rules in found.items():
        if not isinstance(rules, dict) or not rules:
            raise ConfigError(f"{path}: criteria.{score}: expected rules, got {rules!r}. {FIX}")
        for rule, limit in rules.items():
            if rule not in RULES:
                raise ConfigError(f"{path}: criteria.{score}.{rule}: not a rule. {FIX}")
            number = isinstance(limit, int | float) and not isinstance(limit, bool)
            if not number or not math.isfinite(limit) or (rule == "max_drop" and limit < 0):
                raise ConfigError(
                    f"{path}: criteria.{score}.{rule}: {limit!r} is not a "
                    f"{'number of 0 or more' if rule == 'max_drop' else 'finite number'}. {FIX}"
                )
        criteria[str(score)] = {str(rule): float(limit) for rule, limit in rules.items()}
    return criteria


def better(entry: dict, value: float) -> float:
    """``value`` (a change) in the better direction: positive is better."""
    return value if entry["greater_is_better"] else -value


def _check(score: str, rule: str, limit: float, entry: dict, baseline: bool) -> dict:
    """One rule's result: the values it read, the limit, passed or not, in words."""
    result = {"score": score, "rule": rule, "limit": limit}
    if rule != "threshold" and not baseline:
        return {**result, "passed": None, "says": "not checked: no release in prod to compare"}
    candidate = entry["b"]
    if rule == "threshold":
        passed = candidate >= limit if entry["greater_is_better"] else candidate <= limit
        side = "at least" if entry["greater_is_better"] else "at most"
        says = f"{score} is {candidate:.4f}; the threshold asks {side} {limit:g}"
        return {**result, "value": candidate, "passed": passed, "says": says}
    before, change = entry["a"], entry["difference"]
    if rule == "min_absolute_change":
        value = better(entry, change)
        says = f"{score} went from {before:.4f} to {candidate:.4f} (a gain of {value:+.4f})"
    elif rule == "min_relative_change":
        gain = better(entry, change)
        if not before:  # relative to 0: any gain is unbounded, any loss too
            says = f"{score} went from 0 to {candidate:.4f} (a relative change from 0)"
            passed = gain > 0 or (gain == 0 and limit <= 0)
            return {**result, "value": None, "passed": passed, "says": f"{says}; {rule} {limit:g}"}
        value = gain / abs(before)
        says = f"{score} went from {before:.4f} to {candidate:.4f} (a gain of {value:+.2%})"
    elif rule == "max_drop":
        low, high = entry["interval"]
        value = min(better(entry, low), better(entry, high))
        says = f"{score}'s interval of B - A is [{low:+.4f}, {high:+.4f}] (worst gain {value:+.4f})"
        passed = value >= -limit
        return {**result, "value": value, "passed": passed, "says": f"{says}; max_drop {limit:g}"}
    else:  # NOT_CLEARLY_WORSE
        low, high = entry["interval"]
        value = max(better(entry, low), better(entry, high))
        says = (
            f"{score} went from {before:.4f} to {candidate:.4f}, interval of B - A "
            f"[{low:+.4f}, {high:+.4f}]"
        )
        return {**result, "value": value, "passed": value >= 0, "says": says}
    return {**result, "value": value, "passed": value >= limit, "says": f"{says}; {rule} {limit:g}"}


def decide(
    metrics: dict[str, dict],
    criteria: dict[str, dict[str, float]],
    primary: str,
    baseline: dict | None,
    rows: int,
    override: str | None = None,
) -> dict:
    """The release decision: every rule's result, the values and intervals read, the
    baseline (None: no release in prod) and the override's reason if one was given."""
    unknown = sorted(set(criteria) - set(metrics))
    if unknown:
        raise ConfigError(
            f"{CRITERIA_FILE}: criteria.{unknown[0]}: evaluate gives no such score (it gives "
            f"{', '.join(sorted(metrics))}). {FIX}"
        )
    results = [
        _check(score, rule, limit, metrics[score], baseline is not None)
        for score, rules in sorted(criteria.items())
        for rule, limit in rules.items()
    ]
    if primary not in metrics:
        raise ConfigError(
            f"evaluation.py: PRIMARY_SCORE names {primary!r} for this task, which evaluate "
            f"does not give (it gives {', '.join(sorted(metrics))}). Fix: name one of those."
        )
    if baseline is not None:
        results.append(_check(primary, NOT_CLEARLY_WORSE, 0.0, metrics[primary], True))
    failed = [result for result in results if result["passed"] is False]
    return {
        "baseline": baseline,
        "rows": rows,
        "criteria": criteria,
        "metrics": metrics,
        "rules": results,
        "passed": not failed,
        "override": override.strip() if override and failed else None,
    }


def unscorable(baseline: dict, why: str, override: str | None = None) -> dict:
    """The decision when the release in prod cannot score this commit's test rows (another
    schema): a failed rule, which only an override passes."""
    rule = {
        "score": None,
        "rule": "baseline_scores_these_rows",
        "limit": None,
        "passed": False,
        "says": f"{baseline['release']} cannot score this commit's test rows ({why})",
    }
    return {
        "baseline": baseline,
        "rows": 0,
        "criteria": {},
        "metrics": {},
        "rules": [rule],
        "passed": False,
        "override": override.strip() if override else None,
    }


def refusal(decision: dict) -> str | None:
    """Why the decision refuses the release (None: it passes, or was overridden)."""
    failed = [result for result in decision["rules"] if result["passed"] is False]
    if not failed or decision["override"]:
        return None
    against = (decision["baseline"] or {}).get("release", "no baseline")
    lines = [f"  {result['says']}: REFUSED by {result['rule']}" for result in failed]
    return (
        f"the release criteria refused it (against {against}, on {decision['rows']} test "
        "rows):\n" + "\n".join(lines) + f"\nFix: a better model; or change {CRITERIA_FILE}; "
        'or, knowingly, OVERRIDE="<why>" (signed into the release, counted by the report).'
    )


def summary(decision: Any) -> str:
    """One line for `make registry`: the gate's verdict on a release."""
    if not isinstance(decision, dict):
        return "gate: none recorded"
    against = (decision.get("baseline") or {}).get("release") or "thresholds only"
    if decision.get("override"):
        return f"gate: OVERRIDDEN vs {against} ({str(decision['override'])[:60]})"
    checked = [r for r in decision.get("rules") or [] if isinstance(r, dict) and r.get("passed")]
    return f"gate: passed vs {against} ({len(checked)} rules)"


def check_form(decision: Any) -> list[str]:
    """What is wrong with a statement's release decision (it is signed with the tag, so only
    its form and its own consistency are checked): a decision that refused with no override
    is no release."""
    if decision is None:
        return []
    if not isinstance(decision, dict) or not isinstance(decision.get("rules"), list):
        return ["the statement's release_decision is not a decision"]
    failed = [r for r in decision["rules"] if isinstance(r, dict) and r.get("passed") is False]
    override = decision.get("override")
    if failed and not (isinstance(override, str) and override.strip()):
        return ["the statement's release_decision refused the release and names no override"]
    if bool(decision.get("passed")) == bool(failed):
        return ["the statement's release_decision contradicts its own rules"]
    return []


def require_reason(override: str | None) -> str | None:
    """An override's reason, refused when empty: a failed gate passes only knowingly."""
    if override is None:
        return None
    if not override.strip():
        raise RegistryError('OVERRIDE= is empty. Fix: OVERRIDE="<why this release goes out>".')
    return override
