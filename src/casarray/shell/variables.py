"""Variables: scopes (the session's global scope, a child scope per script block run)
and the names that are not stored in any scope ($true, $false, $null, $env:NAME).
Names are case-insensitive."""

from __future__ import annotations

import os
from typing import Any

from casarray.shell.values import ShellRuntimeError, to_string

MISSING = object()  # what a lookup returns for a variable no scope holds


class Scope:
    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.variables: dict[str, Any] = {}

    def lookup(self, name: str) -> Any:
        key = name.lower()
        scope: Scope | None = self
        while scope is not None:
            if key in scope.variables:
                return scope.variables[key]
            scope = scope.parent
        return MISSING

    def set(self, name: str, value: Any) -> None:
        self.variables[name.lower()] = value


def get_variable(scope: Scope, name: str) -> Any:
    """The value of `$name` seen from `scope` ($null when it is not set)."""
    lower = name.lower()
    if lower == "true":
        return True
    if lower == "false":
        return False
    if lower == "null":
        return None
    if lower.startswith("env:"):
        return os.environ.get(name[4:])
    value = scope.lookup(name)
    return None if value is MISSING else value


def set_variable(scope: Scope, name: str, value: Any) -> None:
    """`$name = value` in `scope`; $env:NAME sets the process environment."""
    lower = name.lower()
    if lower in ("true", "false", "null"):
        raise ShellRuntimeError(
            f"Cannot overwrite variable {name} because it is read-only or constant.",
            category="WriteError",
        )
    if lower.startswith("env:"):
        os.environ[name[4:]] = to_string(value)
        return
    scope.set(name, value)
