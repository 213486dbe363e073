"""Serialising server responses (RFC 3501 section 7): strings as atoms, quoted strings
or literals as their content requires, flag lists, UID sets, dates, and status lines
whose human-readable text can never break the framing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from casarray.mailstore.interface import SYSTEM_FLAGS, Folder
from casarray.wire import utf7

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SYSTEM_ORDER = {flag: i for i, flag in enumerate(SYSTEM_FLAGS)}
RECENT = "\\Recent"
CRLF = b"\r\n"


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def string(value: str | bytes) -> bytes:
    """A quoted string when the value allows (7-bit, no CR/LF/NUL, not long), else a
    literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= 1024 and _QUOTABLE.fullmatch(data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def mailbox(name: str) -> bytes:
    """A mailbox name on the wire: modified UTF-7, always quoted (as Dovecot does)."""
    return string(utf7.encode(name))


def status(folder: Folder, items: Iterable[str], more: Mapping[str, int] | None = None) -> bytes:
    """`* STATUS "name" (MESSAGES 3 ...)` with `items` (STATUS item names) in order;
    `more` gives the values of items the folder doesn't carry (QUOTA's SIZE)."""
    values = {
        **(more or {}),
        "MESSAGES": folder.exists,
        "RECENT": folder.recent,
        "UIDNEXT": folder.uid_next,
        "UIDVALIDITY": folder.uid_validity,
        "UNSEEN": folder.unseen,
        "HIGHESTMODSEQ": folder.highest_modseq,
    }
    data = " ".join(f"{item} {values[item]}" for item in dict.fromkeys(items))
    return b"* STATUS %s (%s)\r\n" % (mailbox(folder.name), data.encode("ascii"))


def text(value: str) -> str:
    """Human-readable response text: printable ASCII on one line (other characters
    become "?", control characters a space)."""
    return _NON_ASCII.sub("?", _UNSAFE_TEXT.sub(" ", value)).strip() or "-"


def tagged(tag: str, status: str, message: str, code: str | None = None) -> bytes:
    head = f"{tag} {status} " + (f"[{code}] " if code else "")
    return (head + text(message)).encode("ascii") + CRLF


def _flag_key(flag: str) -> tuple[int, str]:
    return (_SYSTEM_ORDER.get(flag, len(_SYSTEM_ORDER)), flag)


@lru_cache(maxsize=4096)
def flag_list(flags: frozenset[str], recent: bool = False) -> bytes:
    """`(\\Seen \\Flagged $Label1)`: system flags in RFC order, then keywords sorted;
    \\Recent first when the message is recent for this session."""
    ordered = sorted(flags, key=_flag_key)
    if recent:
        ordered.insert(0, RECENT)
    return ("(" + " ".join(ordered) + ")").encode("utf-8", "replace")


def uid_set(uids: Sequence[int]) -> str:
    """`1:3,7,9:10` for an ascending list of UIDs (order kept, runs folded)."""
    parts: list[str] = []
    i = 0
    n = len(uids)
    while i < n:
        j = i
        while j + 1 < n and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(parts)


def date_time(value: datetime) -> bytes:
    """An IMAP date-time: `"17-Jul-1996 02:44:25 -0700"`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{value.day:02d}-{MONTHS[value.month - 1]}-{value.year:04d} '
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode("ascii")
