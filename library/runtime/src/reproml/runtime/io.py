"""Atomic file writes and canonical JSON: a killed stage leaves no half-written output, and
the same payload always gives the same bytes."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import DataError


def partial_path(path: str | Path) -> Path:
    """Where an output is written before it is moved into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def commit_partial(path: str | Path) -> Path:
    """Move the finished partial file of ``path`` into place (atomic on one filesystem); if
    that fails (``path`` is a directory, say), the partial file is removed, not left behind."""
    path = Path(path)
    try:
        os.replace(partial_path(path), path)
    except BaseException:
        partial_path(path).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, so a killed stage leaves no half file,
    and a failed write leaves no partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial_path(path).write_bytes(data)
    except BaseException:
        partial_path(path).unlink(missing_ok=True)
        raise
    return commit_partial(path)


def check_output_path(rows: str | Path, out: str | Path) -> None:
    """Refuse an output path that would destroy the input ``rows`` or cannot be a file
    (predict's, with or without a release)."""
    rows, out = Path(rows), Path(out)
    if out.is_dir():
        raise DataError(
            f"{out}: is a directory. Fix: give the path of a file to write, e.g. "
            f"{out / 'predictions.csv'}."
        )
    same = out.resolve() == rows.resolve()
    if not same and out.exists() and rows.exists():
        same = os.path.samefile(out, rows)
    if same:
        raise DataError(
            f"{out}: is the input file {rows}; writing there would overwrite the rows. Fix: "
            "give another output path, e.g. predictions.csv."
        )


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_tree(folder: str | Path, files: dict[str, str]) -> Path:
    """Replace ``folder`` by one holding exactly ``files`` (name -> text): written beside it
    first, then swapped in, so a killed stage leaves the old folder or the new one, and a
    file the stage no longer writes does not linger."""
    folder = Path(folder)
    partial, previous = partial_path(folder), folder.with_name(f".{folder.name}.previous")
    for leftover in (partial, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        for name, text in files.items():
            (partial / name).write_bytes(text.encode("utf-8"))
        if folder.exists():
            os.replace(folder, previous)
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if previous.exists() and not folder.exists():
            os.replace(previous, folder)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    return folder


def canonical_json(payload: Any) -> str:
    """Sorted keys, fixed indentation and a final newline: the same payload, the same bytes."""
    return json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def structural_differences(
    expected: Any, actual: Any, path: str = "", into_lists: bool = False, strict: bool = False
) -> list[tuple[str, str, Any, Any]]:
    """``(dotted path, what, expected value, actual value)`` wherever two parsed documents
    (YAML, JSON) differ, ``what`` being "missing", "extra" or "changed" (a missing side's
    value is None). ``into_lists`` compares lists of equal length item by item; ``strict``
    counts 1 and 1.0 (or True) as different."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append((child, "missing", expected[key], None))
            elif key not in expected:
                found.append((child, "extra", None, actual[key]))
            else:
                found += structural_differences(
                    expected[key], actual[key], child, into_lists, strict
                )
        return found
    lists = isinstance(expected, list) and isinstance(actual, list)
    if into_lists and lists and len(expected) == len(actual):
        found = []
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            found += structural_differences(left, right, f"{path}.{index}", into_lists, strict)
        return found
    same = expected == actual and (not strict or type(expected) is type(actual))
    return [] if same else [(path, "changed", expected, actual)]


def compact_json(payload: Any) -> str:
    """Sorted keys and no spaces: the text a hash or a signature covers, and a note's line."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def write_json(path: str | Path, payload: Any) -> Path:
    return atomic_write_text(path, canonical_json(payload))
