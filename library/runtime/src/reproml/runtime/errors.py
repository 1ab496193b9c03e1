"""Errors the CLI reports as one clear message (and exit code 1) instead of a traceback."""


class ProjectError(Exception):
    """Base class: the message names the problem and the fix."""


class ConfigError(ProjectError):
    """params.yaml (or an override) does not fit the schema."""


class StaleParamsError(ProjectError):
    """params.yaml is not what conf/ composes to."""


class ModelFileError(ProjectError):
    """A model file is missing, or is not the file that was recorded."""


class DriftError(ProjectError):
    """The installed environment is not the locked one."""


class VerificationError(ProjectError):
    """A rebuilt output differs from the one the pipeline produced."""


class DataError(ProjectError):
    """A table does not fit its schema; the message names the file, the column and the fix."""


class ContractError(ProjectError):
    """A model's predictions or scores break the contract: one label or finite number per
    row, from the classes it was trained on, and metrics in their ranges."""
