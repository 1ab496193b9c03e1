"""`make compare A=<version> B=<version>`: two versions scored on the same rows.

A and B are releases, ``prod``, the ``workspace``, or any other revision (a commit, tag,
branch or DVC experiment): such a revision's code runs only when TRUST= names it too, as
for `make rebuild`, and then sealed in its own environment like a release's.

``dvc metrics diff`` compares numbers measured on different test rows whenever the data
changed, so it cannot say whether a change is real. Here both models predict B's test table:
A's release runs its own predict in its own locked environment, sealed, as ``make predict
VERSION=`` does (a pickle needs its code and library versions, so A's model never loads here),
and B is the workspace's model (or B's release, run the same way). For each metric: A, B and
B - A, with a paired bootstrap interval (the same resampled rows for both, seeded: the same
command gives the same bytes). Then the share of rows whose prediction changed, and what
differs between A and B: parameters, data versions, locked packages and files.
"""

import argparse
import csv
import io
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.dvcfiles import tracked_outputs
from ..runtime.environment import RUNTIME_LOCK, locked_versions
from ..runtime.errors import DataError
from ..runtime.io import atomic_write_text, canonical_json
from .errors import RebuildError, RegistryError
from .experiment_table import flatten
from .git import git, git_show, parse_yaml, show_yaml, tracked_at
from .rebuild import refuse_unverified, resolve
from .registry import Release, registry_view, repo_root, verified_release
from .serving import fetch_output_at, predict_with_release, predict_with_revision
from .settings import team

WORKSPACE = "workspace"
PROD = "prod"
RESAMPLES = 1000
# The interval's coverage: the 2.5th and 97.5th percentiles of the resampled differences.
INTERVAL = (2.5, 97.5)
PARAMS_FILE = "params.yaml"
OUT_DIR = Path("build/compare")


@dataclass
class Side:
    """One version compared: its name, its commit (None: the workspace), and whether it is a
    verified release (else a commit, tag, branch or experiment the user named twice)."""

    name: str
    commit: str | None
    release: bool = False


def prod_release(repo: Path, required: bool = True) -> Release | None:
    """The newest release GTO has in the prod registry stage; with none, an error naming the
    fix, or None when not ``required``."""
    in_prod = [release for release in registry_view(repo)[0] if PROD in release.registry_stages]
    if not in_prod and not required:
        return None
    if not in_prod:
        raise RegistryError(
            "no release is in prod, so A has no default. Fix: name it, A=v1.0.0, or promote "
            "one: `make promote VERSION=v1.0.0 STAGE=prod`."
        )
    return in_prod[-1]


def side(repo: Path, name: str | None, default: str, trust: str = "", retry: str = "") -> Side:
    """A version named as every command names one (v1.0.0 or model@v1.0.0), ``prod`` for the
    release in prod, ``workspace``, or any other revision: a commit, tag, branch or DVC
    experiment, whose code runs only when ``trust`` names it too (as `make rebuild`'s
    TRUST=; ``retry`` is the command that would)."""
    name = name or default
    if name == WORKSPACE:
        return Side(WORKSPACE, None)
    release = prod_release(repo) if name == PROD else verified_release(repo, name)
    if release is not None:
        return Side(release.tag, release.commit, release=True)
    try:
        target = resolve(repo, name)
        refuse_unverified(name, target, name if name in trust.split() else None, retry)
    except RebuildError as error:
        raise RegistryError(str(error)) from None
    return Side(name, target.commit)


def _test_rows(repo: Path, b: Side, params: dict, scratch: Path) -> Path:
    """B's test table: the workspace's file, or the one B's dvc.lock records, from the
    project's DVC cache or remote (its own configuration, never B's), md5-checked."""
    path = (params.get("paths") or {}).get("test") if isinstance(params, dict) else None
    if not isinstance(path, str):
        raise DataError(f"{PARAMS_FILE} of {b.name} has no paths.test: nothing to score on.")
    if b.commit is None:
        rows = repo / path
        if not rows.is_file():
            raise DataError(f"{path}: missing. Fix: `make repro` (or `dvc pull`) first.")
        return rows
    return fetch_output_at(repo, b.name, b.commit, path, scratch / "test-rows.parquet")


