"""Compare a model and its scores with an independent rebuild of them, at three levels.

- strict: the model file's sha256. Same bytes, same model, on this platform.
- portable: predictions on a fixed probe set (the test table). Survives a change of BLAS
  kernel, where the last bits of a coefficient may move but no prediction does.
- metrics: the evaluation scores, key by key.

When the strict level fails, the report says what differs inside the model: which attributes
and by how much, or, if every attribute is equal, where the pickle streams part.
"""

import difflib
import io
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

# Probabilities closer than this count as the same prediction at the portable level.
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
    artifact: str, expected_path: Path, rebuilt_path: Path, expected: Any, rebuilt: Any
) -> dict:
    """The strict level: identical bytes; on a mismatch, what differs inside."""
    from .hashing import file_digest

    expected_sha, rebuilt_sha = file_digest(expected_path), file_digest(rebuilt_path)
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


def _scores(model: Any, features: np.ndarray) -> np.ndarray:
    for method in ("predict_proba", "decision_function"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(features), dtype=float)
    return np.asarray(model.predict(features), dtype=float)


def compare_predictions(expected: Any, rebuilt: Any, probe: np.ndarray) -> dict:
    """The portable level: label flips and the largest score difference on the probe set."""
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


def format_table(checks: list[dict]) -> str:
    """The per-output table that verify prints."""
    lines = [f"  {'artifact':<24} {'level':<9} {'result':<9} detail"]
    for check in checks:
        if check["level"] == "strict":
            detail = f"sha256 {check['expected_sha256'][:12]} vs {check['rebuilt_sha256'][:12]}"
        elif check["level"] == "portable":
            detail = (
                f"{check['n_probe']} probes, max |Δ| {check['max_abs_delta']:.3g}, "
                f"{check['label_flips']} label flips"
            )
        else:
            detail = ", ".join(f"{k}: {v[0]} vs {v[1]}" for k, v in check["differences"].items())
        lines.append(
            f"  {check['artifact']:<24} {check['level']:<9} {check['result'].upper():<9} {detail}"
        )
        for extra in check.get("attribute_differences", []) + check.get("pickle_differences", []):
            lines.append(f"      {extra}")
    return "\n".join(lines)
