"""Errors raised by the directory. Each names the object it is about and carries a
PowerShell error category, so the shell can show it the way the Exchange Management
Shell does."""

from __future__ import annotations

from collections.abc import Iterable

from casarray.errors import CasarrayError


class DirectoryError(CasarrayError):
    """Base of every error the directory raises on purpose."""


class InvalidValueError(DirectoryError, ValueError):
    """A parameter value is malformed or out of range."""

    category = "InvalidArgument"

    def __init__(self, parameter: str, value: object, reason: str) -> None:
        super().__init__(
            f"Cannot validate argument on parameter '{parameter}'. The value '{value}' {reason}",
            target=str(value),
        )
        self.parameter = parameter
        self.value = value


class NotFoundError(DirectoryError, LookupError):
    """No object of the kind has that identity."""

    category = "ObjectNotFound"

    def __init__(self, kind: str, identity: str) -> None:
        super().__init__(
            f'The {kind} "{identity}" couldn\'t be found. Make sure you typed the identity '
            f"correctly.",
            target=identity,
        )
        self.kind = kind
        self.identity = identity


class AmbiguousIdentityError(DirectoryError, LookupError):
    """More than one object matches an identity."""

    category = "InvalidArgument"

    def __init__(self, kind: str, identity: str, candidates: Iterable[str]) -> None:
        self.candidates = sorted(candidates)
        listed = ", ".join(self.candidates)
        super().__init__(
            f'The {kind} "{identity}" matches multiple entries: {listed}. Use a more '
            f"specific identity (a GUID or distinguished name).",
            target=identity,
        )
        self.kind = kind
        self.identity = identity


class ConflictError(DirectoryError):
    """The change would break a uniqueness rule; names the object already there."""

    category = "ResourceExists"

    def __init__(self, message: str, *, conflicting: str, target: str | None = None) -> None:
        super().__init__(message, target=target)
        self.conflicting = conflicting


class InUseError(DirectoryError):
    """The object is still referenced; removing it needs -Force or the references gone."""

    category = "InvalidOperation"

    def __init__(self, message: str, *, dependents: Iterable[str], target: str | None = None):
        super().__init__(message, target=target)
        self.dependents = sorted(dependents)


class InvalidOperationError(DirectoryError):
    """The object exists but cannot do what was asked."""

    category = "InvalidOperation"


class SchemaOutOfDateError(DirectoryError):
    """The database holds an older (or unknown) schema."""

    category = "InvalidOperation"


class NotHubTransportServerError(InvalidOperationError):
    """A transport setting (a receive connector, a send connector's source, the
    transport server's settings) names a server without the Hub Transport role."""

    def __init__(self, server: str, roles: str) -> None:
        super().__init__(
            f"The server '{server}' isn't a Hub Transport server (its roles: {roles}); "
            "receive connectors, send connector source servers and transport settings "
            "belong to Hub Transport servers.",
            target=server,
        )
        self.server = server