def _predictions(repo: Path, which: Side, rows: Path, out: Path) -> list[str]:
    """The ``prediction`` column ``which``'s own predict writes for ``rows`` (to ``out``)."""
    if which.commit is None:
        contract = team()
        contract.predict(contract.load_params(repo / PARAMS_FILE), rows, out)
    else:
        try:
            if which.release:
                predict_with_release(which.name, rows, out)
            else:  # side() resolved it, and the user named it twice
                predict_with_revision(which.name, which.commit, rows, out)
        except DataError as error:
            raise DataError(
                f"{which.name} cannot score these rows: {error} Fix: compare versions whose "
                "schemas share the columns the older model uses (`make compare` scores both "
                "on B's test table)."
            ) from None
    return [row["prediction"] for row in csv.DictReader(io.StringIO(out.read_text()))]


def _truth(rows: Path, params: dict) -> list:
    """B's labels, as its test table holds them."""
    import pyarrow.parquet as pq

    target = (params.get("data") or {}).get("target")
    table = pq.read_table(rows)
    if target not in table.column_names:
        raise DataError(f"{rows}: has no target column {target!r} (data.target of B).")
    return table[target].to_pylist()


def as_arrays(task: str, *columns: list) -> list:
    """Labels as text (as predict writes them), or values as floats, for the scorer."""
    import numpy as np

    if task == "classification":
        return [np.array([str(value) for value in column]) for column in columns]
    return [np.array(column, dtype=float) for column in columns]


def metrics_of(found: dict[str, Any]) -> dict[str, float]:
    """The metrics of a score mapping: its float values (counts and nested tables are not)."""
    return {name: value for name, value in found.items() if isinstance(value, float)}


def scores(
    score: Callable[[str, Any, Any], dict[str, Any]],
    lower_is_better: tuple[str, ...],
    task: str,
    actual: list,
    a: list,
    b: list,
    seed: int,
    resamples: int = RESAMPLES,
) -> dict[str, dict]:
    """Each metric ``score`` gives (the team's evaluate's own) of A and B on the same rows,
    B - A, and the paired bootstrap interval of B - A: ``resamples`` draws of the rows with
    replacement, the same draw for both."""
    import numpy as np

    if resamples < 1 or not actual:
        raise DataError(
            f"nothing to resample ({len(actual)} test rows, {resamples} draws). Fix: "
            "--resamples of 1 or more, on a test table with rows (`make repro`)."
        )
    y, pa, pb = as_arrays(task, actual, a, b)
    whole_a, whole_b = metrics_of(score(task, y, pa)), metrics_of(score(task, y, pb))
    draws = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    drawn = [
        (metrics_of(score(task, y[i], pa[i])), metrics_of(score(task, y[i], pb[i]))) for i in draws
    ]
    found = {}
    for name in sorted(set(whole_a) & set(whole_b)):
        differences = np.array([new[name] - old[name] for old, new in drawn])
        low, high = np.percentile(differences, INTERVAL)
        found[name] = {
            "a": whole_a[name],
            "b": whole_b[name],
            "difference": whole_b[name] - whole_a[name],
            "interval": [float(low), float(high)],
            "greater_is_better": name not in lower_is_better,
        }
    return found


def changed(task: str, a: list, b: list) -> dict:
    """How the predictions moved: the share of rows that changed label, or for regression
    the distribution of B - A."""
    import numpy as np

    if task == "classification":
        moved = sum(str(x) != str(y) for x, y in zip(a, b, strict=True))
        return {"rows": len(a), "changed": moved, "share": moved / len(a) if a else None}
    delta = np.array(b, dtype=float) - np.array(a, dtype=float)
    names = ("min", "p5", "median", "p95", "max")
    quantiles = np.percentile(delta, [0, 5, 50, 95, 100]).tolist() if len(delta) else [None] * 5
    return {
        "rows": len(a),
        "mean_absolute_change": float(np.abs(delta).mean()) if len(delta) else None,
        "quantiles": dict(zip(names, quantiles, strict=True)),
    }


def _file(repo: Path, which: Side, path: str) -> str | None:
    if which.commit is None:
        file = repo / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    return git_show(repo, which.commit, path)


def _data_versions(repo: Path, which: Side) -> dict[str, str]:
    if which.commit is not None:
        return {path: md5 for _, path, md5 in tracked_at(repo, which.commit)}
    listed = git(repo, "ls-files", "-z", "--", "*.dvc").stdout.split("\0")
    found = {}
    for name in filter(None, listed):
        text = (repo / name).read_text(encoding="utf-8") if (repo / name).is_file() else ""
        found.update({path: md5 for path, md5, _ in tracked_outputs(text, name)})
    return found


