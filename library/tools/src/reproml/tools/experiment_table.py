"""``make experiments``: this commit's experiments compared in one table: the scores, verify's
result, the parameters that vary, and why a failed run failed."""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.proc import run
from .commands import dvc_command
from .experiment_runs import PARAMS_FILE, SweepError, failure_reason, tool_environment
from .registry import repo_root, verify_reports


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


# DVC's states of a run whose files are its own results (`dvc exp show`: success, queued,
# running, failed), and ours for the commit the experiments branch from.
SCORED_STATES = ("success", "baseline")
# What `make experiments ALL=1` leaves out of `dvc exp show` unless [tool.reproml]
# experiments_drop says otherwise: every path and each dependency's hash.
COLUMNS_DROPPED = r"^(paths\.|.*\.(py|lock|csv|parquet|ok)$|\.python-version$|conf$)"


@dataclass
class Row:
    name: str
    state: str
    revision: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    verify: str = ""
    # Why a failed run failed, when its log is not here to read (a CI point's job).
    reason: str = ""

    @property
    def scored(self) -> bool:
        """Whether the run has scores of its own: a queued, running or failed one has only
        its baseline's files, so showing them would credit it with the baseline's scores."""
        return self.state in SCORED_STATES


def collect(root: Path) -> list[Row]:
    """The baseline and its experiments, from ``dvc exp show --json`` (queued, running and
    failed ones included)."""
    shown = run(dvc_command("exp", "show", "--json"), cwd=root, env=tool_environment(root))
    if shown.returncode != 0:
        raise SweepError(f"`dvc exp show` failed:\n{shown.stderr.strip()}")
    rows = []
    for baseline in json.loads(shown.stdout or "[]"):
        if baseline.get("rev") == "workspace":
            continue
        rows.append(_row(baseline, baseline.get("name") or baseline["rev"][:7], "baseline"))
        for experiment in baseline.get("experiments") or []:
            revision = (experiment.get("revs") or [{}])[0]
            state = (experiment.get("executor") or {}).get("state") or "success"
            name = experiment.get("name") or revision.get("name") or revision.get("rev", "")[:7]
            rows.append(_row(revision, name, state))
    return rows


def _row(revision: dict, name: str, state: str) -> Row:
    """A run's parameters and scores. A run that has not succeeded keeps no scores: DVC shows
    its queued commit, whose metrics files are its baseline's."""
    data = revision.get("data") or {}
    params = (data.get("params") or {}).get(PARAMS_FILE, {}).get("data") or {}
    metrics: dict[str, Any] = {}
    for found in (data.get("metrics") or {}).values():
        metrics.update(flatten(found.get("data") or {}))
    row = Row(name, state, revision.get("rev", ""), flatten(params), metrics)
    if not row.scored:
        row.metrics = {}
    return row


def verify_result(row: Row, root: Path) -> str:
    """What verify said about a run (its report at the run's commit), or that it failed."""
    if row.state == "failed":
        return "FAILED"
    if row.state in ("queued", "running"):
        return row.state
    reports = list(verify_reports(root, row.revision).values()) if row.revision else []
    if not reports:
        return "no report"
    checks = [c for report in reports for c in report["checks"] if isinstance(c, dict)]
    if all(report["result"] == "match" for report in reports):
        return f"match ({len(checks)} outputs)"
    # "artifact" named the compared output in reports written before reproml-runtime 0.4.
    differ = [str(c.get("output", c.get("artifact"))) for c in checks if c.get("result") != "match"]
    return "MISMATCH: " + ", ".join(differ)


def compare(root: Path, only: list[str] | None = None, failed: list[Row] | None = None) -> str:
    """A table of the runs: name, verify's result, every parameter that varies among them
    (paths excluded) and every scalar score (none for a run that did not succeed), then why
    each failed run failed. ``failed``: runs DVC does not know here (a CI point that pushed
    nothing), with their reason."""
    rows = collect(root)
    if only is not None:
        rows = [row for row in rows if row.state == "baseline" or row.name in only]
    rows += failed or []
    runs = [row for row in rows if row.state != "baseline"]
    if not runs:
        return "no experiments of this commit yet: `make sweep ARGS=...` runs some."
    for row in rows:
        row.verify = verify_result(row, root)
    keys = sorted({key for row in rows for key in row.params if not key.startswith("paths.")})
    varying = [key for key in keys if len({repr(row.params.get(key)) for row in rows}) > 1]
    scores = sorted(
        {
            key
            for row in rows
            for key, value in row.metrics.items()
            if isinstance(value, int | float) and not key.startswith("per_class.")
        }
    )
    header = ["experiment", "verified", *varying, *scores]
    table = [header] + [
        [
            row.name,
            row.verify,
            *(_cell(row.params.get(key)) for key in varying),
            *(_cell(row.metrics.get(key)) if row.scored else "" for key in scores),
        ]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    for row in rows:  # why each failed run failed, from its log, under the table
        if row.state == "failed":
            lines.append(f"{row.name} FAILED: {row.reason or failure_reason(row.name, root)}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_experiments(args: argparse.Namespace) -> int:
    """`make experiments`: this commit's experiments compared (ALL=1: ``dvc exp show``)."""
    from .commands import run_tool
    from .settings import settings

    if args.all:
        dropped = settings().get("experiments_drop", COLUMNS_DROPPED)
        return run_tool(["dvc", "exp", "show", "--drop", str(dropped)])
    print(compare(repo_root()))
    return 0
