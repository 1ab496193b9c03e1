"""train: fit the configured model family on the training table; record the model's hash."""

from pathlib import Path

from ..config import ProjectConfig
from ..dataio import read_table
from ..environment import require_locked_environment
from ..models import build, save_model, write_record
from ..provenance import training_provenance


def run(config: ProjectConfig) -> dict[str, Path]:
    drift = require_locked_environment(what="training")
    _, features, target = read_table(config.paths.train, config.data.target)
    model = build(config.model, seed=config.seed)
    model.fit(features, target)
    sha256 = save_model(model, config.paths.model)
    record = write_record(
        config.paths.model_record,
        config.paths.model,
        sha256,
        **training_provenance(config),
        drift=drift,
    )
    return {"model": Path(config.paths.model), "model_record": record}
