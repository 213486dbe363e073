"""Errors as the shell shows them: an `ErrorRecord` (message, category, the command and
the place in the script it came from, laid out as PowerShell does), the
`TerminatingError` that stops a statement, and `record_from_exception`, the one place
that turns any exception (a casarray error, a shell runtime error, anything else) into
a record."""

from __future__ import annotations

from dataclasses import dataclass

from casarray.errors import CasarrayError
from casarray.shell.values import ShellRuntimeError


@dataclass
class ErrorRecord:
    """An error as PowerShell shows it: message, where, category, target."""

    message: str
    category: str = "NotSpecified"
    command: str | None = None
    target: str | None = None
    exception: str = "RuntimeException"
    pos: int | None = None
    source: str | None = None
    error_id: str | None = None

    def location(self) -> tuple[int, int, str] | None:
        if self.pos is None or self.source is None:
            return None
        before = self.source[: self.pos]
        line = before.count("\n") + 1
        start = before.rfind("\n") + 1
        end = self.source.find("\n", self.pos)
        text = self.source[start : end if end != -1 else len(self.source)]
        return line, self.pos - start + 1, text

    def format(self) -> str:
        head = f"{self.command} : {self.message}" if self.command else self.message
        lines = [head]
        where = self.location()
        if where is not None:
            line, column, text = where
            lines.append(f"At line:{line} char:{column}")
            lines.append(f"+ {text}")
            lines.append("+ " + " " * (column - 1) + "~" * max(1, len(text) - column + 1))
        target = self.target if self.target is not None else ""
        kind = "String" if self.target is not None else ""
        info = f"{self.category}: ({target}:{kind}) [{self.command or ''}], {self.exception}"
        lines.append(f"    + CategoryInfo          : {info}")
        error_id = self.error_id or (
            f"{self.exception},{self.command}" if self.command else self.exception
        )
        lines.append(f"    + FullyQualifiedErrorId : {error_id}")
        return "\n".join(lines)


class TerminatingError(Exception):
    """Stops the current statement; carries the record to show."""

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


def record_from_exception(
    exc: BaseException, command: str | None, pos: int | None, source: str | None
) -> ErrorRecord:
    if isinstance(exc, TerminatingError):
        return exc.record
    if isinstance(exc, ShellRuntimeError):
        return ErrorRecord(
            exc.message,
            category=exc.category,
            command=command,
            exception="RuntimeException",
            pos=exc.pos if exc.pos is not None else pos,
            source=source,
        )
    if isinstance(exc, CasarrayError):
        return ErrorRecord(
            exc.message,
            category=exc.category,
            command=command,
            target=exc.target,
            exception=type(exc).__name__,
            pos=pos,
            source=source,
        )
    return ErrorRecord(
        f"{type(exc).__name__}: {exc}",
        command=command,
        exception=type(exc).__name__,
        pos=pos,
        source=source,
    )
