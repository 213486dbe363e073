"""The IMAP4rev1 session (RFC 3501 and the extensions in `ImapSession.capabilities`), a
sans-IO state machine as in h11: the transport feeds it the bytes it receives and
carries out the events it returns (`events.py`); it never touches a socket.

    session = ImapSession(backend, client_address="127.0.0.1", tls_active=False,
                          starttls_available=True)
    events = session.greeting()
    events = session.feed(b"a1 CAPABILITY\\r\\n")   # [Send(b"* CAPABILITY ...")]

`feed()` may call the mailbox store (blocking); the server runs it in a worker thread,
never two calls at once for one session (nor `poll()` beside it). Nothing raises out of
`feed()`: malformed input is answered BAD, store errors NO with their response code,
and anything unexpected `NO [SERVERBUG]` (logged), and the session goes on. A mailbox
database whose disk is full refuses writes (APPEND, COPY, MOVE, STORE, EXPUNGE, CREATE)
with `NO [OVERQUOTA] Not enough disk space`, as Dovecot does, while reads go on: SELECT
then leaves \\Recent in the store, a FETCH of a body doesn't set \\Seen, and CLOSE
closes without expunging.

States (RFC 3501 section 3): not authenticated -> authenticated (LOGIN or AUTHENTICATE
through `Backend.login`) -> selected (SELECT/EXAMINE) -> logout. Beside them the input
mode: commands, an AUTHENTICATE response line, IDLE (waiting for DONE), or waiting for
the transport's TLS handshake after STARTTLS.
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from casarray import __version__
from casarray.access.imap import commands as c
from casarray.access.imap import condstore, quota, urlauth
from casarray.access.imap import responses as r
from casarray.access.imap.backend import (
    Backend,
    LoginFailed,
    LoginOk,
    LoginReferred,
    LoginResult,
    LoginThrottled,
    LoginUnavailable,
)
from casarray.access.imap.commands import ParseError
from casarray.access.imap.esearch import esearch_line
from casarray.access.imap.events import Close, Compress, Event, Idling, Send, StartTLS
from casarray.access.imap.fetch import fetch
from casarray.access.imap.framing import (
    CommandReader,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
    RawCommand,
    ReaderEvent,
)
from casarray.access.imap.notify import Notifier, NotifyError
from casarray.access.imap.parser import SEARCH_CHARSETS, CommandParser
from casarray.access.imap.search import evaluate, highest_modseq, source_for, uses_modseq
from casarray.access.imap.search_context import SearchContext, SearchContexts
from casarray.access.imap.selected import MailboxGone, SelectedMailbox
from casarray.access.imap.sequence import SequenceError, SequenceSet
from casarray.mailstore.interface import (
    DELIMITER,
    STORAGE_FULL_TEXT,
    FolderNotFound,
    MailboxStore,
    MailstoreError,
    MessageInfo,
    StorageFull,
)

log = logging.getLogger(__name__)

__all__ = ["Close", "Event", "Idling", "ImapSession", "Limits", "Send", "StartTLS", "State"]


@dataclass(frozen=True)
class Limits:
    max_line: int = 64 * 1024  # a command line (without literals)
    max_literal: int = 50 * 1024 * 1024
    idle_timeout: float = 30 * 60  # autologout (RFC 3501: at least 30 min)


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class _Mode(enum.Enum):
    COMMAND = 1
    AUTHENTICATE = 2  # waiting for the client's SASL response line
    IDLE = 3  # waiting for DONE
    STARTTLS = 4  # waiting for the transport's TLS handshake
    CLOSED = 5


_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})
_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
COMMAND_STATES: dict[str, frozenset[State]] = {
    "CAPABILITY": _ANY,
    "NOOP": _ANY,
    "LOGOUT": _ANY,
    "ID": _ANY,
    "STARTTLS": _NOT_AUTH,
    "AUTHENTICATE": _NOT_AUTH,
    "LOGIN": _NOT_AUTH,
    "SELECT": _AUTH,
    "EXAMINE": _AUTH,
    "CREATE": _AUTH,
    "DELETE": _AUTH,
    "RENAME": _AUTH,
    "SUBSCRIBE": _AUTH,
    "UNSUBSCRIBE": _AUTH,
    "LIST": _AUTH,
    "LSUB": _AUTH,
    "STATUS": _AUTH,
    "APPEND": _AUTH,
    "GENURLAUTH": _AUTH,
    "URLFETCH": _AUTH,
    "RESETKEY": _AUTH,
    "NAMESPACE": _AUTH,
    "IDLE": _AUTH,
    "NOTIFY": _AUTH,
    "COMPRESS": _AUTH,
    "GETQUOTAROOT": _AUTH,
    "GETQUOTA": _AUTH,
    "SETQUOTA": _AUTH,
    "ENABLE": frozenset({State.AUTHENTICATED}),
    "CHECK": _SELECTED,
    "CLOSE": _SELECTED,
    "UNSELECT": _SELECTED,
    "EXPUNGE": _SELECTED,
    "SEARCH": _SELECTED,
    "FETCH": _SELECTED,
    "STORE": _SELECTED,
    "COPY": _SELECTED,
    "MOVE": _SELECTED,
    "UID FETCH": _SELECTED,
    "UID SEARCH": _SELECTED,
    "UID STORE": _SELECTED,
    "UID COPY": _SELECTED,
    "UID MOVE": _SELECTED,
    "UID EXPUNGE": _SELECTED,
    "SORT": _SELECTED,
    "UID SORT": _SELECTED,
    "THREAD": _SELECTED,
    "UID THREAD": _SELECTED,
    "CANCELUPDATE": _SELECTED,
}
# Commands during which no EXPUNGE may be sent (RFC 3501 7.4.1; COPY too, as Dovecot).
_NO_EXPUNGE = frozenset({"FETCH", "STORE", "SEARCH", "COPY", "SORT", "THREAD"})
# Commands after which the selected mailbox is not checked for changes.
_NO_UPDATES = frozenset({"SELECT", "EXAMINE", "CLOSE", "UNSELECT", "LOGOUT", "IDLE"})
_SERVERBUG = "Internal server error; the server log has the details"
_READ_ONLY = "The mailbox is open read-only (EXAMINE)"
_CONTINUE = b"+ Ready for literal data\r\n"
_BYE_GONE = b"* BYE The selected mailbox was deleted or renamed by another session\r\n"
_CODE_UNSAFE = re.compile(r"[^\x21-\x7e ]|\]")


@dataclass(frozen=True, slots=True)
class _Done:
    """A command's tagged response."""

    status: str  # OK, NO, BAD
    text: str
    code: str | None = None


