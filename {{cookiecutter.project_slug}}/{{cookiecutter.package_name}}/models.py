"""Estimators from conf/model/*.yaml, through Hydra's ``_target_`` convention.

Any scikit-learn-compatible classifier works, a class of this package included: a new model
is one YAML file naming the class and its hyperparameters. They are checked against the
estimator's own parameters (names) and its own constraints (types and ranges), so a typo in
``dvc exp run -S model.x=...`` names the key instead of failing deep inside ``fit``.
"""

import difflib
import inspect
import re
from typing import Any

from . import estimators  # noqa: F401  (the team's classes: a code dependency of train)
from .config import ProjectConfig
from .features import preprocessor
from .repro.errors import ConfigError

TARGET_KEY = "_target_"
SEED_PARAMETER = "random_state"
_CONSTRAINT_KEY = re.compile(r"The '(\w+)' parameter")


def estimator_class(model: dict[str, Any], source: str = "params.yaml") -> type:
    """The class ``model._target_`` names, imported."""
    from hydra.utils import get_class

    target = model[TARGET_KEY]
    try:
        return get_class(target)
    except Exception as error:  # Hydra wraps import and attribute errors alike
        raise ConfigError(
            f"{source}: model._target_: cannot import {target!r} ({error}). Fix: name a class "
            "as module.Class, e.g. sklearn.ensemble.RandomForestClassifier."
        ) from None


def parameter_names(cls: type) -> list[str]:
    getter = getattr(cls, "_get_param_names", None)
    if getter is not None:
        return list(getter())
    signature = inspect.signature(cls.__init__)
    return [name for name in signature.parameters if name != "self"]


def check_hyperparameters(model: dict[str, Any], source: str = "params.yaml") -> type:
    """Refuse keys the estimator does not take, naming the key and the closest real ones."""
    cls = estimator_class(model, source)
    known = parameter_names(cls)
    for key in model:
        if key != TARGET_KEY and key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(
                f"{source}: model.{key}: {cls.__name__} has no parameter {key!r}; {hint}"
                f"Fix: use one of its parameters ({', '.join(known)})."
            )
    return cls


def build(config: ProjectConfig, source: str = "params.yaml"):
    """The unfitted pipeline: preprocessing from the schema, then the configured estimator,
    seeded from the project seed when it takes a ``random_state``."""
    from hydra.utils import instantiate
    from sklearn.pipeline import Pipeline

    cls = check_hyperparameters(config.model, source)
    extra = {}
    if SEED_PARAMETER in parameter_names(cls) and SEED_PARAMETER not in config.model:
        extra[SEED_PARAMETER] = config.seed
    # "all": lists and mappings reach the estimator as plain Python, not OmegaConf nodes
    # (which would end up in the pickle).
    estimator = instantiate(config.model, _convert_="all", **extra)
    # scikit-learn's own estimators declare their constraints; a team class may not.
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None and hasattr(estimator, "_parameter_constraints"):
        from sklearn.utils._param_validation import InvalidParameterError

        try:
            validate()
        except InvalidParameterError as error:
            found = _CONSTRAINT_KEY.search(str(error))
            key = f"model.{found.group(1)}" if found else "model"
            raise ConfigError(f"{source}: {key}: {error}") from None
    return Pipeline(
        [("preprocess", preprocessor(config.data, config.preprocess)), ("model", estimator)]
    )
