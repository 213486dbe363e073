"""Framing of the IMAP command stream, without I/O.

`CommandReader` frames the byte stream: it collects a command line with its literals
(`{n}` synchronising, `{n+}` LITERAL+), asks for continuations, enforces the line and
literal limits, and works whatever the chunk boundaries (byte by byte included).
It yields `RawCommand`s, `NeedContinuation`, `LineTooLong` and `LiteralTooBig`; in raw
line mode (AUTHENTICATE responses, IDLE's DONE) it yields lines. `parser.CommandParser`
then reads the grammar of one `RawCommand`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LITERAL_MARK = re.compile(rb"\{(\d+)(\+?)\}\Z")
TAG = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+")


@dataclass(frozen=True, slots=True)
class RawCommand:
    """A command line split at its literals: `segments[i]` ends with the marker of
    `literals[i]`; the last segment ends the line (CRLF removed)."""

    segments: tuple[bytes, ...]
    literals: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """The client announced a synchronising literal and waits for `+`."""


@dataclass(frozen=True, slots=True)
class LineTooLong:
    tag: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class LiteralTooBig:
    tag: str | None
    command: str
    size: int
    limit: int
    synchronizing: bool


ReaderEvent = RawCommand | NeedContinuation | LineTooLong | LiteralTooBig


def tag_of(line: bytes) -> str | None:
    """The tag of a command line, or None when it has no valid one."""
    head = line.split(b" ", 1)[0]
    return head.decode("ascii") if TAG.fullmatch(head) else None


def command_of(line: bytes) -> str:
    words = line.split(b" ", 3)[1:]
    name = words[0].upper().decode("ascii", "replace") if words else ""
    if name == "UID" and len(words) > 1:
        name += " " + words[1].upper().decode("ascii", "replace")
    return name


class CommandReader:
    """Frames commands out of the bytes received (sans-IO: feed bytes, take events)."""

    __slots__ = (
        "_buf",
        "_line_total",
        "_literal",
        "_literal_total",
        "_literals",
        "_max_line",
        "_max_literal",
        "_overlong",
        "_overlong_head",
        "_rejected",
        "_remaining",
        "_scanned",
        "_segments",
    )

    def __init__(self, max_line: int, max_literal: int) -> None:
        self._max_line = max_line
        self._max_literal = max_literal
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no LF
        self._overlong = False  # discarding the rest of a too long line
        self._overlong_head = b""
        self._reset()

    def _reset(self) -> None:
        self._segments: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal: bytearray | None = None
        self._remaining = 0  # literal bytes still to come
        self._line_total = 0
        self._literal_total = 0
        self._rejected: LiteralTooBig | None = None  # skipping a LITERAL+ command

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (at STARTTLS: plaintext sent after the command
        must not be taken as commands; CVE-2011-0411)."""
        self._buf.clear()
        self._scanned = 0
        self._overlong = False
        self._reset()

    def take_buffered(self) -> bytes:
        """What was fed and not yet parsed, taken out (at COMPRESS: the rest of the
        read is compressed and goes back to the transport to be inflated)."""
        data = bytes(self._buf)
        self.clear()
        return data

    @property
    def max_literal(self) -> int:
        return self._max_literal

    @max_literal.setter
    def max_literal(self, value: int) -> None:
        """The literal limit for commands started from now on."""
        self._max_literal = value

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def in_command(self) -> bool:
        """A command has been started but not completed."""
        return bool(self._segments) or bool(self._buf)

    def _take_line(self, limit: int) -> bytes | LineTooLong | None:
        """The next line without its CRLF (a lone LF is accepted too); LineTooLong once
        a line over `limit` has been read to its end and dropped."""
        buf = self._buf
        while True:
            idx = buf.find(b"\n", self._scanned)
            if idx < 0:
                if len(buf) > limit or self._overlong:
                    if not self._overlong:
                        self._overlong = True
                        self._overlong_head = bytes(buf[:200])
                    buf.clear()
                    self._scanned = 0
                else:
                    self._scanned = len(buf)
                return None
            line = bytes(buf[:idx])
            del buf[: idx + 1]
            self._scanned = 0
            if self._overlong:
                self._overlong = False
                head = self._overlong_head
                self._overlong_head = b""
                return LineTooLong(tag_of(head) if b" " in head else None, limit)
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                return LineTooLong(tag_of(line), limit)
            return line

    def next_line(self) -> bytes | LineTooLong | None:
        """Raw line mode: the next line, or None until one is complete."""
        return self._take_line(self._max_line)

    def next_event(self) -> ReaderEvent | None:
        """The next framed event, or None until more bytes arrive."""
        while True:
            if self._remaining:
                if not self._buf:
                    return None
                take = min(self._remaining, len(self._buf))
                if self._literal is not None:
                    self._literal += self._buf[:take]
                del self._buf[:take]
                self._remaining -= take
                if self._remaining:
                    return None
                if self._literal is not None:
                    self._literals.append(bytes(self._literal))
                    self._literal = None
                continue
            room = self._max_line - self._line_total
            line = self._take_line(max(room, 0))
            if line is None:
                return None
            if isinstance(line, LineTooLong):
                head = self._segments[0] if self._segments else None
                tag = tag_of(head) if head is not None else line.tag
                self._reset()
                return LineTooLong(tag, self._max_line)
            self._line_total += len(line)
            self._segments.append(line)
            mark = LITERAL_MARK.search(line)
            if mark is None:
                return self._finish()
            digits, plus = mark.group(1), mark.group(2)
            size = int(digits) if len(digits) <= 15 else 1 << 62
            if self._rejected is not None:
                if not plus:  # the client waits for a continuation we will not send
                    return self._finish()
                self._remaining = size  # discarded
                continue
            self._literal_total += size
            if size > self._max_literal or self._literal_total > self._max_literal:
                first = self._segments[0]
                rejected = LiteralTooBig(
                    tag_of(first), command_of(first), size, self._max_literal, not plus
                )
                if not plus:
                    self._reset()
                    return rejected
                self._rejected = rejected
                self._remaining = size
                continue
            self._remaining = size
            self._literal = bytearray()
            if size == 0:
                self._literals.append(b"")
                self._literal = None
            if not plus:
                return NeedContinuation()

    def _finish(self) -> RawCommand | LiteralTooBig:
        rejected = self._rejected
        raw = RawCommand(tuple(self._segments), tuple(self._literals))
        self._reset()
        return rejected if rejected is not None else raw
