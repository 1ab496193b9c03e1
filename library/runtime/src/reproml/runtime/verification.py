"""The verify stage: rerun every stage it depends on, as dvc.yaml declares them, in an
isolated copy (another directory, time zone, locale, hash seed and umask), then compare every
output those stages declare with the pipeline's own. Nothing here names a stage or a plot: a
new one is compared as soon as dvc.yaml declares it.

- strict: the model file's sha256 (the ``artifacts:`` entry of type model), and every other
  declared output byte for byte (a directory file by file). Same bytes, same model.
- portable: predictions on a fixed probe set (the test table). Survives a change of BLAS
  kernel, where the last bits of a coefficient may move but no prediction does. A classifier
  must flip no label, and its scores stay within PORTABLE_TOLERANCE; a regressor's
  predictions are numbers, compared within ``prediction_tolerance`` (relative). Identical
  model bytes imply it: the predictions are then not recomputed.
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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .environment import REQUIREMENTS_LOCK, require_locked_environment
from .errors import VerificationError
from .hashing import file_digest
from .io import write_json
from .launcher import (
    OPT_OUT_VARIABLE,
    VARIED_ENV,
    VARIED_UMASK,
    varied_environment,
)
from .model_file import load_recorded_model, record_path, recorded_sha256
from .pipeline import DVC_YAML, Pipeline, Stage
from .pipeline import read as read_pipeline
from .proc import interpreter_first_on_path, run

# Probabilities closer than this count as the same prediction at the portable level; for a
# regressor's predictions and for metrics, it is relative (see prediction_tolerance).
PORTABLE_TOLERANCE = 1e-9
DIFF_LIMIT = 20
PREDICTIONS_CHECK = {"output": "predictions", "level": "portable"}
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
    output: str,
    expected_file: tuple[Path, str],
    rebuilt_file: tuple[Path, str],
    expected: Any = None,
    rebuilt: Any = None,
) -> dict:
    """The strict level: identical bytes; on a mismatch, what differs inside the two loaded
    models. Each file comes with the sha256 its record holds, which has just been checked."""
    (expected_path, expected_sha), (rebuilt_path, rebuilt_sha) = expected_file, rebuilt_file
    row = {
        "output": output,
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


def largest_difference(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(the largest |after - before|, the tolerance it is held to) for regression predictions
    (or any column of numbers)."""
    delta = np.abs(after - before)
    same_gaps = np.isnan(before) & np.isnan(after)
    worst = float(np.max(np.where(same_gaps, 0.0, delta), initial=0.0))
    finite = before[np.isfinite(before)]
    return worst, prediction_tolerance(finite)


def compare_predictions(expected: Any, rebuilt: Any, probe: Any, task: str) -> dict:
    """The portable level on the probe set: a classifier's label flips and largest score
    difference; a regressor's largest prediction difference, against its tolerance."""
    if task == "regression":
        delta, tolerance = largest_difference(
            np.asarray(expected.predict(probe), dtype=float),
            np.asarray(rebuilt.predict(probe), dtype=float),
        )
        return {
            **PREDICTIONS_CHECK,
            "result": "match" if delta <= tolerance else "mismatch",
            "n_probe": int(probe.shape[0]),
            "max_abs_delta": delta,
            "tolerance": tolerance,
        }
    delta = float(np.max(np.abs(_scores(expected, probe) - _scores(rebuilt, probe))))
    flips = int(np.sum(expected.predict(probe) != rebuilt.predict(probe)))
    return {
        **PREDICTIONS_CHECK,
        "result": "match" if flips == 0 and delta <= PORTABLE_TOLERANCE else "mismatch",
        "n_probe": int(probe.shape[0]),
        "max_abs_delta": delta,
        "label_flips": flips,
    }


