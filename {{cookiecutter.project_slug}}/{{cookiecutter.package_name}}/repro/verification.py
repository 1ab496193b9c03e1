"""The verify stage: retrain in an isolated process, then compare the model and its scores
with that independent rebuild, at three levels.

- strict: the model file's sha256. Same bytes, same model, on this platform.
- portable: predictions on a fixed probe set (the test table). Survives a change of BLAS
  kernel, where the last bits of a coefficient may move but no prediction does. A classifier
  must flip no label, and its scores stay within PORTABLE_TOLERANCE; a regressor's
  predictions are numbers, compared within ``prediction_tolerance`` (relative).
- metrics: the evaluation scores, key by key.

When the strict level fails, the report says what differs inside the model: which attributes
and by how much, or, if every attribute is equal, where the pickle streams part.
"""

import difflib
import io
import json
import os
import pickletools
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import PARAMS_FILE, ProjectConfig
from ..data import read_for_model
from ..plots import CLASSIFICATION_PLOTS, REGRESSION_PLOTS
from .artifacts import load_recorded_model, read_record
from .commands import run
from .environment import require_locked_environment
from .errors import VerificationError
from .hashing import file_digest
from .io import write_json
from .launcher import (
    OPT_OUT_VARIABLE,
    PACKAGE,
    PROJECT_ROOT,
    VARIED_ENV,
    VARIED_UMASK,
    varied_environment,
)

# Probabilities closer than this count as the same prediction at the portable level; for a
# regressor's predictions and for metrics, it is relative (see prediction_tolerance).
PORTABLE_TOLERANCE = 1e-9
DIFF_LIMIT = 20
DISASSEMBLY_LIMIT_BYTES = 4 << 20


def attribute_differences(expected: Any, rebuilt: Any, name: str = "model") -> list[str]:
    """Where two fitted objects differ, attribute by attribute (at most DIFF_LIMIT lines)."""
    found: list[str] = []
    _walk(expected, rebuilt, name, found, set())
    return found[:DIFF_LIMIT]


def _walk(expected: Any, rebuilt: Any, name: str, found: list[str], seen: set) -> None:
    if len(found) >= DIFF_LIMIT or (id(expected), id(rebuilt)) in seen:
        return
    seen.add((id(expected), id(rebuilt)))
    if type(expected) is not type(rebuilt):
        found.append(f"{name}: {type(expected).__name__} vs {type(rebuilt).__name__}")
    elif isinstance(expected, np.ndarray):
        if expected.shape != rebuilt.shape or expected.dtype != rebuilt.dtype:
            found.append(
                f"{name}: array {expected.dtype}{list(expected.shape)} vs "
                f"{rebuilt.dtype}{list(rebuilt.shape)}"
            )
        elif not np.array_equal(expected, rebuilt, equal_nan=expected.dtype.kind in "fc"):
            if expected.dtype.kind in "fciub":
                delta = np.max(np.abs(expected.astype(float) - rebuilt.astype(float)))
                changed = int(np.sum(expected != rebuilt))
                found.append(
                    f"{name}: {changed} of {expected.size} values differ, max |Δ| {delta:.3g}"
                )
            else:
                found.append(f"{name}: array contents differ")
    elif isinstance(expected, dict):
        for key in sorted(set(expected) | set(rebuilt), key=str):
            if key not in expected or key not in rebuilt:
                found.append(
                    f"{name}[{key!r}]: only in {'rebuilt' if key in rebuilt else 'expected'}"
                )
            else:
                _walk(expected[key], rebuilt[key], f"{name}[{key!r}]", found, seen)
    elif isinstance(expected, list | tuple):
        if len(expected) != len(rebuilt):
            found.append(f"{name}: length {len(expected)} vs {len(rebuilt)}")
        for index, (left, right) in enumerate(zip(expected, rebuilt, strict=False)):
            _walk(left, right, f"{name}[{index}]", found, seen)
    elif _state(expected) is not None and not isinstance(expected, type):
        # An estimator's state, or an extension type's (a tree's node arrays).
        left, right = _state(expected), _state(rebuilt) or {}
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                found.append(f"{name}.{key}: only in {'rebuilt' if key in right else 'expected'}")
            else:
                _walk(left[key], right[key], f"{name}.{key}", found, seen)
    else:
        try:
            equal = bool(expected == rebuilt)
        except (TypeError, ValueError):
            equal = repr(expected) == repr(rebuilt)
        if not equal:
            found.append(f"{name}: {expected!r} vs {rebuilt!r}")


