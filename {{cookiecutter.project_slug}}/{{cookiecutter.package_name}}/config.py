"""The typed schema of params.yaml, and the one function that loads it.

Hydra composes ``conf/`` into params.yaml (DVC does the same for ``dvc exp run -S``), but DVC
composes without importing this package, so the schema is enforced here, when a stage loads
its parameters: a typo or a wrong type is an error that names the key. The model group is
free-form (``_target_`` plus the estimator's own parameters); models.build checks it against the
estimator itself.

Add a key here when you add one to ``conf/``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reproml.runtime.cells import DEFAULT_MISSING, DELIMITERS
from reproml.runtime.errors import ConfigError
from reproml.runtime.params import PARAMS_FILE, TASKS

# A regression target is `number` (read as float64); a class label is one of the others.
LABEL_TYPES = ("string", "integer", "boolean", "number")
REGRESSION_LABEL = "number"
SPLIT_KINDS = ("stratified", "group", "time")
# What a datetime column gives the model (features.date_parts computes them): `dates:` in
# conf/data/<name>.yaml names them per column; a column it does not name gets DEFAULT_DATE_PARTS.
DATE_PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour")
DEFAULT_DATE_PARTS = ("year", "month", "day_of_week", "day_of_year")
# What a row whose target is missing does: stop the stage naming it, or leave the row out.
MISSING_TARGET = ("refuse", "drop")
NUMERIC_IMPUTERS = ("mean", "median", "most_frequent")
CATEGORICAL_ENCODINGS = ("onehot", "ordinal")


@dataclass
class FeatureColumns:
    """The feature columns of a table, by kind."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    boolean: list[str] = field(default_factory=list)
    # Read and checked as dates; each reaches the model as the parts `dates:` names.
    datetime: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """A table's schema (conf/data/<name>.yaml): every column it has, and what each one is."""

    name: str
    file: str
    target: str
    # classification or regression: required, so a schema never trains the wrong kind of
    # model by default. `make data` infers it from the target and says how to change it.
    task: str
    label: str = "string"
    features: FeatureColumns = field(default_factory=FeatureColumns)
    # Columns read but never used as features (ids); a group split may still use one.
    drop: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=lambda: list(DEFAULT_MISSING))
    # The parts of each datetime column the model sees (year, month, ...: DATE_PARTS); a
    # column not named gets DEFAULT_DATE_PARTS, and `[]` keeps it out of the model.
    dates: dict[str, list[str]] = field(default_factory=dict)
    # The CSV field separator (`make data` sniffs it).
    delimiter: str = ","
    # refuse: a row without a target stops the stage; drop: prepare leaves such rows out.
    missing_target: str = "refuse"

    def date_parts(self, column: str) -> list[str]:
        """What reaches the model from the datetime column ``column``."""
        return list(self.dates.get(column, DEFAULT_DATE_PARTS))


@dataclass
class SplitConfig:
    kind: str = "stratified"
    test_size: float = 0.25
    # The group column (kind: group) or the date column (kind: time).
    column: str | None = None


@dataclass
class PreprocessConfig:
    numeric_impute: str = "median"
    scale_numeric: bool = True
    categorical_encoding: str = "onehot"


@dataclass
class PathsConfig:
    raw_data: str
    train: str
    test: str
    model: str
    model_record: str
    metrics: str
    # The folder of plot tables, one CSV per plot of the task (evaluation.PLOTS).
    plots: str
    verify_report: str
    params_check: str


@dataclass
class ProjectConfig:
    seed: int
    data: DataConfig
    split: SplitConfig
    preprocess: PreprocessConfig
    paths: PathsConfig
    model: dict[str, Any] = field(default_factory=dict)


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
    model = raw.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("_target_"), str):
        raise ConfigError(
            f"{source}: model: expected a mapping with a `_target_` key naming the estimator "
            "class (e.g. sklearn.linear_model.LogisticRegression). Fix: pick a file of "
            "conf/model/ in conf/config.yaml and run `make params`."
        )
    rest = {key: value for key, value in raw.items() if key != "model"}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ProjectConfig), rest)
        missing = sorted(OmegaConf.missing_keys(merged))
        if "data.task" in missing:
            raise ConfigError(
                f"{source}: data.task: missing; a schema declares what its target is. Fix: add "
                f"`task: classification` or `task: regression` to conf/data/"
                f"{OmegaConf.select(merged, 'data.name', default='<name>')}.yaml and run "
                "`make params`."
            )
        if missing:
            raise ConfigError(f"{source}: missing required keys: {', '.join(missing)}")
    except OmegaConfBaseException as error:
        key = error.full_key or "?"
        raise ConfigError(f"{source}: {key}: {error.msg}") from None
    config = OmegaConf.to_object(merged)
    config.model = dict(model)
    _check_choices(config, source)
    _check_columns(config, source)
    return config


