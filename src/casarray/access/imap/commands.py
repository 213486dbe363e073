"""Parsed IMAP commands as frozen dataclasses, one per command, plus the values they
carry: sequence sets, FETCH attributes with their body sections, STORE modes. The
parser (`parser.py`) makes them; the session executes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from casarray.access.imap.search import SearchKey
from casarray.access.imap.sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class Section:
    """A body section: part numbers, then HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT,
    TEXT, MIME or nothing."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """The section as written between the brackets, normalised (upper case)."""
        pieces = [".".join(str(p) for p in self.part)] if self.part else []
        if self.text:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """One FETCH data item: `name` is UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE,
    BODY, BODYSTRUCTURE, RFC822, RFC822.HEADER, RFC822.TEXT or BODY[] (with `section`;
    `peek` for BODY.PEEK; `partial` = (origin, length))."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        if self.name == "BODY[]":
            return not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" etc. for UID commands


@dataclass(frozen=True, slots=True)
class Simple(Command):
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, EXPUNGE, UNSELECT, IDLE,
    NAMESPACE."""


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    mechanism: str
    initial: bytes | None  # the SASL-IR initial response, still base64; b"=" is empty


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """COMPRESS (RFC 4978)."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class Login(Command):
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class MailboxCommand(Command):
    """SELECT, EXAMINE, CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListCommand(Command):
    """LIST and LSUB: the reference and pattern, Unicode, wildcards kept."""

    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuotaCommand(Command):
    """GETQUOTA and SETQUOTA (RFC 9208); GETQUOTAROOT is a MailboxCommand."""

    root: str
    limits: tuple[tuple[str, int], ...] = ()  # SETQUOTA's (resource, limit) pairs


@dataclass(frozen=True, slots=True)
class Append(Command):
    mailbox: str
    flags: tuple[str, ...]
    date: datetime | None
    message: bytes


@dataclass(frozen=True, slots=True)
class Search(Command):
    uid: bool
    charset: str | None
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    uid: bool
    messages: SequenceSet
    items: tuple[FetchAttribute, ...]


@dataclass(frozen=True, slots=True)
class Store(Command):
    uid: bool
    messages: SequenceSet
    mode: str  # "set", "add", "remove"
    silent: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CopyMove(Command):
    """COPY and MOVE (and their UID forms)."""

    uid: bool
    messages: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class UidExpunge(Command):
    messages: SequenceSet


@dataclass(frozen=True, slots=True)
class Id(Command):
    parameters: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Enable(Command):
    capabilities: tuple[str, ...] = field(default=())
