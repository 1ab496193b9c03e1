"""The typed schema of params.yaml, and the one function that loads it.

Hydra composes ``conf/`` into params.yaml (DVC does the same for ``dvc exp run -S``), but DVC
composes without importing this package, so the schema is enforced here, when a stage loads
its parameters: a typo or a wrong type is an error that names the key.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PARAMS_FILE = "params.yaml"


@dataclass
class DataConfig:
    name: str
    target: str = "target"


@dataclass
class SplitConfig:
    test_size: float = 0.25


@dataclass
class PathsConfig:
    raw_data: str
    train: str
    test: str
    model: str
    model_record: str
    metrics: str
    confusion: str
    verify_report: str
    params_check: str


@dataclass
class LogRegConfig:
    family: str = "logreg"
    C: float = 1.0
    max_iter: int = 2000


@dataclass
class RandomForestConfig:
    family: str = "random_forest"
    n_estimators: int = 200
    max_depth: int | None = None
    min_samples_leaf: int = 1


@dataclass
class HistGBConfig:
    family: str = "hist_gb"
    learning_rate: float = 0.1
    max_iter: int = 100
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0


MODEL_SCHEMAS: dict[str, type] = {
    "logreg": LogRegConfig,
    "random_forest": RandomForestConfig,
    "hist_gb": HistGBConfig,
}


@dataclass
class ProjectConfig:
    seed: int
    data: DataConfig
    split: SplitConfig
    paths: PathsConfig
    model: Any = field(default=None)


def load_params(path: str | Path = PARAMS_FILE) -> ProjectConfig:
    """Read and validate params.yaml; every stage gets its configuration from here."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing: run `make params` to compose it from conf/"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return validate(raw, source=str(path))


def validate(raw: Any, source: str = PARAMS_FILE) -> ProjectConfig:
    """Check ``raw`` against the schema and return it typed; errors name the offending key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    _reject_interpolations(raw, source, prefix="")
    model_raw = raw.get("model")
    if not isinstance(model_raw, dict):
        raise ConfigError(f"{source}: model: expected a mapping with a `family` key")
    family = model_raw.get("family")
    if family not in MODEL_SCHEMAS:
        known = ", ".join(sorted(MODEL_SCHEMAS))
        raise ConfigError(f"{source}: model.family: {family!r} is not a known family ({known})")

    rest = {key: value for key, value in raw.items() if key != "model"}
    prefix = ""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ProjectConfig), rest)
        _require_complete(merged, source, prefix)
        prefix = "model."
        model = OmegaConf.merge(OmegaConf.structured(MODEL_SCHEMAS[family]), model_raw)
        _require_complete(model, source, prefix)
    except OmegaConfBaseException as error:
        key = f"{prefix}{error.full_key}" if error.full_key else prefix.rstrip(".")
        raise ConfigError(f"{source}: {key}: {error.msg}") from None

    config = OmegaConf.to_object(merged)
    config.model = OmegaConf.to_object(model)
    if not 0.0 < config.split.test_size < 1.0:
        raise ConfigError(
            f"{source}: split.test_size: must be between 0 and 1, got {config.split.test_size}"
        )
    return config


def _require_complete(node: Any, source: str, prefix: str) -> None:
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(node))
    if missing:
        names = ", ".join(prefix + key for key in missing)
        raise ConfigError(f"{source}: missing required keys: {names}")


def _reject_interpolations(node: Any, source: str, prefix: str) -> None:
    """params.yaml must be fully resolved: ``${oc.env:...}`` would leak the machine into it."""
    if isinstance(node, dict):
        for key, value in node.items():
            _reject_interpolations(value, source, f"{prefix}{key}.")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _reject_interpolations(value, source, f"{prefix}{index}.")
    elif isinstance(node, str) and "${" in node:
        raise ConfigError(
            f"{source}: {prefix.rstrip('.')}: unresolved interpolation {node!r}; "
            "params.yaml must hold plain values (run `make params`)"
        )
