"""verify: rerun, in isolation, every stage this one depends on (dvc.yaml says which) and fail
unless every output they declare comes out the same. The machinery is reproml's; this stage
says only what is the team's: the rows the model's predictions are compared on, and the task."""

from pathlib import Path

from reproml.runtime.verification import verify

from ..config import ProjectConfig
from ..data import read_for_model


def run(config: ProjectConfig) -> dict[str, Path]:
    def probe():
        return read_for_model(config.paths.test, config.data)[0]

    return verify(config.paths.verify_report, probe=probe, task=config.data.task)