def _state(value: Any) -> dict | None:
    if isinstance(value, str | bytes | int | float | complex | bool | type(None)):
        return None
    try:
        state = value.__getstate__()
    except (AttributeError, TypeError):
        return None
    return state if isinstance(state, dict) else None


def _disassemble(data: bytes) -> list[str]:
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return out.getvalue().splitlines()


def pickle_differences(expected: bytes, rebuilt: bytes) -> list[str]:
    """The first lines of a diff of the two pickles' disassemblies."""
    if max(len(expected), len(rebuilt)) > DISASSEMBLY_LIMIT_BYTES:
        return [f"pickles too large to disassemble ({len(expected)} and {len(rebuilt)} bytes)"]
    diff = difflib.unified_diff(
        _disassemble(expected), _disassemble(rebuilt), "expected", "rebuilt", n=1, lineterm=""
    )
    return list(diff)[: DIFF_LIMIT * 2]


def compare_model_files(
    artifact: str,
    expected_file: tuple[Path, str],
    rebuilt_file: tuple[Path, str],
    expected: Any,
    rebuilt: Any,
) -> dict:
    """The strict level: identical bytes; on a mismatch, what differs inside. Each file comes
    with the sha256 its record holds, which loading it has just checked."""
    (expected_path, expected_sha), (rebuilt_path, rebuilt_sha) = expected_file, rebuilt_file
    row = {
        "artifact": artifact,
        "level": "strict",
        "result": "match" if expected_sha == rebuilt_sha else "mismatch",
        "expected_sha256": expected_sha,
        "rebuilt_sha256": rebuilt_sha,
    }
    if expected_sha != rebuilt_sha:
        row["attribute_differences"] = attribute_differences(expected, rebuilt)
        if not row["attribute_differences"]:
            row["pickle_differences"] = pickle_differences(
                expected_path.read_bytes(), rebuilt_path.read_bytes()
            )
    return row


def _scores(model: Any, features: Any) -> np.ndarray:
    """Class probabilities or decision scores; a model with neither has only its labels,
    which the label-flip count compares."""
    for method in ("predict_proba", "decision_function"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(features), dtype=float)
    return np.zeros(1)


def prediction_tolerance(predictions: np.ndarray) -> float:
    """How far two regression predictions may be apart and still count as the same:
    PORTABLE_TOLERANCE times the largest |prediction| (at least 1), so the rule is the same
    whether the target is in grams or in tonnes."""
    largest = float(np.max(np.abs(predictions))) if predictions.size else 0.0
    return PORTABLE_TOLERANCE * max(1.0, largest)


def numbers_close(expected: Any, actual: Any) -> bool:
    """Equal JSON (metrics), each number within PORTABLE_TOLERANCE times max(1, |expected|): for
    scores in [0, 1] that is an absolute 1e-9; an RMSE in the target's units is held to the
    same relative precision."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            numbers_close(expected[key], actual[key]) for key in expected
        )
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        return abs(expected - actual) <= PORTABLE_TOLERANCE * max(1.0, abs(expected))
    return expected == actual


def largest_difference(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(the largest |after - before|, the tolerance it is held to) for regression predictions."""
    return float(np.max(np.abs(after - before), initial=0.0)), prediction_tolerance(before)