def _check_choices(config: ProjectConfig, source: str) -> None:
    choices = [
        ("data.task", config.data.task, TASKS),
        ("data.label", config.data.label, LABEL_TYPES),
        ("data.missing_target", config.data.missing_target, MISSING_TARGET),
        ("data.delimiter", config.data.delimiter, DELIMITERS),
        ("split.kind", config.split.kind, SPLIT_KINDS),
        ("preprocess.numeric_impute", config.preprocess.numeric_impute, NUMERIC_IMPUTERS),
        (
            "preprocess.categorical_encoding",
            config.preprocess.categorical_encoding,
            CATEGORICAL_ENCODINGS,
        ),
    ]
    for key, value, allowed in choices:
        if value not in allowed:
            shown = ", ".join(
                repr(choice) if key == "data.delimiter" else choice for choice in allowed
            )
            raise ConfigError(f"{source}: {key}: {value!r} is not one of {shown}")
    _check_label_fits_task(config.data, source)
    if not 0.0 < config.split.test_size < 1.0:
        raise ConfigError(
            f"{source}: split.test_size: must be between 0 and 1, got {config.split.test_size}"
        )


def _check_label_fits_task(data: DataConfig, source: str) -> None:
    """A regression target is a number, a class label is not: the two keys must agree."""
    regression = data.task == "regression"
    if regression == (data.label == REGRESSION_LABEL):
        return
    if regression:
        problem = f"task: regression needs label: {REGRESSION_LABEL}, got {data.label!r}"
        fix = f"set label: {REGRESSION_LABEL}, or task: classification"
    else:
        problem = f"label: {REGRESSION_LABEL} is a regression target, but task is {data.task!r}"
        others = ", ".join(label for label in LABEL_TYPES if label != REGRESSION_LABEL)
        fix = f"set task: regression, or label to the type of the classes ({others})"
    raise ConfigError(
        f"{source}: data.label: {problem}. Fix: in conf/data/{data.name}.yaml, {fix}."
    )


def _check_columns(config: ProjectConfig, source: str) -> None:
    """Every column is declared once; a group or time split names a declared column."""
    data, seen = config.data, {}
    declared = [("target", [data.target]), ("drop", data.drop)]
    declared += [(f"features.{kind}", columns) for kind, columns in vars(data.features).items()]
    for where, columns in declared:
        for column in columns:
            if column in seen:
                raise ConfigError(
                    f"{source}: data.{where}: column {column!r} is already declared in "
                    f"data.{seen[column]}. Fix: declare each column once in "
                    f"conf/data/{data.name}.yaml."
                )
            seen[column] = where
    if not any(vars(data.features).values()):
        raise ConfigError(f"{source}: data.features: no feature columns are declared")
    _check_dates(data, source)
    _check_file(data, source)
    split = config.split
    if split.kind == "stratified":
        return
    if split.column is None or split.column not in seen:
        raise ConfigError(
            f"{source}: split.column: a {split.kind} split needs a declared column of "
            f"conf/data/{data.name}.yaml, got {split.column!r}. Fix: set split.column."
        )
    if split.kind == "time" and seen[split.column] not in ("features.datetime", "features.numeric"):
        raise ConfigError(
            f"{source}: split.column: {split.column!r} is declared in data.{seen[split.column]};"
            " a time split needs a datetime or numeric column"
        )


def _check_file(data: DataConfig, source: str) -> None:
    """``data.file`` names a file in data/raw (paths.raw_data), not a path out of it: an
    override such as ``data.file=../../.git/config`` would make prepare read any file."""
    name = data.file
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise ConfigError(
            f"{source}: data.file: {name!r} is not a file name in data/raw. Fix: give the "
            "table's file name alone (make data puts the file in data/raw)."
        )


def _check_dates(data: DataConfig, source: str) -> None:
    """``dates:`` names datetime columns, each with parts the features know."""
    for column, parts in data.dates.items():
        if column not in data.features.datetime:
            raise ConfigError(
                f"{source}: data.dates.{column}: {column!r} is not a datetime column of "
                f"conf/data/{data.name}.yaml. Fix: declare it under features: datetime, or "
                "remove it from dates."
            )
        unknown = [part for part in parts if part not in DATE_PARTS]
        if unknown or len(set(parts)) != len(parts):
            problem = f"{unknown[0]!r} is not a date part" if unknown else "a part is named twice"
            raise ConfigError(
                f"{source}: data.dates.{column}: {problem}. Fix: name each part once, from "
                f"{', '.join(DATE_PARTS)} ([] keeps the column out of the model)."
            )


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