def compare_metrics(output: str, expected: dict, rebuilt: dict) -> dict:
    differences = {
        key: [expected.get(key), rebuilt.get(key)]
        for key in sorted(set(expected) | set(rebuilt))
        if expected.get(key) != rebuilt.get(key)
    }
    return {
        "output": output,
        "level": "metrics",
        "result": "mismatch" if differences else "match",
        "differences": differences,
    }


def compare_file(output: str, expected: Path, rebuilt: Path) -> dict:
    """A declared output: the same bytes, or where the first difference is."""
    row = {
        "output": output,
        "level": "strict",
        "expected_sha256": file_digest(expected),
        "rebuilt_sha256": file_digest(rebuilt),
    }
    row["result"] = "match" if row["expected_sha256"] == row["rebuilt_sha256"] else "mismatch"
    if row["result"] == "mismatch":
        old, new = (_lines(path) for path in (expected, rebuilt))
        first = next(
            (i for i, pair in enumerate(zip(old, new, strict=False)) if pair[0] != pair[1]),
            min(len(old), len(new)),
        )
        row["attribute_differences"] = [f"line {first + 1} is the first to differ"]
    return row


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


def compare_tree(output: str, expected: Path, rebuilt: Path) -> list[dict]:
    """A declared output, file or directory: one check per file, and a mismatch for a file
    that only one side has."""
    if expected.is_file() or rebuilt.is_file():
        if not (expected.is_file() and rebuilt.is_file()):
            return [_only_one(output, expected.is_file())]
        return [compare_file(output, expected, rebuilt)]
    names = {
        path.relative_to(root).as_posix()
        for root in (expected, rebuilt)
        if root.is_dir()
        for path in root.rglob("*")
        if path.is_file()
    }
    checks = []
    for name in sorted(names):
        old, new = expected / name, rebuilt / name
        if old.is_file() and new.is_file():
            checks.append(compare_file(f"{output}/{name}", old, new))
        else:
            checks.append(_only_one(f"{output}/{name}", old.is_file()))
    return checks


def _only_one(output: str, in_expected: bool) -> dict:
    side = "the pipeline's output" if in_expected else "the rebuild"
    return {
        "output": output,
        "level": "strict",
        "result": "mismatch",
        "expected_sha256": "-" if not in_expected else "present",
        "rebuilt_sha256": "-" if in_expected else "present",
        "attribute_differences": [f"only {side} has this file"],
    }


def format_table(checks: list[dict]) -> str:
    """The per-output table that verify prints."""
    lines = [f"  {'output':<34} {'level':<9} {'result':<9} detail"]
    for check in checks:
        if check["level"] == "strict":
            detail = f"sha256 {check['expected_sha256'][:12]} vs {check['rebuilt_sha256'][:12]}"
        elif check["level"] == "portable" and "implied_by" in check:
            detail = f"same model ({check['implied_by']})"
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
            f"  {check['output']:<34} {check['level']:<9} {check['result'].upper():<9} {detail}"
        )
        for extra in check.get("attribute_differences", []) + check.get("pickle_differences", []):
            lines.append(f"      {extra}")
    return "\n".join(lines)


# ---- the stage -----------------------------------------------------------------------------


def copy_inputs(root: Path, stages: list[Stage], scratch: Path) -> None:
    """Copy into ``scratch`` what the stages read and none of them writes: the raw data,
    conf/, params.yaml, the code. An undeclared input is then missing there, and the rebuild
    fails on it instead of reading the workspace."""
    written = [out.path for stage in stages for out in stage.outs]
    # The environment check's lock is the machinery's input, not a stage's: it pins the
    # developer tools too, which must not retrain anything when they change.
    needed = sorted({dep for stage in stages for dep in stage.deps} | {REQUIREMENTS_LOCK})
    for dep in needed:
        if any(dep == out or dep.startswith(out + "/") for out in written):
            continue
        source = root / dep
        if dep.startswith("../") or not source.exists():
            problem = "outside the project" if dep.startswith("../") else "missing"
            raise VerificationError(
                f"{DVC_YAML}: the dependency {dep} is {problem}, "
                "so the isolated rebuild cannot read it. Fix: keep inputs inside the project, "
                "and `dvc pull` or `dvc repro` what is missing."
            )
        target = scratch / dep
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    for stage in stages:
        (scratch / stage.wdir).mkdir(parents=True, exist_ok=True)


