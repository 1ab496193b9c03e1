"""Reading verify's reports back: which JSON is one, and which stages wrote one. The stage
writes them (runtime/verification.py); only the tools read them."""

import json
from pathlib import Path
from typing import Any

from ..runtime.pipeline import Pipeline


def is_report(document: Any) -> bool:
    """Whether a parsed JSON document is a verify report (what :func:`verify` writes)."""
    return (
        isinstance(document, dict)
        and document.get("result") in ("match", "mismatch")
        and isinstance(document.get("checks"), list)
        and isinstance(document.get("varied"), dict)
    )


def verify_stages(root: Path, pipeline: Pipeline) -> list[str]:
    """The stages whose output in ``root`` is a verify report (from their last run)."""
    found = []
    for stage in pipeline.stages:
        for out in stage.outs:
            path = root / out.path
            if path.suffix != ".json" or not path.is_file():
                continue
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if is_report(document) and stage.name not in found:
                found.append(stage.name)
    return found
