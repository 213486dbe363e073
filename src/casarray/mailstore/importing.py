"""Messages to import from files: one .eml file, a folder of them, or an mbox file.

An mbox file (RFC 4155) is split at its "From " separator lines: a line beginning with
"From " that opens the file or follows an empty line. The empty line before a separator
ends the previous message and is not part of it; quoted lines (">From ", ">>From " ...)
lose one ">" (the mboxrd convention, which mboxo files read the same way except for
bodies that really began with ">From "). The separator's date becomes the message's
INTERNALDATE; the Status and X-Status headers mutt and Thunderbird keep there give its
flags (R: \\Seen, A: \\Answered, F: \\Flagged, T: \\Draft, D: \\Deleted).

Line endings become CRLF (as IMAP sends messages), so a message's size is the size a
client sees. An .eml file's INTERNALDATE is its Date header's, else the file's time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path

from casarray.errors import CasarrayError

EML_SUFFIXES = (".eml",)
_BARE_LF = re.compile(rb"\r?\n")
_QUOTED_FROM = re.compile(rb"^>(>*From )")
_FROM_LINE = re.compile(rb"^From \S*\s+(.*?)\s*$")
_STATUS_FLAGS = {"R": "\\Seen"}
_X_STATUS_FLAGS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}


class ImportSourceError(CasarrayError):
    """The path doesn't exist, or holds nothing that can be imported."""


@dataclass(frozen=True)
class SourceMessage:
    data: bytes
    internal_date: datetime | None
    flags: tuple[str, ...]
    source: str  # the file, and "#n" for the n-th message of an mbox file


def crlf(data: bytes) -> bytes:
    """`data` with every line ending CRLF."""
    return _BARE_LF.sub(b"\r\n", data)


def is_mbox(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"From "


def read_messages(path: Path) -> Iterator[SourceMessage]:
    """The messages of `path`: an mbox file, a message file, or a folder of .eml files
    (in name order, not descending into subfolders)."""
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EML_SUFFIXES
        )
        if not files:
            raise ImportSourceError(f"The folder '{path}' has no .eml files.")
        for file in files:
            yield read_eml(file)
    elif path.is_file():
        if is_mbox(path):
            yield from read_mbox(path)
        else:
            yield read_eml(path)
    else:
        raise ImportSourceError(f"Cannot find path '{path}' because it does not exist.")


def _headers(data: bytes) -> dict[str, str]:
    end = len(data)
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = data.find(separator)
        if at != -1:
            end = min(end, at)
    parsed = BytesHeaderParser(policy=compat32).parsebytes(data[:end] + b"\r\n\r\n")
    return {key.lower(): str(value) for key, value in parsed.items()}


def _header_date(headers: dict[str, str]) -> datetime | None:
    value = headers.get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _status_flags(headers: dict[str, str]) -> tuple[str, ...]:
    flags = [flag for ch, flag in _STATUS_FLAGS.items() if ch in headers.get("status", "")]
    flags += [flag for ch, flag in _X_STATUS_FLAGS.items() if ch in headers.get("x-status", "")]
    return tuple(flags)


def read_eml(path: Path) -> SourceMessage:
    data = crlf(path.read_bytes())
    if not data.strip():
        raise ImportSourceError(f"The file '{path}' is empty.")
    date = _header_date(_headers(data))
    if date is None:
        date = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
    return SourceMessage(data, date, (), str(path))


def _separator_date(line: bytes) -> datetime | None:
    """The asctime date of an mbox "From " line ("From a@b Thu Nov 24 19:53:00 2005"),
    which RFC 4155 says is UTC."""
    match = _FROM_LINE.match(line)
    if not match:
        return None
    text = " ".join(match.group(1).decode("ascii", "replace").split())
    words = text.split(" ")
    for count in (5, 6):  # asctime, or asctime with a zone/offset after it
        candidate = " ".join(words[-count:])
        for form in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M:%S %Y %z"):
            try:
                parsed = datetime.strptime(candidate, form)
            except ValueError:
                continue
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def split_mbox(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(separator line, message) pairs of an mbox file's bytes; the message unquoted,
    with its original line endings."""
    lines = data.splitlines(keepends=True)
    separator: bytes | None = None
    body: list[bytes] = []
    previous_blank = True

    def finish() -> tuple[bytes, bytes]:
        if body and body[-1] in (b"\n", b"\r\n"):
            body.pop()  # the empty line before the next separator
        return separator or b"", b"".join(body)

    for line in lines:
        if line.startswith(b"From ") and previous_blank:
            if separator is not None:
                yield finish()
            separator, body = line, []
        elif separator is not None:
            body.append(_QUOTED_FROM.sub(rb"\1", line))
        previous_blank = line in (b"\n", b"\r\n")
    if separator is not None:
        yield finish()


def read_mbox(path: Path) -> Iterator[SourceMessage]:
    for n, (separator, message) in enumerate(split_mbox(path.read_bytes()), start=1):
        data = crlf(message)
        headers = _headers(data)
        date = _separator_date(separator.rstrip(b"\r\n")) or _header_date(headers)
        yield SourceMessage(data, date, _status_flags(headers), f"{path}#{n}")