def _stage_names(command: str) -> tuple[str, list[str]] | None:
    """``(prefix, names)`` for a one-line command of the form ``python -m <package> stage
    <names>`` (what the project's own stages run), None for any other command."""
    words = command.split()
    if command.strip() != " ".join(words) or len(words) < 5:
        return None  # several lines, or tabs: the shell may read it otherwise
    if words[:2] != ["python", "-m"] or words[3] != "stage":
        return None
    names = words[4:]
    return (" ".join(words[:4]), names) if all(n.isidentifier() for n in names) else None


def rerun_batches(stages: list[Stage]) -> list[tuple[list[Stage], str]]:
    """The stages in order, as commands to run: consecutive stages of one package and working
    directory share one ``python -m <package> stage a b c`` process (one interpreter start-up
    and one scikit-learn import instead of one each); any other command runs alone, as
    declared."""
    groups: list[tuple[list[Stage], tuple[str, list[str]] | None]] = []
    for stage in stages:
        parsed = _stage_names(stage.command)
        if groups and parsed and groups[-1][1]:
            batch, (prefix, names) = groups[-1]
            if prefix == parsed[0] and batch[-1].wdir == stage.wdir:
                groups[-1] = ([*batch, stage], (prefix, [*names, *parsed[1]]))
                continue
        groups.append(([stage], parsed))
    return [
        (batch, f"{parsed[0]} {' '.join(parsed[1])}" if parsed else batch[0].command)
        for batch, parsed in groups
    ]


def _rerun(stages: list[Stage], scratch: Path) -> None:
    """Run the stages' declared commands in ``scratch``, in a varied environment, with this
    interpreter's environment first on PATH and the scratch copy as the code. The rebuild
    runs in processes of its own, apart from the ones DVC ran, and is compared with what
    those wrote; stages that share a rebuild process (rerun_batches) may see state an earlier
    one left (docs/design-decisions.md says what that costs)."""
    env = interpreter_first_on_path(varied_environment(dict(os.environ)))
    env["PYTHONPATH"] = str(scratch)
    for batch, command in rerun_batches(stages):
        result = run(
            command,
            shell=True,
            cwd=scratch / batch[0].wdir,
            env=env,
            umask=VARIED_UMASK if os.name == "posix" else -1,
        )
        if result.returncode != 0:
            what = f"stage {batch[0].name!r}"
            if len(batch) > 1:  # the output's last `<stage>: ...` line says how far it got
                what = f"stages {', '.join(s.name for s in batch)} (one process)"
            raise VerificationError(
                f"the isolated rebuild of {what} failed (`{command}`):\n"
                f"{result.stdout}{result.stderr}"
            )


def _compare(root: Path, pipeline: Pipeline, stages: list[Stage], scratch: Path, probe, task: str):
    """Every output the rerun stages declare, against the pipeline's own: the model at the
    strict and portable levels, metrics key by key, everything else byte for byte."""
    checks = []
    for stage in stages:
        for out in stage.outs:
            expected, rebuilt = root / out.path, scratch / out.path
            if out.path == pipeline.model:
                checks += _compare_model(out.path, (root, scratch), probe, task)
            elif out.kind == "metrics" and expected.is_file() and rebuilt.is_file():
                checks.append(
                    compare_metrics(
                        out.path,
                        json.loads(expected.read_text(encoding="utf-8")),
                        json.loads(rebuilt.read_text(encoding="utf-8")),
                    )
                )
            else:
                checks += compare_tree(out.path, expected, rebuilt)
    return checks


