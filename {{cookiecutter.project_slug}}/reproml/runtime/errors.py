# Maintained by the reproml template: `cruft update` replaces this file (reproml/README.md).
"""Errors the CLI reports as one clear message (and exit code 1) instead of a traceback."""


class ProjectError(Exception):
    """Base class: the message names the problem and the fix."""


class ConfigError(ProjectError):
    """params.yaml (or an override) does not fit the schema."""


class StaleParamsError(ProjectError):
    """params.yaml is not what conf/ composes to."""


class LockError(ProjectError):
    """The lock files disagree with pyproject.toml or with each other."""


class ModelFileError(ProjectError):
    """A model file is missing, or is not the file that was recorded."""


class DriftError(ProjectError):
    """The installed environment is not the locked one."""


class VerificationError(ProjectError):
    """A rebuilt output differs from the one the pipeline produced."""


class RebuildError(ProjectError):
    """A rebuild could not be carried out (as opposed to: it ran and did not match)."""


class RegistryError(ProjectError):
    """A release, promotion, rollback or gc was refused; the message names the gate and fix."""


class RemoteError(ProjectError):
    """The DVC remote cannot be read (credentials, endpoint, bucket): named, never "missing"."""


class RecordsError(ProjectError):
    """The reproducibility records could not be exchanged with the git remote."""


class DataError(ProjectError):
    """A table does not fit its schema; the message names the file, the column and the fix."""


class SigningError(ProjectError):
    """Something could not be signed: the message names the missing key and how to set it."""


class ContractError(ProjectError):
    """A model's predictions or scores break the contract: one label or finite number per
    row, from the classes it was trained on, and metrics in their ranges."""
