"""Trace headers (RFC 5321, 4.4): the Received header the service adds, the hop count
that detects loops, and the Return-Path a final delivery adds."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime

MAX_HOPS = 30  # Exchange's default MaxHopCount

_RECEIVED_LINE = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


def header_block(data: bytes) -> bytes:
    """The header section of a message (up to the first empty line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end >= 0:
            return data[: end + len(separator) // 2]
    return data


def hop_count(data: bytes) -> int:
    """The number of Received headers of the message."""
    return len(_RECEIVED_LINE.findall(header_block(data)))


_UNFIT = re.compile(r"[^\x21-\x27\x2a-\x7e]")  # not printable ASCII, or a parenthesis


def _clean(text: str) -> str:
    """A value fit for a header: printable ASCII, no parentheses or CR/LF."""
    return _UNFIT.sub("_", text[:255]) or "unknown"


def received_header(
    *,
    helo: str,
    client_address: str,
    by: str,
    queue_id: str,
    recipient: str | None,
    protocol: str,
    when: datetime,
) -> bytes:
    """Our Received header (RFC 5321 4.4), folded, ending in CRLF. `protocol`: ESMTP,
    ESMTPS, ESMTPA, ESMTPSA (RFC 3848). The queue id follows `id`, so a delivery can be
    found again in a mailbox by it."""
    lines = [
        f"Received: from {_clean(helo)} ({_clean(client_address)})",
        f"\tby {_clean(by)} with {protocol} id {queue_id}",
    ]
    if recipient is not None:
        lines.append(f"\tfor <{_clean(recipient)}>")
    lines[-1] += f"; {format_datetime(when)}"
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def return_path(sender: str) -> bytes:
    """The Return-Path header of a final delivery: `<>` for the null sender."""
    value = sender.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b"")
    return b"Return-Path: <" + value + b">\r\n"


def crlf(data: bytes) -> bytes:
    """`data` with every line ending CRLF (bare LF and bare CR made CRLF)."""
    pairs = data.count(b"\r\n")
    if data.count(b"\n") == pairs and data.count(b"\r") == pairs:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def mentions_queue_id(data: bytes, queue_id: str) -> bool:
    """Whether the header section of `data` has a Received header of ours naming
    `queue_id`."""
    needle = f" id {queue_id}".encode("ascii")
    return needle in header_block(data)
