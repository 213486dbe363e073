"""APPEND with its extensions: MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and binary
literals (RFC 3516), without I/O.

The grammar (RFC 3502, 4469 and 3516 together):

    append         = "APPEND" SP mailbox 1*(SP append-message)
    append-message = [flag-list SP] [date-time SP] append-data
    append-data    = literal / literal8 / "CATENATE" SP "(" cat-part *(SP cat-part) ")"
    cat-part       = "TEXT" SP (literal / literal8) / "URL" SP astring

Several messages are stored all or none, in one store transaction (`append_many`), and
APPENDUID names their UIDs as a set. A CATENATE URL names a part of a message in one
of the user's own mailboxes (`imapurl`); one that can't be resolved fails the whole
command with `NO [BADURL url]`, and a destination that doesn't exist is reported
(TRYCREATE) before any URL is looked at. A message sent as a literal8 (or built from
one) is stored with its `binary` parts re-encoded as base64 (`encode_binary_parts`),
so BODY[] stays 7-bit clean while BINARY[] gives the bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from casarray.access.imap import commands as c
from casarray.access.imap import responses as r
from casarray.access.imap.commands import ParseError
from casarray.access.imap.imapurl import BadUrl, resolve, url_code
from casarray.mailstore.interface import (
    Appended,
    FolderNotFound,
    MailboxStore,
    MailstoreError,
)

if TYPE_CHECKING:
    from casarray.access.imap.parser import CommandParser

MAX_MESSAGES = 1000  # messages in one MULTIAPPEND
MAX_PARTS = 100  # parts in one CATENATE


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the session answers: the tagged status, its text and response code."""

    status: str
    text: str
    code: str | None = None


def parse_append(p: CommandParser, tag: str, name: str) -> c.Append:
    """The APPEND command's arguments (see the module docstring)."""
    p.sp(name)
    mailbox = p.mailbox()
    messages: list[c.AppendMessage] = []
    while True:
        p.sp("the mailbox name" if not messages else "the message")
        messages.append(_message(p))
        if p.at_end():
            break
        if len(messages) >= MAX_MESSAGES:
            raise ParseError(f"Too many messages in one APPEND (at most {MAX_MESSAGES})")
    return c.Append(tag, name, mailbox, tuple(messages))


def _message(p: CommandParser) -> c.AppendMessage:
    flags: tuple[str, ...] = ()
    when: datetime | None = None
    if p.peek_char("("):
        flags = tuple(f for f in p.flag_list() if f != "\\Recent")
        p.sp("the flag list")
    if p.peek_char('"'):
        when = p.date_time()
        p.sp("the date-time")
    if p.peek_word(b"CATENATE"):
        p.skip(len("CATENATE"))
        p.sp("CATENATE")
        parts, binary = _catenate(p)
        return c.AppendMessage(flags, when, parts, binary, catenate=True)
    data = p.literal8()
    if data is not None:
        return c.AppendMessage(flags, when, (data,), binary=True)
    data = p.literal()
    if data is None:
        raise ParseError("Expected the message as a literal (or CATENATE)")
    return c.AppendMessage(flags, when, (data,))


def _catenate(p: CommandParser) -> tuple[tuple[bytes | c.CatenateUrl, ...], bool]:
    p.char("(", "to open the CATENATE parts")
    parts: list[bytes | c.CatenateUrl] = []
    binary = False
    while True:
        word = p.atom("TEXT or URL").upper()
        p.sp(word)
        if word == "TEXT":
            data = p.literal8()
            if data is not None:
                binary = True
            else:
                data = p.literal()
            if data is None:
                raise ParseError("Expected a literal after TEXT")
            parts.append(data)
        elif word == "URL":
            url = p.astring_bytes("an IMAP URL").decode("utf-8", "replace")
            parts.append(c.CatenateUrl(url))
        else:
            raise ParseError(f"Unknown CATENATE part {word}; expected TEXT or URL")
        if len(parts) > MAX_PARTS:
            raise ParseError(f"Too many CATENATE parts (at most {MAX_PARTS})")
        if p.try_char(")"):
            return tuple(parts), binary
        p.sp("a CATENATE part")


def _build(store: MailboxStore, user: str, message: c.AppendMessage, limit: int) -> bytes:
    """The bytes of one message: its literal, or its CATENATE parts joined."""
    from casarray.mailstore.mime.binary import encode_binary_parts

    chunks: list[bytes] = []
    size = 0
    for part in message.parts:
        data = part if isinstance(part, bytes) else resolve(store, user, part.url)
        size += len(data)
        if size > limit:
            raise _TooBig(size)
        chunks.append(data)
    data = b"".join(chunks)
    return encode_binary_parts(data) if message.binary else data


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def run_append(store: MailboxStore, user: str, cmd: c.Append, limit: int) -> Outcome:
    """Stores the messages of `cmd` (all or none); the tagged answer."""
    if any(message.catenate for message in cmd.messages):
        try:  # a missing destination is reported before any URL is looked at
            store.folder(cmd.mailbox)
        except FolderNotFound:
            return Outcome("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")
    built: list[tuple[bytes, tuple[str, ...], datetime | None]] = []
    for message in cmd.messages:
        try:
            data = _build(store, user, message, limit)
        except BadUrl as exc:
            return Outcome("NO", exc.reason, f"BADURL {url_code(exc.url)}")
        except _TooBig as exc:
            return Outcome(
                "NO", f"The message would be {exc.size} bytes; the limit is {limit}", "TOOBIG"
            )
        if not data:
            return Outcome("NO", "An empty message can't be appended")
        built.append((data, message.flags, message.date))
    try:
        if len(built) == 1:
            appended = [store.append(cmd.mailbox, *built[0])]
        else:
            appended = store.append_many(cmd.mailbox, built)
    except FolderNotFound:
        return Outcome("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")
    except MailstoreError as exc:
        return Outcome("NO", exc.message, exc.code)
    return Outcome("OK", "APPEND completed", _appenduid(appended))


def _appenduid(appended: list[Appended]) -> str:
    uids = r.uid_set([a.uid for a in appended])
    return f"APPENDUID {appended[0].uid_validity} {uids}"