def same_regression_predictions(committed: str, rebuilt: str) -> bool:
    """Two predicted_actual tables (plots.predicted_actual_rows) hold the same test rows with
    the same targets, and every prediction within ``prediction_tolerance`` of the committed.
    A table that does not parse (a committed file anyone could have edited) is not the same."""
    import pandas as pd

    try:
        old, new = (pd.read_csv(io.StringIO(text), dtype=float) for text in (committed, rebuilt))
        if list(old.columns) != list(new.columns) or len(old) != len(new):
            return False
        if not np.array_equal(old["actual"].to_numpy(), new["actual"].to_numpy()):
            return False
        before, after = old["predicted"].to_numpy(), new["predicted"].to_numpy()
    except (ValueError, KeyError, pd.errors.ParserError):
        return False
    delta, tolerance = largest_difference(before, after)
    return delta <= tolerance


def compare_predictions(expected: Any, rebuilt: Any, probe: Any, task: str) -> dict:
    """The portable level on the probe set: a classifier's label flips and largest score
    difference; a regressor's largest prediction difference, against its tolerance."""
    if task == "regression":
        delta, tolerance = largest_difference(
            np.asarray(expected.predict(probe), dtype=float),
            np.asarray(rebuilt.predict(probe), dtype=float),
        )
        return {
            "artifact": "predictions",
            "level": "portable",
            "result": "match" if delta <= tolerance else "mismatch",
            "n_probe": int(probe.shape[0]),
            "max_abs_delta": delta,
            "tolerance": tolerance,
        }
    delta = float(np.max(np.abs(_scores(expected, probe) - _scores(rebuilt, probe))))
    flips = int(np.sum(expected.predict(probe) != rebuilt.predict(probe)))
    return {
        "artifact": "predictions",
        "level": "portable",
        "result": "match" if flips == 0 and delta <= PORTABLE_TOLERANCE else "mismatch",
        "n_probe": int(probe.shape[0]),
        "max_abs_delta": delta,
        "label_flips": flips,
    }


def compare_metrics(artifact: str, expected: dict, rebuilt: dict) -> dict:
    differences = {
        key: [expected.get(key), rebuilt.get(key)]
        for key in sorted(set(expected) | set(rebuilt))
        if expected.get(key) != rebuilt.get(key)
    }
    return {
        "artifact": artifact,
        "level": "metrics",
        "result": "mismatch" if differences else "match",
        "differences": differences,
    }


def compare_plot_file(artifact: str, expected: Path, rebuilt: Path) -> dict:
    """A plot table: the same bytes, or where the first difference is."""
    row = {
        "artifact": artifact,
        "level": "strict",
        "expected_sha256": file_digest(expected),
        "rebuilt_sha256": file_digest(rebuilt),
    }
    row["result"] = "match" if row["expected_sha256"] == row["rebuilt_sha256"] else "mismatch"
    if row["result"] == "mismatch":
        old, new = (path.read_text(encoding="utf-8").splitlines() for path in (expected, rebuilt))
        first = next(
            (i for i, pair in enumerate(zip(old, new, strict=False)) if pair[0] != pair[1]),
            min(len(old), len(new)),
        )
        row["attribute_differences"] = [f"line {first + 1} is the first to differ"]
    return row


def format_table(checks: list[dict]) -> str:
    """The per-output table that verify prints."""
    lines = [f"  {'artifact':<28} {'level':<9} {'result':<9} detail"]
    for check in checks:
        if check["level"] == "strict":
            detail = f"sha256 {check['expected_sha256'][:12]} vs {check['rebuilt_sha256'][:12]}"
        elif check["level"] == "portable" and "tolerance" in check:
            detail = (
                f"{check['n_probe']} probes, max |Δ| {check['max_abs_delta']:.3g} "
                f"(tolerance {check['tolerance']:.3g})"
            )
        elif check["level"] == "portable":
            detail = (
                f"{check['n_probe']} probes, max |Δ| {check['max_abs_delta']:.3g}, "
                f"{check['label_flips']} label flips"
            )
        else:
            detail = ", ".join(f"{k}: {v[0]} vs {v[1]}" for k, v in check["differences"].items())
        lines.append(
            f"  {check['artifact']:<28} {check['level']:<9} {check['result'].upper():<9} {detail}"
        )
        for extra in check.get("attribute_differences", []) + check.get("pickle_differences", []):
            lines.append(f"      {extra}")
    return "\n".join(lines)


