"""The team contract: what the tool commands need of the team's package, declared once and
typed. The team's ``__main__`` hands it over as ``team()``, as it hands its stages package to
the stage runner, so no tool calls a function of the team's by a name it guesses."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class DataSection(Protocol):
    name: str
    task: str


class ProjectConfig(Protocol):
    """What the tools read of a validated config: the model mapping (``_target_`` and its
    parameters), the dataset's name and task, the paths mapping and the seed."""

    seed: int
    data: DataSection
    paths: Any
    model: dict[str, Any]


@dataclass(frozen=True)
class Team:
    """The team's side of the machinery.

    - ``load_params(path)``: params.yaml, read and validated (`make params`, `make predict`);
    - ``validate(raw, source)``: a composed mapping checked against the schema (sweep points);
    - ``build(config, source)``: the unfitted model, every key checked (sweep points);
    - ``predict(config, rows, out)``: a CSV of predictions for a table (`make predict`);
    - ``date_parts``: what `make data-schema` offers for a date column;
    - ``score(task, actual, predicted)``: the task's scores of predictions (`make compare`),
      a mapping whose float values are the metrics;
    - ``lower_is_better``: the metrics where a lower value is better (errors);
    - ``primary_score``: per task, the score a release may not lose against prod beyond its
      interval, whatever the release criteria say.
    """

    load_params: Callable[[str | Path], ProjectConfig]
    validate: Callable[[Any, str], ProjectConfig]
    build: Callable[[ProjectConfig, str], Any]
    predict: Callable[[ProjectConfig, str | Path, str | Path], Path]
    date_parts: tuple[str, ...]
    score: Callable[[str, Any, Any], dict[str, Any]]
    lower_is_better: tuple[str, ...]
    primary_score: dict[str, str]
