"""verify: retrain and re-evaluate in an isolated process, then compare with the pipeline.
The machinery lives in repro/verification.py."""

from pathlib import Path

from ..config import ProjectConfig
from ..repro.verification import verify


def run(config: ProjectConfig) -> dict[str, Path]:
    return verify(config)