def _packages(repo: Path, which: Side) -> dict[str, str]:
    text = _file(repo, which, RUNTIME_LOCK) or ""
    with tempfile.TemporaryDirectory() as scratch:
        lock = Path(scratch) / RUNTIME_LOCK
        lock.write_text(text, encoding="utf-8")
        return locked_versions(lock)


def _changes(old: dict, new: dict) -> list[dict]:
    return [
        {"name": key, "a": old.get(key), "b": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def differences(repo: Path, a: Side, b: Side, params_a: dict, params_b: dict) -> dict:
    """What differs between A and B: parameters, data versions, locked packages, files."""
    if b.commit is None:
        files = git(repo, "diff", "--name-only", a.commit, "--").stdout.split()
        files += git(repo, "ls-files", "--others", "--exclude-standard").stdout.split()
    else:
        files = git(repo, "diff", "--name-only", a.commit, b.commit, "--").stdout.split()
    return {
        "parameters": _changes(flatten(params_a), flatten(params_b)),
        "data": _changes(_data_versions(repo, a), _data_versions(repo, b)),
        "packages": _changes(_packages(repo, a), _packages(repo, b)),
        "files": sorted(set(files)),
    }


def _scored_rows(repo: Path, b: Side, params_b: dict, sides: list[Side]) -> tuple[list, list]:
    """B's test labels, and each side's predictions for B's test rows."""
    with tempfile.TemporaryDirectory(prefix="compare-") as folder:
        scratch = Path(folder)
        rows = _test_rows(repo, b, params_b, scratch)
        return _truth(rows, params_b), [
            _predictions(repo, which, rows, scratch / f"{number}.csv")
            for number, which in enumerate(sides)
        ]


def compare(
    a_name: str | None, b_name: str | None, resamples: int = RESAMPLES, trust: str = ""
) -> dict:
    """The comparison report of A (default: the release in prod) and B (the workspace).
    ``trust`` names (space-separated) the revisions that are no release whose code may run."""
    repo = repo_root()
    retry = "make compare " + " ".join(f"{k}={v}" for k, v in (("A", a_name), ("B", b_name)) if v)
    a = side(repo, a_name, PROD, trust, retry)
    b = side(repo, b_name, WORKSPACE, trust, retry)
    if a.commit is None:
        raise RegistryError("A=workspace: A is a release. Fix: A=v1.0.0, and B the other.")
    params_a = show_yaml(repo, a.commit, PARAMS_FILE)
    params_b = parse_yaml(_file(repo, b, PARAMS_FILE) or "", f"{PARAMS_FILE} of {b.name}")
    task = (params_b.get("data") or {}).get("task")
    task_a = (params_a.get("data") or {}).get("task")
    if task != task_a:
        raise DataError(
            f"{a.name} is a {task_a} model and {b.name} a {task} one: their scores do not "
            "compare. Fix: compare versions of the same task."
        )
    actual, (predicted_a, predicted_b) = _scored_rows(repo, b, params_b, [a, b])
    if not (len(actual) == len(predicted_a) == len(predicted_b)):
        raise DataError(
            f"the predictions do not cover B's {len(actual)} test rows ({a.name}: "
            f"{len(predicted_a)}, {b.name}: {len(predicted_b)})."
        )
    seed = int(params_b.get("seed", 0))
    contract = team()
    metrics = scores(
        contract.score,
        contract.lower_is_better,
        task,
        actual,
        predicted_a,
        predicted_b,
        seed,
        resamples,
    )
    return {
        "a": {"name": a.name, "commit": a.commit},
        "b": {"name": b.name, "commit": b.commit},
        "rows": {"table": (params_b.get("paths") or {}).get("test"), "count": len(actual)},
        "task": task,
        "bootstrap": {"resamples": resamples, "seed": seed, "interval": list(INTERVAL)},
        "metrics": metrics,
        "predictions": changed(task, predicted_a, predicted_b),
        "differences": differences(repo, a, b, params_a, params_b),
    }


def candidate() -> dict:
    """The workspace's scores on its own test rows, with no baseline (no release in prod):
    what the release criteria's thresholds read then."""
    repo = repo_root()
    b = Side(WORKSPACE, None)
    params = parse_yaml(_file(repo, b, PARAMS_FILE) or "", PARAMS_FILE)
    task = (params.get("data") or {}).get("task")
    actual, (predicted,) = _scored_rows(repo, b, params, [b])
    y, p = as_arrays(task, actual, predicted)
    contract = team()
    found = metrics_of(contract.score(task, y, p))
    return {
        "task": task,
        "rows": {"table": (params.get("paths") or {}).get("test"), "count": len(actual)},
        "metrics": {
            name: {"b": value, "greater_is_better": name not in contract.lower_is_better}
            for name, value in sorted(found.items())
        },
    }


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_comparison(report: dict) -> str:
    a, b = report["a"]["name"], report["b"]["name"]
    lines = [
        f"{a} (A) against {b} (B), both on B's {report['rows']['count']} test rows "
        f"({report['rows']['table']}); A ran in its own environment",
        f"  {'metric':<10} {'A':>9} {'B':>9} {'B - A':>9}  95% interval of B - A",
    ]
    for name, metric in report["metrics"].items():
        low, high = metric["interval"]
        better = "higher" if metric["greater_is_better"] else "lower"
        lines.append(
            f"  {name:<10} {_number(metric['a']):>9} {_number(metric['b']):>9} "
            f"{metric['difference']:>+9.4f}  [{low:+.4f}, {high:+.4f}]  ({better} is better)"
        )
    moved = report["predictions"]
    if "share" in moved:
        lines.append(f"  predictions changed on {moved['changed']} of {moved['rows']} rows")
    else:
        q = moved["quantiles"]
        lines.append(
            f"  predictions moved by {_number(moved['mean_absolute_change'])} on average "
            f"(B - A: median {_number(q['median'])}, 5%..95% {_number(q['p5'])}.."
            f"{_number(q['p95'])})"
        )
    found = report["differences"]
    for kind in ("parameters", "data", "packages"):
        entries = found[kind]
        lines.append(f"  {kind} that differ: {len(entries) or 'none'}")
        lines += [f"    {e['name']}: {e['a']} -> {e['b']}" for e in entries[:20]]
    lines.append(f"  files that differ: {len(found['files']) or 'none'}")
    lines += [f"    {name}" for name in found["files"][:20]]
    return "\n".join(lines)


def report_name(report: dict) -> str:
    """``model-v1.0.0-vs-workspace``: the report's file name, safe in any folder."""
    raw = f"{report['a']['name']}-vs-{report['b']['name']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)


def write(report: dict, out_dir: Path = OUT_DIR) -> tuple[Path, Path]:
    """The JSON report and its plot: B - A per metric with its interval (Vega-Lite, drawn
    offline by vl-convert as the DVC plots are)."""
    import vl_convert

    name = report_name(report)
    values = [
        {
            "metric": metric,
            "difference": entry["difference"],
            "low": entry["interval"][0],
            "high": entry["interval"][1],
        }
        for metric, entry in report["metrics"].items()
    ]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"B - A on the same rows: {report['b']['name']} - {report['a']['name']}",
        "data": {"values": values},
        "width": 420,
        "encoding": {"y": {"field": "metric", "type": "nominal", "title": None}},
        "layer": [
            {
                "mark": {"type": "rule", "color": "#0072B2"},
                "encoding": {
                    "x": {"field": "low", "type": "quantitative", "title": "B - A (95% interval)"},
                    "x2": {"field": "high"},
                },
            },
            {
                "mark": {"type": "point", "filled": True, "color": "#0072B2"},
                "encoding": {"x": {"field": "difference", "type": "quantitative"}},
            },
            {"mark": {"type": "rule", "color": "#999999"}, "encoding": {"x": {"datum": 0}}},
        ],
    }
    svg = vl_convert.vegalite_to_svg(spec)  # drawn first: a failure leaves no report alone
    data = atomic_write_text(out_dir / f"{name}.json", canonical_json(report))
    return data, atomic_write_text(out_dir / f"{name}.svg", svg)


def run_compare(args: argparse.Namespace) -> int:
    """`make compare`: the table, then the JSON report and the plot written."""
    report = compare(args.a, args.b, args.resamples, args.trust or "")
    print(format_comparison(report))
    data, plot = write(report)
    print(f"wrote {data} and {plot}")
    return 0
