"""Errors of the tool commands. They are kept out of runtime/errors.py because no stage
raises them: the runtime is a dependency of every stage, and these change with the tools."""

from ..runtime.errors import ProjectError


class LockError(ProjectError):
    """The lock files disagree with pyproject.toml or with each other."""


class RebuildError(ProjectError):
    """A rebuild could not be carried out (as opposed to: it ran and did not match)."""


class RegistryError(ProjectError):
    """A release, promotion, rollback or gc was refused; the message names the gate and fix."""


class RemoteError(ProjectError):
    """The DVC remote cannot be read (credentials, endpoint, bucket): named, never "missing"."""


class RecordsError(ProjectError):
    """The reproducibility records could not be exchanged with the git remote."""


class SigningError(ProjectError):
    """Something could not be signed: the message names the missing key and how to set it."""