def _compare_model(name: str, roots: tuple[Path, Path], probe, task: str) -> list[dict]:
    """The model at the strict level (bytes, and what differs inside) and the portable one
    (predictions on the probe rows), each file checked against its record first. Identical
    bytes are the same model, so their predictions are not recomputed: nothing is unpickled
    and scikit-learn is not imported unless the bytes differ."""
    root, scratch = roots
    expected_path, rebuilt_path = root / name, scratch / name
    if not rebuilt_path.is_file():
        return [_only_one(name, True)]
    expected_record, rebuilt_record = (record_path(path) for path in (expected_path, rebuilt_path))
    shas = (
        recorded_sha256(name, expected_record, root=root),
        recorded_sha256(name, rebuilt_record, root=scratch),
    )
    if shas[0] == shas[1]:
        strict = compare_model_files(name, (expected_path, shas[0]), (rebuilt_path, shas[1]))
        return [strict, {**PREDICTIONS_CHECK, "result": "match", "implied_by": "identical bytes"}]
    expected = load_recorded_model(name, expected_record, root=root)
    rebuilt = load_recorded_model(name, rebuilt_record, root=scratch)
    strict = compare_model_files(
        name, (expected_path, shas[0]), (rebuilt_path, shas[1]), expected, rebuilt
    )
    return [strict, compare_predictions(expected, rebuilt, probe(), task)]


def unverified(pipeline: Pipeline, name: str) -> str | None:
    """What is wrong if a stage of ``pipeline`` is neither rerun by the verify stage ``name``
    (it depends on none of its outputs) nor after it; None when every stage is covered."""
    covered = {stage.name for stage in pipeline.upstream(name)} | pipeline.downstream({name})
    left_out = [stage.name for stage in pipeline.stages if stage.name not in covered]
    if not left_out:
        return None
    return (
        f"{DVC_YAML}: {', '.join(left_out)} would not be verified: {name} depends on none of "
        f"its outputs. Fix: `make deps` adds them to {name}'s deps in {DVC_YAML}."
    )


def verify(report: str | Path, probe: Callable[[], Any], task: str) -> dict[str, Path]:
    """The verify stage (the one that writes ``report``): rerun, in isolation, every stage it
    depends on, as dvc.yaml declares them; compare every output they declare; write the report.
    ``probe`` gives the rows the model's predictions are compared on, ``task`` how."""
    drift = require_locked_environment(what="verification")
    root = Path.cwd()  # where DVC runs the stage: the project, or a copy of it (experiments)
    pipeline = read_pipeline(root)
    me = pipeline.writer_of(report)
    if me is None:
        raise VerificationError(
            f"{DVC_YAML}: no stage declares {report} as an output. Fix: list it under the "
            "verify stage's outs."
        )
    stages = pipeline.upstream(me.name)
    if pipeline.model is None or all(out.path != pipeline.model for s in stages for out in s.outs):
        raise VerificationError(
            f"{DVC_YAML}: the stage {me.name!r} depends on no stage that writes the model "
            "artifact (artifacts: with type: model). Fix: declare the artifact, and add the "
            f"model's path to {me.name}'s deps."
        )
    problem = unverified(pipeline, me.name)
    if problem:
        raise VerificationError(problem)
    scratch = Path(tempfile.mkdtemp(prefix="verify-"))
    try:
        copy_inputs(root, stages, scratch)
        _rerun(stages, scratch)
        checks = _compare(root, pipeline, stages, scratch, probe, task)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    result = "match" if all(check["result"] == "match" for check in checks) else "mismatch"
    document = {
        "result": result,
        "rerun": [stage.name for stage in stages],
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
    write_json(report, document)
    table = format_table(checks)
    if result != "match":
        raise VerificationError(
            f"the rebuild does not match what the pipeline produced:\n{table}\n"
            f"The rebuilt files are kept in {scratch} for inspection; the full report is "
            f"{report}. Look for unseeded randomness or state outside the inputs."
        )
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"verify: the isolated rebuild of {', '.join(document['rerun'])} matches\n{table}")
    return {"verify_report": Path(report)}
