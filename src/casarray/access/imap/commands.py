"""Parsed IMAP commands as frozen dataclasses, one per command, plus the values they
carry: sequence sets, FETCH attributes with their body sections, STORE modes. The
parser (`parser.py`) makes them; the session executes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from casarray.access.imap.esearch import ReturnOptions
from casarray.access.imap.search import SearchKey
from casarray.access.imap.sequence import SequenceSet
from casarray.errors import CasarrayError


class ParseError(CasarrayError):
    """The command is malformed: `<tag> BAD <message>`. (Here rather than in the parser,
    so the parsers of single commands, `appending` and `urlauth`, need no import back.)"""


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
    BODY, BODYSTRUCTURE, RFC822, RFC822.HEADER, RFC822.TEXT, BODY[] (with `section`;
    `peek` for BODY.PEEK; `partial` = (origin, length)), or BINARY[] and BINARY.SIZE
    (RFC 3516; the section is part numbers only)."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        if self.name in ("BODY[]", "BINARY[]"):
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
class Qresync:
    """SELECT's QRESYNC parameter (RFC 7162 3.2.5): what the client knew last time."""

    uid_validity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # (sequence numbers, the UIDs they had): lets the server tell which are gone
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(MailboxCommand):
    """SELECT or EXAMINE with parameters (RFC 7162): (CONDSTORE) or (QRESYNC (...))."""

    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, slots=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListCommand(Command):
    """LIST and LSUB: the reference and pattern, Unicode, wildcards kept. An extended
    LIST (RFC 5258, 5819) also has every pattern, selection and return options (upper
    case) and the STATUS items to return."""

    reference: str
    pattern: str
    patterns: tuple[str, ...] = ()  # all of them (`pattern` is the first); () if plain
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()


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
class CatenateUrl:
    """A CATENATE URL part (RFC 4469): an IMAP URL whose data the server fetches."""

    url: str


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (several with MULTIAPPEND, RFC 3502): its flags, its
    date, and its data: one literal, or CATENATE's parts (literal bytes and URLs).
    `binary`: sent as a literal8 (RFC 3516)."""

    flags: tuple[str, ...]
    date: datetime | None
    parts: tuple[bytes | CatenateUrl, ...]
    binary: bool = False
    catenate: bool = False


@dataclass(frozen=True, slots=True)
class Append(Command):
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Search(Command):
    uid: bool
    charset: str | None
    key: SearchKey
    returns: ReturnOptions | None = None  # RETURN (...): an ESEARCH answer (RFC 4731)


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """One SORT key (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and its REVERSE."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """SORT and UID SORT (RFC 5256), RETURN for ESORT/CONTEXT=SORT (RFC 5267)."""

    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    returns: ReturnOptions | None = None


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """THREAD and UID THREAD (RFC 5256)."""

    uid: bool
    algorithm: str  # "ORDEREDSUBJECT" or "REFERENCES"
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE (RFC 5267): the tags of the contexts to end."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    uid: bool
    messages: SequenceSet
    items: tuple[FetchAttribute, ...]
    changed_since: int | None = None  # the CHANGEDSINCE modifier (RFC 7162)
    vanished: bool = False  # ... with VANISHED (QRESYNC, UID FETCH only)


@dataclass(frozen=True, slots=True)
class Store(Command):
    uid: bool
    messages: SequenceSet
    mode: str  # "set", "add", "remove"
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None  # the UNCHANGEDSINCE modifier (RFC 7162)


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


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One event group of NOTIFY SET (RFC 5465): a mailbox filter (SELECTED,
    SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES; upper case),
    its mailboxes (SUBTREE and MAILBOXES), its events (upper case; () for NONE) and
    the fetch attributes MessageNew asks for."""

    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[str, ...]
    fetch_items: tuple[FetchAttribute, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """NOTIFY SET [STATUS] groups, or NOTIFY NONE (`groups` None)."""

    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
