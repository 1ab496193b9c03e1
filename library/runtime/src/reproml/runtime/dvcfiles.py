"""The one reader of DVC's ``.dvc`` files: which paths they track, with which md5 and size."""

from pathlib import Path

import yaml


def tracked_outputs(text: str, dvc_file: str) -> list[tuple[str, str, int | None]]:
    """``(path relative to the repository, md5, size)`` of every output a ``.dvc`` file
    records."""
    document = yaml.safe_load(text) or {}
    parent = Path(dvc_file).parent
    return [
        ((parent / out["path"]).as_posix(), out["md5"], out.get("size"))
        for out in document.get("outs") or []
        if out.get("md5") and out.get("path")
    ]


def recorded_md5(path: str | Path) -> str | None:
    """The md5 DVC recorded for ``path`` in ``<path>.dvc``, if that file tracks it and the
    size it records is the file's size (a cheap sign the record is current)."""
    path = Path(path)
    dvc_file = path.with_name(path.name + ".dvc")
    if not dvc_file.is_file() or not path.is_file():
        return None
    text = dvc_file.read_text(encoding="utf-8")
    for tracked, md5, size in tracked_outputs(text, dvc_file.name):
        if tracked == path.name and size == path.stat().st_size:
            return md5
    return None
