"""Deterministic reading and writing of the pipeline's tables and reports.

Tables are CSV with a header, the features first and the integer target last. Floats are
written with ``repr``, the shortest text that reads back to the same bits, so a table's bytes
depend only on its values.
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, so a killed stage leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def format_table(header: list[str], features: np.ndarray, target: np.ndarray) -> str:
    lines = [",".join(header)]
    for row, label in zip(features.tolist(), target.tolist(), strict=True):
        lines.append(",".join([*(repr(float(value)) for value in row), str(int(label))]))
    return "\n".join(lines) + "\n"


def write_table(path: str | Path, header: list[str], features: np.ndarray, target: np.ndarray):
    return atomic_write_text(path, format_table(header, features, target))


def read_table(path: str | Path, target: str = "target"):
    """Return ``(header, features, target)``; the target column must be the last one."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split(",")
    if header[-1] != target:
        raise ValueError(f"{path}: the last column must be {target!r}, found {header[-1]!r}")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    return header, table[:, :-1], table[:, -1].astype(np.int64)


def canonical_json(payload: Any) -> str:
    """Sorted keys, fixed indentation and a final newline: the same payload, the same bytes."""
    return json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def write_json(path: str | Path, payload: Any) -> Path:
    return atomic_write_text(path, canonical_json(payload))
