"""train: fit the configured model family on the training table."""

from pathlib import Path

from ..config import ProjectConfig
from ..dataio import read_table
from ..models import build, save_model


def run(config: ProjectConfig) -> dict[str, Path]:
    _, features, target = read_table(config.paths.train, config.data.target)
    model = build(config.model, seed=config.seed)
    model.fit(features, target)
    save_model(model, config.paths.model)
    return {"model": Path(config.paths.model)}
