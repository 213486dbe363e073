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
and anything unexpected `NO [SERVERBUG]` (logged), and the session goes on.

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
from collections.abc import Iterable
from dataclasses import dataclass

from casarray import __version__
from casarray.access.imap import commands as c
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
from casarray.access.imap.events import Close, Event, Idling, Send, StartTLS
from casarray.access.imap.fetch import fetch
from casarray.access.imap.framing import (
    CommandReader,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
    RawCommand,
    ReaderEvent,
)
from casarray.access.imap.parser import SEARCH_CHARSETS, CommandParser, ParseError
from casarray.access.imap.search import MessageSource, evaluate
from casarray.access.imap.selected import MailboxGone, SelectedMailbox
from casarray.access.imap.sequence import SequenceError, SequenceSet
from casarray.mailstore.interface import (
    DELIMITER,
    FolderNotFound,
    MailboxStore,
    MailstoreError,
    MessageInfo,
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
    "NAMESPACE": _AUTH,
    "IDLE": _AUTH,
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
}
# Commands during which no EXPUNGE may be sent (RFC 3501 7.4.1; COPY too, as Dovecot).
_NO_EXPUNGE = frozenset({"FETCH", "STORE", "SEARCH", "COPY"})
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
        "_extra",
        "_limits",
        "_mode",
        "_pending_tag",
        "_reader",
        "_selected",
        "_starttls_available",
        "_state",
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
        self._user: str | None = None
        self._pending_tag = ""

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
        """In IDLE: untagged responses for changes made by other sessions."""
        if self._mode is not _Mode.IDLE or self._selected is None or self._store is None:
            return []
        out = _Output()
        try:
            out.extend(self._selected.update(self._store, expunge=True))
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
            f"APPENDLIMIT={self._limits.max_literal}",
        ]
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
        if self._state is State.SELECTED:
            self._state = State.AUTHENTICATED

    def _do_SELECT(self, cmd: c.MailboxCommand, out: _Output) -> _Done:
        readonly = cmd.name == "EXAMINE"
        self._deselect()
        try:
            view, lines = SelectedMailbox.open(self._mailbox, cmd.mailbox, readonly)
        except FolderNotFound:
            return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
        out.extend(lines)
        self._selected = view
        self._state = State.SELECTED
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
        if cmd.name == "LIST":
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
        values = {
            "MESSAGES": folder.exists,
            "RECENT": folder.recent,
            "UIDNEXT": folder.uid_next,
            "UIDVALIDITY": folder.uid_validity,
            "UNSEEN": folder.unseen,
        }
        items = " ".join(f"{item} {values[item]}" for item in dict.fromkeys(cmd.items))
        out.write(b"* STATUS %s (%s)\r\n" % (r.mailbox(folder.name), items.encode("ascii")))
        return _Done("OK", "STATUS completed")

    def _do_APPEND(self, cmd: c.Append, out: _Output) -> _Done:
        if not cmd.message:
            return _Done("NO", "An empty message can't be appended")
        try:
            appended = self._mailbox.append(cmd.mailbox, cmd.message, cmd.flags, cmd.date)
        except FolderNotFound:
            return _Done("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "TRYCREATE")
        code = f"APPENDUID {appended.uid_validity} {appended.uid}"
        return _Done("OK", "APPEND completed", code)

    def _do_NAMESPACE(self, cmd: c.Command, out: _Output) -> _Done:
        out.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return _Done("OK", "NAMESPACE completed")

    def _do_ENABLE(self, cmd: c.Enable, out: _Output) -> _Done:
        out.write(b"* ENABLED\r\n")  # no extension that needs enabling is implemented
        return _Done("OK", "ENABLE completed")

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

    def _on_idle_line(self, line: bytes | LineTooLong, out: _Output) -> None:
        tag = self._pending_tag
        self._mode = _Mode.COMMAND
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
        if not view.readonly:
            self._mailbox.expunge(view.name)  # silently (RFC 3501 6.4.2)
        self._deselect()
        return _Done("OK", "CLOSE completed")

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
        store = self._mailbox
        name = view.name

        def infos() -> dict[int, MessageInfo]:
            return {info.uid: info for info in store.messages(name)}

        def body(uid: int) -> bytes | None:
            try:
                return store.body(name, uid)
            except MailstoreError:
                return None

        def envelopes() -> dict[int, str]:
            return store.envelopes(name, view.uids)

        source = MessageSource(infos, body, envelopes)
        found = evaluate(cmd.key, view.uids, view.flags, view.recent, source)
        if cmd.uid:
            uids = view.uids
            numbers = b"".join(b" %d" % uids[i] for i in found)
        else:
            numbers = b"".join(b" %d" % (i + 1) for i in found)
        out.write(b"* SEARCH" + numbers + b"\r\n")
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_SEARCH = _do_SEARCH

    def _do_FETCH(self, cmd: c.Fetch, out: _Output) -> _Done:
        view = self._view
        indexes = self._indexes(cmd.messages, cmd.uid)
        result = fetch(self._mailbox, view, indexes, cmd.items, cmd.uid)
        out.extend(result.lines)
        if result.missing and not cmd.uid:
            return _Done("NO", "Some of the requested messages no longer exist", "EXPUNGEISSUED")
        return _Done("OK", f"{cmd.name} completed")

    _do_UID_FETCH = _do_FETCH

    def _do_STORE(self, cmd: c.Store, out: _Output) -> _Done:
        view = self._view
        if view.readonly:
            return _Done("NO", _READ_ONLY)
        indexes = self._indexes(cmd.messages, cmd.uid)
        uids = [view.uids[i] for i in indexes if view.uids[i] not in view.pending_expunge]
        if uids:
            changed = self._mailbox.store_flags(view.name, uids, cmd.mode, cmd.flags)
            view.set_flags(changed)
            out.extend(view.new_keywords())
        if not cmd.silent:
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

    _do_MOVE = _do_COPY
    _do_UID_COPY = _do_COPY
    _do_UID_MOVE = _do_COPY
