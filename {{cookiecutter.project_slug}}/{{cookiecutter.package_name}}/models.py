"""The model: preprocessing from the schema, then the estimator conf/model/*.yaml names through
Hydra's ``_target_`` (any scikit-learn-compatible classifier or regressor, a class of
estimators.py included). A new model is one YAML file; docs/own-model.md says how to write it.

reproml.runtime.model_config checks the file before anything is built: every ``_target_``
(nested ones too) must be an estimator class, or be listed under ``_allowed_targets_``; every
key must be one the class or its library takes (``_pass_through_`` lets one through); values
meet the class's own constraints; the class fits the dataset's task. It then instantiates the
estimator with the settings that make its library retrain to the same bytes.
"""

from typing import Any

from reproml.runtime.model_config import instantiate

from . import estimators  # noqa: F401  (the team's classes: a code dependency of train)
from .config import ProjectConfig
from .features import preprocessor


def build(config: ProjectConfig, source: str = "params.yaml") -> Any:
    """The unfitted pipeline: preprocessing, then the configured estimator, seeded."""
    from sklearn.pipeline import Pipeline

    estimator = instantiate(config.model, config.data.task, config.data.name, config.seed, source)
    return Pipeline(
        [("preprocess", preprocessor(config.data, config.preprocess)), ("model", estimator)]
    )