class _Output:
    """Collects a step's output: bytes joined once into each Send, other events between."""

    __slots__ = ("_pending", "events")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    def extend(self, lines: Iterable[bytes]) -> None:
        self._pending.extend(lines)

    def event(self, event: Event) -> None:
        self._flush()
        self.events.append(event)

    def _flush(self) -> None:
        if self._pending:
            self.events.append(Send(b"".join(self._pending)))
            self._pending = []

    def finish(self) -> list[Event]:
        self._flush()
        return self.events


class ImapSession:
    """One client connection's IMAP session.

    Over 500 lines on purpose: it is RFC 3501's state machine with one `_do_<COMMAND>`
    handler per command, grouped by the state they run in (any, not authenticated,
    authenticated, selected), and every handler reads and changes the same few slots
    (state, mode, the selected view). Split into mixins, each would reach into the
    others' slots; kept whole, a reader finds a command by its name."""

    __slots__ = (
        "_allow_plaintext",
        "_backend",
        "_client_address",
        "_compressed",
        "_condstore",
        "_contexts",
        "_extra",
        "_limits",
        "_mode",
        "_notify",
        "_pending_tag",
        "_qresync",
        "_reader",
        "_selected",
        "_starttls_available",
        "_state",
        "_storage_limit",
        "_store",
        "_tls_active",
        "_user",
    )

    def __init__(
        self,
        backend: Backend,
        *,
        client_address: str,
        tls_active: bool,
        starttls_available: bool,
        allow_plaintext: bool = False,
        limits: Limits = Limits(),
        capabilities_extra: tuple[str, ...] = (),
    ) -> None:
        self._backend = backend
        self._client_address = client_address
        self._tls_active = tls_active
        self._starttls_available = starttls_available
        self._allow_plaintext = allow_plaintext
        self._limits = limits
        self._extra = tuple(capabilities_extra)
        # Before login only small literals (a user name, a password) are accepted: an
        # unauthenticated client can't make the server hold a 50 MB message.
        self._reader = CommandReader(limits.max_line, min(limits.max_literal, limits.max_line))
        self._state = State.NOT_AUTHENTICATED
        self._mode = _Mode.COMMAND
        self._store: MailboxStore | None = None
        self._selected: SelectedMailbox | None = None
        self._contexts: SearchContexts | None = None  # RFC 5267 live results
        self._user: str | None = None
        self._pending_tag = ""
        self._condstore = False  # RFC 7162, enabled by ENABLE or a command that uses it
        self._notify: Notifier | None = None  # the NOTIFY SET in effect (RFC 5465)
        self._qresync = False
        self._compressed = False
        self._storage_limit: Callable[[], int | None] | None = None

    # -- the transport's API ------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def user(self) -> str | None:
        """The address logged in as, once authenticated."""
        return self._user

    @property
    def wants_input(self) -> bool:
        """False once the session has ended (LOGOUT, BYE)."""
        return self._mode is not _Mode.CLOSED

    @property
    def local_store(self) -> bool:
        """Logged in to a store whose operations never wait on a network (SQLite on
        this machine): the server may run a short command on its event loop itself."""
        return self._store is not None and bool(getattr(self._store, "local", False))

    @property
    def idling(self) -> bool:
        return self._mode is _Mode.IDLE

    @property
    def input_pending(self) -> bool:
        """A command has begun to arrive and isn't complete (its line, or a literal of
        it): the server's command deadline runs meanwhile."""
        return self._reader.in_command

    def greeting(self) -> list[Event]:
        try:
            fqdn = r.text(self._backend.server_fqdn)
        except Exception:
            log.exception("IMAP: the backend has no server name")
            fqdn = "casarray"
        line = f"* OK [CAPABILITY {self._capability_text()}] {fqdn} casarray IMAP4 service ready"
        return [Send(line.encode("ascii", "replace") + b"\r\n")]

    def feed(self, data: bytes) -> list[Event]:
        """Bytes from the client: the events in answer (possibly none yet)."""
        if self._mode is _Mode.CLOSED:
            return []
        if self._mode is _Mode.STARTTLS:
            # Plaintext after STARTTLS and before the handshake is never a command.
            log.info("IMAP %s: %d bytes ignored before TLS", self._client_address, len(data))
            return []
        out = _Output()
        try:
            self._reader.feed(data)
            self._run(out)
        except Exception:
            log.exception("IMAP %s: session failure", self._client_address)
            out.write(b"* BYE Internal server error\r\n")
            self._end(out)
        return out.finish()

    def tls_started(self) -> list[Event]:
        """The transport finished the STARTTLS handshake."""
        self._tls_active = True
        self._reader.clear()
        if self._mode is _Mode.STARTTLS:
            self._mode = _Mode.COMMAND
        return []

    def poll(self) -> list[Event]:
        """In IDLE, or between commands while NOTIFY is set: untagged responses for
        changes made by other sessions."""
        idle = self._mode is _Mode.IDLE
        notifier = self._notify if self._mode is _Mode.COMMAND or idle else None
        if self._store is None or not (idle or notifier is not None):
            return []
        out = _Output()
        view = self._selected
        try:
            if view is not None and (idle or (notifier is not None and notifier.wants_selected)):
                last = view.uids[-1] if view.uids else 0
                expunge = idle or (notifier is not None and not notifier.delayed)
                out.extend(view.update(self._store, expunge=expunge))
                if notifier is not None and notifier.fetch_items:  # MessageNew's attributes
                    new = [i for i in range(view.exists - 1, -1, -1) if view.uids[i] > last]
                    items = notifier.fetch_items
                    out.extend(fetch(self._store, view, new[::-1], items, False).lines)
            if notifier is not None:
                out.extend(notifier.poll(self._store, view.name if view else None))
            if view is not None and self._contexts:
                out.extend(self._contexts.updates(view, self._store))
        except MailboxGone:
            out.write(_BYE_GONE)
            self._end(out)
        except Exception:
            log.exception("IMAP %s: poll failed", self._client_address)
        return out.finish()

    def timed_out(self) -> list[Event]:
        """No input for `limits.idle_timeout`: autologout."""
        if self._mode is _Mode.CLOSED:
            return []
        out = _Output()
        out.write(b"* BYE Autologout; idle for too long\r\n")
        self._end(out)
        return out.finish()

    def connection_lost(self) -> None:
        self._mode = _Mode.CLOSED
        self._state = State.LOGOUT
        self._reader.clear()
        self._selected = None
        self._store = None

    # -- capabilities -------------------------------------------------------------------

    @property
    def _plaintext_ok(self) -> bool:
        return self._tls_active or self._allow_plaintext

    def capabilities(self) -> list[str]:
        """What this session advertises now (it changes with TLS and login)."""
        caps = ["IMAP4rev1"]
        if self._state is State.NOT_AUTHENTICATED:
            if self._starttls_available and not self._tls_active:
                caps.append("STARTTLS")
            caps.append("AUTH=PLAIN" if self._plaintext_ok else "LOGINDISABLED")
        caps += [
            "SASL-IR",
            "LOGIN-REFERRALS",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "UNSELECT",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "CONDSTORE",
            "QRESYNC",
            "NOTIFY",
            "BINARY",
            "MULTIAPPEND",
            "CATENATE",
            "URLAUTH",
            "URLAUTH=BINARY",
            f"APPENDLIMIT={self._limits.max_literal}",
            # the search family: ESEARCH (RFC 4731), SORT and THREAD (5256),
            # SORT=DISPLAY (5957), ESORT and CONTEXT (5267)
            "ESEARCH",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
        ]
        if self._state is not State.NOT_AUTHENTICATED:
            caps += ["COMPRESS=DEFLATE", *quota.CAPABILITIES]
        for extra in self._extra:
            if extra.upper() not in (cap.upper() for cap in caps):
                caps.append(extra)
        return caps

    def _capability_text(self) -> str:
        return " ".join(self.capabilities())

    # -- the input loop -----------------------------------------------------------------

    def _run(self, out: _Output) -> None:
        reader = self._reader
        while True:
            mode = self._mode
            if mode is _Mode.COMMAND:
                event = reader.next_event()
                if event is None:
                    return
                self._on_reader_event(event, out)
            elif mode is _Mode.AUTHENTICATE or mode is _Mode.IDLE:
                line = reader.next_line()
                if line is None:
                    return
                if mode is _Mode.AUTHENTICATE:
                    self._on_sasl_response(line, out)
                else:
                    self._on_idle_line(line, out)
            else:
                return

    def _on_reader_event(self, event: ReaderEvent, out: _Output) -> None:
        if isinstance(event, RawCommand):
            self._command(event, out)
        elif isinstance(event, NeedContinuation):
            out.write(_CONTINUE)
        elif isinstance(event, LineTooLong):
            message = f"Command line too long (the limit is {event.limit} bytes); line ignored"
            out.write(r.tagged(event.tag or "*", "BAD", message))
        elif isinstance(event, LiteralTooBig):
            message = (
                f"Literal of {event.size} bytes is larger than the limit of {event.limit} bytes"
            )
            if event.tag is None:
                out.write(r.tagged("*", "BAD", message))
            elif event.command == "APPEND" and self._state is not State.NOT_AUTHENTICATED:
                out.write(r.tagged(event.tag, "NO", message, "TOOBIG"))
            else:
                out.write(r.tagged(event.tag, "BAD", message))

    def _command(self, raw: RawCommand, out: _Output) -> None:
        parser = CommandParser(raw)
        try:
            tag = parser.tag()
        except ParseError as exc:
            out.write(r.tagged("*", "BAD", f"{exc}; a command starts with a tag"))
            return
        try:
            name = parser.command_name()
        except ParseError as exc:
            out.write(r.tagged(tag, "BAD", str(exc)))
            return
        states = COMMAND_STATES.get(name)
        if states is None:
            out.write(r.tagged(tag, "BAD", f"Unknown command {name}"))
            return
        if self._state not in states:
            out.write(r.tagged(tag, "BAD", self._wrong_state(name)))
            return
        try:
            command = parser.arguments(name)
        except ParseError as exc:
            out.write(r.tagged(tag, "BAD", f"{name}: {exc}"))
            return
        if parser.invalid_name is not None:
            # No mailbox has such a name: LIST finds nothing, the others can't act on it.
            if name in ("LIST", "LSUB"):
                out.write(r.tagged(tag, "OK", f"{name} completed"))
            else:
                out.write(r.tagged(tag, "NO", parser.invalid_name, "CANNOT"))
            return
        handler = getattr(self, "_do_" + name.replace(" ", "_"))
        view = self._selected
        if view is not None and view.pending_expunge and name.startswith("UID "):
            # Expunges already known go out first, so the UID command doesn't answer
            # for messages that are gone (UID commands may carry EXPUNGE responses).
            out.extend(view.announce_expunges())
        try:
            done: _Done | None = handler(command, out)
        except MailboxGone:
            out.write(_BYE_GONE)
            self._end(out)
            return
        except SequenceError as exc:
            done = _Done("BAD", f"{name}: invalid message set: {exc}")
        except MailstoreError as exc:
            done = _Done("NO", str(exc) or type(exc).__name__, exc.code)
        except Exception:
            log.exception("IMAP %s: %s failed", self._client_address, name)
            done = _Done("NO", _SERVERBUG, "SERVERBUG")
        if done is None:  # the handler answered (LOGOUT, IDLE, AUTHENTICATE...)
            return
        if self._selected is not None and name not in _NO_UPDATES and self._store is not None:
            try:
                out.extend(self._selected.update(self._store, expunge=name not in _NO_EXPUNGE))
                if self._contexts:
                    out.extend(self._contexts.updates(self._selected, self._store))
            except MailboxGone:
                out.write(_BYE_GONE)
                self._end(out)
                return
            except Exception:
                log.exception("IMAP %s: checking for changes failed", self._client_address)
        code = _CODE_UNSAFE.sub(" ", done.code) if done.code else None
        out.write(r.tagged(tag, done.status, done.text, code))

    def _wrong_state(self, name: str) -> str:
        states = COMMAND_STATES[name]
        if self._state is State.NOT_AUTHENTICATED:
            return f"{name} is not allowed before logging in"
        if states is _NOT_AUTH:
            return f"{name} is not allowed: already authenticated"
        if states is _SELECTED:
            return f"{name} needs a selected mailbox: SELECT or EXAMINE one first"
        return f"{name} is only allowed in the authenticated state (not with a mailbox selected)"

    def _end(self, out: _Output) -> None:
        """After a BYE: close the connection."""
        was_idle = self._mode is _Mode.IDLE
        self._mode = _Mode.CLOSED
        self._state = State.LOGOUT
        self._selected = None
        self._store = None
        self._reader.clear()
        if was_idle:
            out.event(Idling(False))
        out.event(Close())

    @property
    def _mailbox(self) -> MailboxStore:
        assert self._store is not None
        return self._store

    @property
    def _view(self) -> SelectedMailbox:
        assert self._selected is not None
        return self._selected

    # -- any state --------------------------------------------------------------------

    def _do_CAPABILITY(self, cmd: c.Command, out: _Output) -> _Done:
        out.write(f"* CAPABILITY {self._capability_text()}\r\n".encode("ascii", "replace"))
        return _Done("OK", "CAPABILITY completed")

    def _do_NOOP(self, cmd: c.Command, out: _Output) -> _Done:
        return _Done("OK", "NOOP completed")

    def _do_LOGOUT(self, cmd: c.Command, out: _Output) -> None:
        out.write(b"* BYE casarray IMAP4 server logging out\r\n")
        out.write(r.tagged(cmd.tag, "OK", "LOGOUT completed"))
        self._end(out)

    def _do_ID(self, cmd: c.Id, out: _Output) -> _Done:
        if cmd.parameters:
            log.debug("IMAP %s: client ID %r", self._client_address, cmd.parameters)
        out.write(b'* ID ("name" "casarray" "version" %s)\r\n' % r.string(__version__))
        return _Done("OK", "ID completed")

    # -- authenticated: COMPRESS (RFC 4978) and QUOTA (RFC 9208) ------------------------

    def _do_COMPRESS(self, cmd: c.Compress, out: _Output) -> _Done | None:
        if self._compressed:
            return _Done("NO", "DEFLATE compression is already active", "COMPRESSIONACTIVE")
        if cmd.mechanism != "DEFLATE":
            return _Done("NO", f"Unsupported compression mechanism {cmd.mechanism}; use DEFLATE")
        out.write(r.tagged(cmd.tag, "OK", "DEFLATE active"))
        self._compressed = True
        # What follows the command in this read is already compressed: the transport
        # inflates it and feeds it back.
        out.event(Compress(self._reader.take_buffered()))
        return None

    def _quota_state(self) -> tuple[int, int | None]:
        """(bytes used, ProhibitSendReceiveQuota or None for Unlimited)."""
        limit = self._storage_limit() if self._storage_limit is not None else None
        if limit is None:
            return 0, None
        return self._mailbox.storage_used(), limit

    def _over_quota(self, more: int) -> _Done | None:
        """NO [OVERQUOTA] if `more` bytes would take the mailbox over its limit."""
        if self._storage_limit is None or more <= 0:
            return None
        used, limit = self._quota_state()
        if limit is None or used + more <= limit:
            return None
        return _Done("NO", quota.over_quota_text(used, more, limit), "OVERQUOTA")

    def _do_GETQUOTAROOT(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        try:
            folder = self._mailbox.folder(cmd.mailbox)
        except FolderNotFound:
            return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
        used, limit = self._quota_state()
        out.write(quota.quotaroot_line(folder.name, limit is not None))
        if limit is not None:
            out.write(quota.quota_line(used, limit))
        return _Done("OK", "GETQUOTAROOT completed")

    def _do_GETQUOTA(self, cmd: c.QuotaCommand, out: _Output) -> _Done:
        used, limit = self._quota_state()
        if cmd.root != quota.ROOT or limit is None:
            return _Done("NO", f"No such quota root: {cmd.root!r}", "NONEXISTENT")
        out.write(quota.quota_line(used, limit))
        return _Done("OK", "GETQUOTA completed")

    def _do_SETQUOTA(self, cmd: c.QuotaCommand, out: _Output) -> _Done:
        return _Done(
            "NO",
            "Quotas are set by the administrator (Set-Mailbox -ProhibitSendReceiveQuota)",
            "NOPERM",
        )

    # -- not authenticated --------------------------------------------------------------

    def _do_STARTTLS(self, cmd: c.Command, out: _Output) -> _Done | None:
        if self._tls_active:
            return _Done("BAD", "TLS is already active")
        if not self._starttls_available:
            return _Done("BAD", "STARTTLS is not available on this connection")
        out.write(r.tagged(cmd.tag, "OK", "Begin TLS negotiation now"))
        out.event(StartTLS())
        self._mode = _Mode.STARTTLS
        self._reader.clear()  # nothing sent before the handshake counts (CVE-2011-0411)
        return None

    def _privacy_required(self) -> _Done:
        return _Done(
            "NO",
            "Logging in is not allowed on an unencrypted connection; use STARTTLS first",
            "PRIVACYREQUIRED",
        )

    def _do_LOGIN(self, cmd: c.Login, out: _Output) -> _Done:
        if not self._plaintext_ok:
            return self._privacy_required()
        return self._login(cmd.user, cmd.password)

    def _do_AUTHENTICATE(self, cmd: c.Authenticate, out: _Output) -> _Done | None:
        if cmd.mechanism != "PLAIN":
            return _Done("NO", f"Unsupported authentication mechanism {cmd.mechanism}", "CANNOT")
        if not self._plaintext_ok:
            return self._privacy_required()
        if cmd.initial is None:
            out.write(b"+ \r\n")
            self._mode = _Mode.AUTHENTICATE
            self._pending_tag = cmd.tag
            return None
        return self._sasl_plain(cmd.initial)

    def _on_sasl_response(self, line: bytes | LineTooLong, out: _Output) -> None:
        tag = self._pending_tag
        self._mode = _Mode.COMMAND
        if isinstance(line, LineTooLong):
            out.write(r.tagged(tag, "BAD", "AUTHENTICATE response too long"))
            return
        if line.strip() == b"*":
            out.write(r.tagged(tag, "BAD", "AUTHENTICATE cancelled"))
            return
        try:
            done = self._sasl_plain(line.strip())
        except Exception:
            log.exception("IMAP %s: AUTHENTICATE failed", self._client_address)
            done = _Done("NO", _SERVERBUG, "SERVERBUG")
        out.write(r.tagged(tag, done.status, done.text, done.code))

    def _sasl_plain(self, response: bytes) -> _Done:
        try:
            data = b"" if response == b"=" else base64.b64decode(response, validate=True)
        except (binascii.Error, ValueError):
            return _Done("BAD", "AUTHENTICATE: the response is not valid base64")
        fields = data.split(b"\x00")
        if len(fields) != 3:
            return _Done("BAD", "AUTHENTICATE PLAIN: expected authzid NUL authcid NUL password")
        try:
            authzid, authcid, password = (f.decode("utf-8") for f in fields)
        except UnicodeDecodeError:
            return _Done("BAD", "AUTHENTICATE PLAIN: the response is not UTF-8")
        if authzid and authzid != authcid:
            return _Done("NO", "Logging in as another user is not allowed", "AUTHORIZATIONFAILED")
        return self._login(authcid, password)

    def _login(self, user: str, password: str) -> _Done:
        result: LoginResult = self._backend.login(user, password, self._client_address)
        if isinstance(result, LoginOk):
            self._store = result.mailbox
            self._user = result.user
            self._storage_limit = result.storage_limit
            self._state = State.AUTHENTICATED
            self._reader.max_literal = self._limits.max_literal
            log.info("IMAP %s: %s logged in", self._client_address, result.user)
            return _Done("OK", "Logged in", f"CAPABILITY {self._capability_text()}")
        if isinstance(result, LoginFailed):
            return _Done("NO", result.reason, "AUTHENTICATIONFAILED")
        if isinstance(result, LoginThrottled):
            seconds = max(1, math.ceil(result.retry_after))
            return _Done(
                "NO",
                f"Too many failed logins; try again in {seconds} seconds",
                "UNAVAILABLE",
            )
        if isinstance(result, LoginReferred):
            return _Done(
                "NO",
                f"This mailbox is served by {result.server}; connect there",
                f"REFERRAL {result.url}",
            )
        if isinstance(result, LoginUnavailable):
            return _Done("NO", result.reason, "UNAVAILABLE")
        raise TypeError(f"unexpected login result {result!r}")

    # -- authenticated ------------------------------------------------------------------

    def _deselect(self) -> None:
        self._selected = None
        self._contexts = None
        if self._state is State.SELECTED:
            self._state = State.AUTHENTICATED

    def _do_SELECT(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        readonly = cmd.name == "EXAMINE"
        qresync = cmd.qresync if isinstance(cmd, c.Select) else None
        if qresync is not None and not self._qresync:
            return _Done("BAD", f"{cmd.name} (QRESYNC ...) needs ENABLE QRESYNC first")
        if self._selected is not None:  # RFC 7162 3.2.11
            out.write(b"* OK [CLOSED] Previous mailbox closed\r\n")
        self._deselect()
        try:
            view, lines = SelectedMailbox.open(self._mailbox, cmd.mailbox, readonly)
        except FolderNotFound:
            return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
        out.extend(lines)
        self._selected = view
        self._state = State.SELECTED
        if isinstance(cmd, c.Select) and cmd.condstore:
            self._condstore = True
        view.condstore, view.qresync = self._condstore, self._qresync
        if self._condstore:
            out.write(condstore.highest_modseq_line(view))
        if qresync is not None:
            out.extend(condstore.qresync_select(self._mailbox, view, qresync))
        code = "READ-ONLY" if readonly else "READ-WRITE"
        return _Done("OK", f"{cmd.name} completed", code)

    _do_EXAMINE = _do_SELECT

    def _do_CREATE(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        name = cmd.mailbox
        if name.endswith(DELIMITER) and len(name) > 1:
            name = name[:-1]
        if name == "INBOX":
            return _Done("NO", "INBOX already exists", "ALREADYEXISTS")
        self._mailbox.create_folder(name)
        return _Done("OK", "CREATE completed")

    def _do_DELETE(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        self._mailbox.delete_folder(cmd.mailbox)
        if self._selected is not None and self._selected.name == cmd.mailbox:
            self._deselect()
        return _Done("OK", "DELETE completed")

    def _do_RENAME(self, cmd: c.Rename, out: _Output) -> _Done:
        self._mailbox.rename_folder(cmd.old, cmd.new)
        view = self._selected
        if view is not None and cmd.old != "INBOX":
            if view.name == cmd.old:
                view.name = cmd.new
            elif view.name.startswith(cmd.old + DELIMITER):
                view.name = cmd.new + view.name[len(cmd.old) :]
        return _Done("OK", "RENAME completed")

    def _do_SUBSCRIBE(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        self._mailbox.subscribe(cmd.mailbox, cmd.name == "SUBSCRIBE")
        return _Done("OK", f"{cmd.name} completed")

    _do_UNSUBSCRIBE = _do_SUBSCRIBE

    def _do_LIST(self, cmd: c.ListCommand, out: _Output) -> _Done:
        from casarray.access.imap import listing

        store = self._mailbox
        if cmd.patterns and cmd.patterns != ("",):  # extended (RFC 5258, 5819)
            folders = store.folders()
            listed = listing.extended_list(
                folders,
                store.subscriptions(),
                cmd.reference,
                cmd.patterns,
                cmd.selection,
                cmd.returns,
            )
            by_name = {f.name: f for f in folders}
            for item in listed:
                out.write(item.line)
                if cmd.status_items and item.selectable:
                    out.write(r.status(by_name[item.name], cmd.status_items))
        elif cmd.name == "LIST":
            out.extend(listing.list_lines(store.folders(), cmd.reference, cmd.pattern))
        else:
            out.extend(listing.lsub_lines(store.subscriptions(), cmd.reference, cmd.pattern))
        return _Done("OK", f"{cmd.name} completed")

    _do_LSUB = _do_LIST

    def _do_STATUS(self, cmd: c.Status, out: _Output) -> _Done:
        try:
            folder = self._mailbox.folder(cmd.mailbox)
        except FolderNotFound:
            return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
        if "HIGHESTMODSEQ" in cmd.items:
            self._enable_condstore(out)
        out.write(
            r.status(folder, cmd.items, quota.status_values(self._mailbox, folder.name, cmd.items))
        )
        return _Done("OK", "STATUS completed")

    def _do_APPEND(self, cmd: c.Append, out: _Output) -> _Done:
        from casarray.access.imap.appending import run_append

        # The literal bytes (CATENATE's URL parts count once stored, at the next APPEND).
        size = sum(len(p) for m in cmd.messages for p in m.parts if isinstance(p, bytes))
        over = self._over_quota(size)
        if over is not None:
            return over
        done = run_append(self._mailbox, self._user or "", cmd, self._limits.max_literal)
        return _Done(done.status, done.text, done.code)

    def _do_GENURLAUTH(self, cmd: urlauth.GenUrlauth, out: _Output) -> _Done:
        line, done = urlauth.genurlauth(self._mailbox, self._user or "", cmd)
        out.write(line)
        return _Done(done.status, done.text, done.code)

    def _do_URLFETCH(self, cmd: urlauth.UrlFetch, out: _Output) -> _Done:
        mailbox_of = self._backend.mailbox_of
        line, done = urlauth.urlfetch(self._mailbox, self._user or "", mailbox_of, cmd)
        out.write(line)
        return _Done(done.status, done.text, done.code)

    def _do_RESETKEY(self, cmd: urlauth.ResetKey, out: _Output) -> _Done:
        done = urlauth.resetkey(self._mailbox, cmd)
        return _Done(done.status, done.text, done.code)

    def _do_NAMESPACE(self, cmd: c.Command, out: _Output) -> _Done:
        out.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return _Done("OK", "NAMESPACE completed")

    def _do_ENABLE(self, cmd: c.Enable, out: _Output) -> _Done:
        enabled = []
        for cap in cmd.capabilities:  # only what wasn't on already (RFC 5161)
            if cap == "CONDSTORE" and not self._condstore:
                enabled.append(cap)
            elif cap == "QRESYNC" and not self._qresync:  # it implies CONDSTORE
                self._qresync = True
                enabled.append(cap)
        self._condstore = self._condstore or bool(enabled)
        out.write(b"* ENABLED%s\r\n" % "".join(" " + cap for cap in enabled).encode("ascii"))
        return _Done("OK", "ENABLE completed")

    def _enable_condstore(self, out: _Output) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1): from now on modseqs are reported,
        starting with the selected mailbox's HIGHESTMODSEQ."""
        self._condstore = True
        view = self._selected
        if view is not None and not view.condstore:
            view.condstore = True
            out.write(condstore.highest_modseq_line(view))

    def _do_IDLE(self, cmd: c.Command, out: _Output) -> None:
        out.write(b"+ idling\r\n")
        self._mode = _Mode.IDLE
        self._pending_tag = cmd.tag
        out.event(Idling(True))
        if self._selected is None:
            return
        try:  # what changed meanwhile goes out at once
            out.extend(self._selected.update(self._mailbox, expunge=True))
        except MailboxGone:
            out.write(_BYE_GONE)
            self._end(out)
        except Exception:
            log.exception("IMAP %s: checking for changes failed", self._client_address)

    def _do_NOTIFY(self, cmd: c.Notify, out: _Output) -> _Done:
        if cmd.groups is None:  # NOTIFY NONE
            if self._notify is not None:
                self._notify = None
                out.event(Idling(False))
            return _Done("OK", "NOTIFY completed")
        try:
            notifier = Notifier(cmd)
        except NotifyError as exc:
            return _Done(exc.status, str(exc), exc.code)
        view = self._selected
        out.extend(notifier.start(self._mailbox, view.name if view else None, cmd.status))
        if self._notify is None:
            out.event(Idling(True))  # the transport polls while NOTIFY is set
        self._notify = notifier
        return _Done("OK", "NOTIFY completed")

    def _on_idle_line(self, line: bytes | LineTooLong, out: _Output) -> None:
        tag = self._pending_tag
        self._mode = _Mode.COMMAND
        if self._notify is None:  # NOTIFY keeps the transport polling
            out.event(Idling(False))
        if isinstance(line, bytes) and line.strip().upper() == b"DONE":
            out.write(r.tagged(tag, "OK", "IDLE terminated"))
        else:
            out.write(r.tagged(tag, "BAD", "Expected DONE to end IDLE"))

    # -- selected -----------------------------------------------------------------------

    def _indexes(self, messages: SequenceSet, uid: bool) -> list[int]:
        view = self._view
        if uid:
            return messages.uid_indexes(view.uids)
        return messages.indexes(view.exists)

    def _do_CHECK(self, cmd: c.Command, out: _Output) -> _Done:
        return _Done("OK", "CHECK completed")

    def _do_CLOSE(self, cmd: c.Command, out: _Output) -> _Done:
        view = self._view
        text = "CLOSE completed"
        if not view.readonly:
            try:
                self._mailbox.expunge(view.name)  # silently (RFC 3501 6.4.2)
            except StorageFull:  # CLOSE has no NO: closed, the messages left as they are
                text = f"CLOSE completed; no message was expunged: {STORAGE_FULL_TEXT}"
        self._deselect()
        return _Done("OK", text)

    def _do_UNSELECT(self, cmd: c.Command, out: _Output) -> _Done:
        self._deselect()
        return _Done("OK", "UNSELECT completed")

    def _do_EXPUNGE(self, cmd: c.Command, out: _Output) -> _Done:
        view = self._view
        if view.readonly:
            return _Done("NO", _READ_ONLY)
        removed = self._mailbox.expunge(view.name)
        out.extend(view.announce_expunges(removed))
        return _Done("OK", "EXPUNGE completed")

    def _do_UID_EXPUNGE(self, cmd: c.UidExpunge, out: _Output) -> _Done:
        view = self._view
        if view.readonly:
            return _Done("NO", _READ_ONLY)
        uids = view.uids_of(cmd.messages.uid_indexes(view.uids))
        removed = self._mailbox.expunge(view.name, uids) if uids else []
        out.extend(view.announce_expunges(removed))
        return _Done("OK", "UID EXPUNGE completed")

    def _do_SEARCH(self, cmd: c.Search, out: _Output) -> _Done:
        if cmd.charset is not None and cmd.charset not in SEARCH_CHARSETS:
            return _Done("NO", f"Unsupported charset {cmd.charset}", "BADCHARSET (UTF-8 US-ASCII)")
        view = self._view
        source = source_for(self._mailbox, view.name, view.uids)
        with_modseq = uses_modseq(cmd.key)
        if with_modseq:
            self._enable_condstore(out)
        found = evaluate(cmd.key, view.uids, view.flags, view.recent, source)
        uids = view.uids
        if cmd.returns is not None:  # ESEARCH (RFC 4731), maybe kept live (RFC 5267)
            result = [uids[i] for i in found]
            numbers = result if cmd.uid else [i + 1 for i in found]
            modseq = None
            if with_modseq and found:  # RFC 7162 3.1.5: of the messages returned
                returned = cmd.returns.returned(found)
                modseq = highest_modseq(returned, uids, source)
            out.write(esearch_line(cmd.tag, cmd.uid, cmd.returns, numbers, modseq))
            if cmd.returns.update:
                context = SearchContext(cmd.tag, cmd.uid, cmd.key, cmd.returns, result)
                if not self._search_contexts.start(context, view, source):
                    return self._no_update(cmd, out)
            return _Done("OK", f"{cmd.name} completed")
        if with_modseq and found:  # RFC 7162 3.1.5: the highest modseq of those found
            numbers_end = b" (MODSEQ %d)" % highest_modseq(found, uids, source)
        else:
            numbers_end = b""
        if cmd.uid:
            text = b"".join(b" %d" % uids[i] for i in found)
        else:
            text = b"".join(b" %d" % (i + 1) for i in found)
        out.write(b"* SEARCH" + text + numbers_end + b"\r\n")
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_SEARCH = _do_SEARCH

    def _no_update(self, cmd: c.Command, out: _Output) -> _Done:
        """The result went out, but it won't be kept live (RFC 5267 NOUPDATE)."""
        code = f"NOUPDATE {r.string(cmd.tag).decode('ascii')}"
        out.write(r.tagged("*", "NO", "Too many live results to keep this one updated", code))
        return _Done("OK", f"{cmd.name} completed")

    @property
    def _search_contexts(self) -> SearchContexts:
        if self._contexts is None:
            self._contexts = SearchContexts()
        return self._contexts

    def _do_SORT(self, cmd: c.Sort, out: _Output) -> _Done:
        from casarray.access.imap.sorting import sort_uids

        if cmd.charset not in SEARCH_CHARSETS:
            return _Done("NO", f"Unsupported charset {cmd.charset}", "BADCHARSET (UTF-8 US-ASCII)")
        view = self._view
        source = source_for(self._mailbox, view.name, view.uids)
        found = evaluate(cmd.key, view.uids, view.flags, view.recent, source)
        uids = view.uids
        sequence = {uids[i]: i + 1 for i in found}
        ordered = sort_uids(cmd.criteria, list(sequence), source)
        numbers = ordered if cmd.uid else [sequence[uid] for uid in ordered]
        if cmd.returns is None:
            out.write(b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
            return _Done("OK", f"{cmd.name} completed")
        out.write(esearch_line(cmd.tag, cmd.uid, cmd.returns, numbers))
        if cmd.returns.update:
            context = SearchContext(
                cmd.tag, cmd.uid, cmd.key, cmd.returns, ordered, criteria=cmd.criteria
            )
            if not self._search_contexts.start(context, view, source):
                return self._no_update(cmd, out)
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_SORT = _do_SORT

    def _do_THREAD(self, cmd: c.Thread, out: _Output) -> _Done:
        from casarray.access.imap import threads

        if cmd.charset not in SEARCH_CHARSETS:
            return _Done("NO", f"Unsupported charset {cmd.charset}", "BADCHARSET (UTF-8 US-ASCII)")
        view = self._view
        source = source_for(self._mailbox, view.name, view.uids)
        found = evaluate(cmd.key, view.uids, view.flags, view.recent, source)
        uids = view.uids
        sequence = {uids[i]: i + 1 for i in found}
        if cmd.algorithm == "ORDEREDSUBJECT":
            roots = threads.ordered_subject(list(sequence), source)
        else:
            owner = (self._user or "", view.name, view.uid_validity)
            read = threads.reader(source)
            roots = threads.references(
                list(sequence),
                source,
                lambda uid: threads.references_of(owner, uid, source, read),
            )
        number = (lambda uid: uid) if cmd.uid else sequence.__getitem__
        out.write(threads.thread_line(roots, number))
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_THREAD = _do_THREAD

    def _do_CANCELUPDATE(self, cmd: c.CancelUpdate, out: _Output) -> _Done:
        unknown = self._search_contexts.cancel(cmd.tags)
        if unknown:
            return _Done("BAD", f"No search context has the tag {unknown[0]!r}; none was ended")
        return _Done("OK", "CANCELUPDATE completed")

    def _do_FETCH(self, cmd: c.Fetch, out: _Output) -> _Done:
        view = self._view
        if cmd.vanished and not self._qresync:
            return _Done("BAD", "VANISHED needs ENABLE QRESYNC first")
        indexes = self._indexes(cmd.messages, cmd.uid)
        items = cmd.items
        if cmd.changed_since is not None or condstore.MODSEQ_ITEM in items:
            self._enable_condstore(out)
        if cmd.changed_since is not None:  # RFC 7162 3.1.4.1: implies MODSEQ
            if cmd.vanished:
                gone = condstore.expunged_since(
                    self._mailbox, view, cmd.changed_since, cmd.messages
                )
                out.extend(condstore.vanished_earlier(gone))
            indexes = condstore.changed_indexes(self._mailbox, view, indexes, cmd.changed_since)
        # MODSEQ goes with FLAGS, also those a body fetch's \Seen brings (RFC 7162 3.1.4).
        wants_modseq = cmd.changed_since is not None or any(
            i.name == "FLAGS" or (i.sets_seen and not view.readonly) for i in items
        )
        if view.condstore and wants_modseq and condstore.MODSEQ_ITEM not in items:
            items = (*items, condstore.MODSEQ_ITEM)
        # With QRESYNC every FETCH response carries the UID (RFC 7162 3.2.4).
        result = fetch(self._mailbox, view, indexes, items, cmd.uid or view.qresync)
        out.extend(result.lines)
        if result.unknown_cte:
            return _Done("NO", "A part has a Content-Transfer-Encoding not known", "UNKNOWN-CTE")
        if result.missing and not cmd.uid:
            # As Dovecot: the messages that still exist are sent, and the tagged OK says
            # some were expunged by another session meanwhile (RFC 5530, RFC 2180 4.1).
            return _Done("OK", "Some messages were already expunged", "EXPUNGEISSUED")
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_FETCH = _do_FETCH

    def _do_STORE(self, cmd: c.Store, out: _Output) -> _Done:
        view = self._view
        if view.readonly:
            return _Done("NO", _READ_ONLY)
        if cmd.unchanged_since is not None:
            self._enable_condstore(out)
        indexes = self._indexes(cmd.messages, cmd.uid)
        uids = [view.uids[i] for i in indexes if view.uids[i] not in view.pending_expunge]
        changed: list[MessageInfo] = []
        if uids:
            changed = self._mailbox.store_flags(
                view.name, uids, cmd.mode, cmd.flags, cmd.unchanged_since
            )
            view.set_flags(changed)
            out.extend(view.new_keywords())
        if view.condstore:
            lines, modified = condstore.store_result(self._mailbox, view, cmd, indexes, changed)
            out.extend(lines)
            if modified:
                return _Done("OK", "Conditional STORE failed for some messages", modified)
        elif not cmd.silent:
            out.extend(view.fetch_flags(i, cmd.uid) for i in indexes)
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_STORE = _do_STORE

    def _do_COPY(self, cmd: c.CopyMove, out: _Output) -> _Done:
        view = self._view
        move = cmd.name.endswith("MOVE")
        if move and view.readonly:
            return _Done("NO", _READ_ONLY)
        indexes = self._indexes(cmd.messages, cmd.uid)
        uids = [view.uids[i] for i in indexes]
        verb = "MOVE" if move else "COPY"
        if not uids:
            return _Done("OK", f"{cmd.name} completed (no messages)")
        store = self._mailbox
        if not move and self._storage_limit is not None:
            # A copy adds to the mailbox's size (a move between its folders doesn't).
            over = self._over_quota(self._size_of(uids))
            if over is not None:
                return over
        try:
            copied = (store.move if move else store.copy)(view.name, uids, cmd.mailbox)
        except FolderNotFound as exc:
            if exc.code == "TRYCREATE":  # the destination (DestinationNotFound)
                return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")
            raise
        if not copied.pairs:
            return _Done("NO", "The messages no longer exist", "EXPUNGEISSUED")
        sources = r.uid_set([p[0] for p in copied.pairs])
        targets = r.uid_set([p[1] for p in copied.pairs])
        code = f"COPYUID {copied.uid_validity} {sources} {targets}"
        if not move:
            return _Done("OK", f"{cmd.name} completed", code)
        out.write(b"* OK [%s] Moved\r\n" % code.encode("ascii"))
        out.extend(view.announce_expunges(p[0] for p in copied.pairs))
        return _Done("OK", f"{verb} completed")

    def _size_of(self, uids: list[int]) -> int:
        wanted = set(uids)
        return sum(i.size for i in self._mailbox.messages(self._view.name) if i.uid in wanted)

    _do_MOVE = _do_COPY
    _do_UID_COPY = _do_COPY
    _do_UID_MOVE = _do_COPY