# ---- the stage -----------------------------------------------------------------------------

# Every plot table evaluate writes, for either task (the other task's hold only a header).
PLOT_PATHS = (*CLASSIFICATION_PLOTS, *REGRESSION_PLOTS, "importance")
REBUILT_PATHS = ("model", "model_record", "metrics", *PLOT_PATHS)


def _isolated_params(config: ProjectConfig, scratch: Path) -> Path:
    """params.yaml for the rebuild: inputs from the project, every output into scratch."""
    raw = asdict(config)
    for key in ("raw_data", "train", "test"):
        raw["paths"][key] = str(Path(getattr(config.paths, key)).resolve())
    for key in REBUILT_PATHS:
        raw["paths"][key] = str(scratch / Path(getattr(config.paths, key)).name)
    path = scratch / PARAMS_FILE
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _rebuild(params_file: Path, scratch: Path) -> None:
    env = varied_environment(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", PACKAGE, "stage", "train", "evaluate"]
    result = run(
        [*command, "--params", str(params_file)],
        cwd=scratch,
        env=env,
        umask=VARIED_UMASK if os.name == "posix" else -1,
    )
    if result.returncode != 0:
        raise VerificationError(f"the isolated rebuild failed:\n{result.stdout}{result.stderr}")


def verify(config: ProjectConfig) -> dict[str, Path]:
    """The verify stage: rebuild in isolation, compare at three levels, write the report."""
    drift = require_locked_environment(what="verification")
    scratch = Path(tempfile.mkdtemp(prefix="verify-"))
    try:
        _rebuild(_isolated_params(config, scratch), scratch)
        paths = config.paths
        rebuilt_model = scratch / Path(paths.model).name
        rebuilt_record = scratch / Path(paths.model_record).name
        expected = load_recorded_model(paths.model, paths.model_record)
        rebuilt = load_recorded_model(rebuilt_model, rebuilt_record)
        probe, _ = read_for_model(paths.test, config.data)
        checks = [
            compare_model_files(
                paths.model,
                (Path(paths.model), read_record(paths.model_record)["model"]["sha256"]),
                (rebuilt_model, read_record(rebuilt_record)["model"]["sha256"]),
                expected,
                rebuilt,
            ),
            compare_predictions(expected, rebuilt, probe, config.data.task),
            compare_metrics(
                paths.metrics,
                json.loads(Path(paths.metrics).read_text(encoding="utf-8")),
                json.loads((scratch / Path(paths.metrics).name).read_text(encoding="utf-8")),
            ),
        ]
        for key in PLOT_PATHS:
            path = Path(getattr(paths, key))
            checks.append(compare_plot_file(str(path), path, scratch / path.name))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    result = "match" if all(check["result"] == "match" for check in checks) else "mismatch"
    report = {
        "result": result,
        "varied": {
            **{
                key: value
                for key, value in VARIED_ENV.items()
                if key != OPT_OUT_VARIABLE and not key.endswith("_THREADS")
            },
            "umask": f"{VARIED_UMASK:03o}",
            "working_directory": "a fresh scratch directory",
        },
        "checks": checks,
        "environment_drift": drift,
    }
    write_json(paths.verify_report, report)
    table = format_table(checks)
    if result != "match":
        raise VerificationError(
            f"the rebuild does not match what the pipeline produced:\n{table}\n"
            f"The rebuilt files are kept in {scratch} for inspection; the full report is "
            f"{paths.verify_report}. Look for unseeded randomness or state outside the inputs."
        )
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"verify: the isolated rebuild matches\n{table}")
    return {"verify_report": Path(paths.verify_report)}
