"""train: fit preprocessing and the configured estimator on the training table; record the
model's hash, data version, parameters and environment. A model whose predict does not give
one label (of its classes) or finite number per row is refused before it is written."""

from pathlib import Path

from reproml.runtime.contract import check_fitted
from reproml.runtime.environment import require_locked_environment
from reproml.runtime.model_file import save_model, training_record, write_record

from ..config import ProjectConfig
from ..data import read_for_model
from ..models import build


def run(config: ProjectConfig) -> dict[str, Path]:
    drift = require_locked_environment(what="training")
    model = build(config)
    features, target = read_for_model(config.paths.train, config.data)
    model.fit(features, target)
    check_fitted(model, features, config.data.task, "train")
    sha256 = save_model(model, config.paths.model)
    record = write_record(
        config.paths.model_record,
        config.paths.model,
        sha256,
        **training_record(config),
        drift=drift,
    )
    return {"model": Path(config.paths.model), "model_record": record}
