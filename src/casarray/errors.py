"""The root of every error casarray raises on purpose.

Each package's errors derive from `CasarrayError` (as dnspython's from `DNSException`
and pymap's from `ResponseError`): the message is for a person and names what was
wrong; `category` is the PowerShell ErrorCategory the Exchange Management Shell shows
for it (`InvalidArgument`, `ObjectNotFound`, ...); `target` is the object it is about,
when there is one. The shell shows any `CasarrayError` as an error record; a command
line prints its message and exits 1. Nothing here imports another casarray module.
"""

from __future__ import annotations


class CasarrayError(Exception):
    """An error casarray raises on purpose; `str()` and `message` say what was wrong."""

    category = "NotSpecified"

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
