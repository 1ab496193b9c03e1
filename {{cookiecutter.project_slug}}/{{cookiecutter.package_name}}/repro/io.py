"""Atomic file writes and canonical JSON: a killed stage leaves no half-written output, and
the same payload always gives the same bytes."""

import json
import os
from pathlib import Path
from typing import Any


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


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(payload: Any) -> str:
    """Sorted keys, fixed indentation and a final newline: the same payload, the same bytes."""
    return json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def write_json(path: str | Path, payload: Any) -> Path:
    return atomic_write_text(path, canonical_json(payload))
