"""The fuzz targets: every parser an attacker can reach, each with the contract it must
keep whatever bytes it is given (issue 17, "Fuzzing").

A `Target` is set up once (`make()`, which returns the function run on each input) and
has seeds taken from the tests' own inputs (IMAP and SMTP transcripts, the messages of
tests/mailstore/messages, the seed's shell lines, real SOAP envelopes...) and a
dictionary of the grammar's words. Each input either keeps the contract or raises
`ContractBroken`; any other exception out of the function is a crash too: the
parser's documented clear error (an IMAP BAD, `ProxyHeaderError`, `PkiError`, the
shell's `ParseError`, an SMTP 5xx, a SOAP fault, an HTTP 4xx) is caught inside and
is no crash. An ERROR logged by casarray or aiosmtpd while an input runs (a session
that answered NO [SERVERBUG], an HTTP 500) is a crash as well.

Two runners use them: `bench/fuzz.py` (atheris, coverage-guided, a million inputs a
target) and `tests/test_fuzz_targets.py` (hypothesis, a few thousand inputs a target,
drawn as random bytes and as mutants of the seeds).

Not a conftest: the modules that use it import it.
"""

from __future__ import annotations

import ast as python_ast
import asyncio
import atexit
import base64
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
PASSWORD = "P@ssw0rd-lab"


class ContractBroken(AssertionError):
    """The input broke the target's contract (what it says is the bug)."""


@dataclass
class Target:
    name: str
    doc: str
    make: Callable[[], Callable[[bytes], None]]
    seeds: Callable[[], list[bytes]]
    tokens: tuple[bytes, ...] = ()
    max_len: int = 4096
    # the suite's share: examples of random bytes and of seed mutants (hypothesis), set
    # so that the targets' tests take about 40 s together on 2 cores
    examples: int = 300


# -- errors logged while an input runs --------------------------------------------


class _ErrorTrap(logging.Handler):
    """Keeps the ERROR records of the loggers watched (the session's NO [SERVERBUG],
    Starlette's 500, aiosmtpd's "500 Error: (...)" all log one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_TRAP = _ErrorTrap()
_WATCHED = ("casarray", "mail.log", "uvicorn.error", "starlette")


def _install_trap() -> _ErrorTrap:
    for name in _WATCHED:
        logger = logging.getLogger(name)
        if _TRAP not in logger.handlers:
            logger.addHandler(_TRAP)
        logger.propagate = False  # a million inputs print nothing on stderr
    return _TRAP


@contextlib.contextmanager
def no_errors_logged(what: str) -> Iterator[None]:
    """Raise ContractBroken when an ERROR is logged in the block."""
    trap = _install_trap()
    trap.records.clear()
    try:
        yield
    finally:
        _raise_logged(trap, what)


def _raise_logged(trap: _ErrorTrap, what: str) -> None:
    """The first ERROR logged, as ContractBroken (its exception chained)."""
    if trap.records:
        record = trap.records[0]
        trap.records.clear()
        detail = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            raise ContractBroken(f"{what} logged an error: {detail}: {exc!r}") from exc
        raise ContractBroken(f"{what} logged an error: {detail}")


# -- seeds from the tests' own sources ---------------------------------------------


def _constants(paths: list[Path]) -> Iterator[bytes | str]:
    """Every bytes and str constant of the Python files in `paths`, in order."""
    for path in paths:
        tree = python_ast.parse(path.read_text(encoding="utf-8"))
        for node in python_ast.walk(tree):
            if isinstance(node, python_ast.Constant) and isinstance(node.value, bytes | str):
                yield node.value


def _unique(items: list[bytes]) -> list[bytes]:
    return list(dict.fromkeys(items))


# -- IMAP -----------------------------------------------------------------------------

IMAP_WORDS = [
    *b"CAPABILITY NOOP LOGOUT STARTTLS AUTHENTICATE LOGIN SELECT EXAMINE CREATE DELETE RENAME "
    b"SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE UNSELECT EXPUNGE SEARCH FETCH "
    b"STORE COPY MOVE UID ID ENABLE IDLE DONE NAMESPACE NOTIFY COMPRESS GETQUOTAROOT GETQUOTA "
    b"SETQUOTA SORT THREAD CANCELUPDATE GENURLAUTH URLFETCH RESETKEY CONDSTORE QRESYNC "
    b"BODY BODY.PEEK BODYSTRUCTURE ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.SIZE RFC822.HEADER "
    b"RFC822.TEXT BINARY BINARY.PEEK BINARY.SIZE MODSEQ CHANGEDSINCE UNCHANGEDSINCE VANISHED "
    b"HEADER HEADER.FIELDS HEADER.FIELDS.NOT TEXT MIME +FLAGS -FLAGS .SILENT \\Seen \\Deleted "
    b"\\Flagged \\Answered \\Draft \\Recent ALL FAST FULL NOT OR ANSWERED BCC BEFORE CC FROM "
    b"KEYWORD LARGER NEW OLD ON RECENT SEEN SENTBEFORE SENTON SENTSINCE SINCE SMALLER SUBJECT "
    b"TO UNANSWERED UNDELETED UNSEEN RETURN MIN MAX COUNT SAVE CHARSET UTF-8 PLAIN INBOX "
    b"MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ SPECIAL-USE CHILDREN SUBSCRIBED RECURSIVEMATCH "
    b"CATENATE URL REFERENCES ORDEREDSUBJECT ARRIVAL DISPLAYFROM REVERSE SET NONE SELECTED "
    b"MessageNew MessageExpunge FlagChange MailboxName DEFLATE STORAGE 1:* * $ NIL".split(),
    *(b"{5}\r\n", b"{5+}\r\n", b"~{3}\r\n", b"\r\n", b" (", b")", b'"', b"[", b"]<0.10>"),
]

IMAP_MESSAGE = (
    b"From: Alice Liddell <alice@lab.net>\r\nTo: Bob <bob@lab.net>\r\n"
    b"Date: Thu, 01 Feb 2024 09:30:00 +0100\r\nSubject: Quarterly report\r\n"
    b"Message-ID: <report@lab.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nNumbers are up.\r\n"
    b"--b1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>up</p>\r\n--b1--\r\n"
)
_IMAP_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9.]{0,7} [A-Za-z]")


def imap_transcripts() -> list[bytes]:
    """The command lines the IMAP tests send (each a seed), literals included."""
    found = []
    for value in _constants(sorted((TESTS / "access" / "imap").glob("test_*.py"))):
        data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        if _IMAP_LINE.match(data) and data.endswith(b"\n") and len(data) < 4096:
            found.append(data)
    return _unique(found)


def _imap_parse(data: bytes) -> list[object]:
    """What the framing and the parser make of `data`: each event, and each command's
    parse (a typed command or the ParseError's message)."""
    from casarray.access.imap.commands import ParseError
    from casarray.access.imap.framing import CommandReader, RawCommand
    from casarray.access.imap.parser import CommandParser
    from casarray.access.imap.session import COMMAND_STATES

    reader = CommandReader(max_line=8192, max_literal=8192)
    reader.feed(data)
    out: list[object] = []
    while (event := reader.next_event()) is not None:
        out.append(event)
        if not isinstance(event, RawCommand):
            continue
        parser = CommandParser(event)
        try:
            parser.tag()
            name = parser.command_name()
            if name in COMMAND_STATES:
                out.append(parser.arguments(name))
        except ParseError as exc:
            out.append(str(exc))
    return out


def make_imap_parser() -> Callable[[bytes], None]:
    from casarray.access.imap.framing import CommandReader

    def one(data: bytes) -> None:
        whole = _imap_parse(data)
        # the same events whatever the chunks the bytes come in
        reader = CommandReader(max_line=8192, max_literal=8192)
        step = 1 + (data[0] % 7 if data else 0)
        events = []
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
            while (event := reader.next_event()) is not None:
                events.append(event)
        framed = [e for e in whole if type(e).__module__.endswith("framing")]
        if events != framed:
            raise ContractBroken(f"framing differs by chunk size {step}: {events!r} {framed!r}")

    return one


class _Backend:
    """The IMAP session's backend: alice (with PASSWORD) owns the mailbox."""

    server_fqdn = "CAS01.lab.net"

    def __init__(self, store: Any) -> None:
        self.store = store

    def login(self, user: str, password: str, client_address: str) -> Any:
        from casarray.access.imap.backend import LoginFailed, LoginOk

        if user.lower() == "alice@lab.net" and password == PASSWORD:
            return LoginOk("alice@lab.net", self.store, storage_limit=lambda: None)
        return LoginFailed()

    def mailbox_of(self, user: str) -> Any:
        return self.store if user.lower() == "alice@lab.net" else None


class ImapWorld:
    """A real mailbox database (SQLite, in a folder of its own) with alice's mailbox,
    made anew every `RESET` inputs so that it doesn't grow without end; sessions in
    any state."""

    RESET = 300
    GUID = "a11ce000-0000-4000-8000-000000000001"

    def __init__(self) -> None:
        from casarray.mailstore.store import SqlDatabaseStore

        self.folder = tempfile.mkdtemp(prefix="casarray-fuzz-imap-")
        atexit.register(self.close)
        self.database = SqlDatabaseStore(str(Path(self.folder) / "DB01.db"))
        self.runs = 0
        self.store: Any = None
        self._fresh()

    def _fresh(self) -> None:
        self.database.remove_mailbox(self.GUID)
        self.store = self.database.create_mailbox(self.GUID)
        when = datetime(2024, 2, 1, 8, 31, tzinfo=UTC)
        self.store.append("INBOX", IMAP_MESSAGE, ["\\Seen"], when)
        self.store.append("INBOX", b"Subject: two\r\n\r\nHi.\r\n", [], when + timedelta(days=1))
        self.store.append("INBOX", b"no header at all", ["\\Deleted", "$Work"], when)
        self.store.create_folder("Work")

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def session(self, state: int) -> tuple[Any, bytes]:
        """A session: 0 not authenticated, 1 logged in, 2 INBOX selected, 3 INBOX
        examined; with what it sent so far."""
        from casarray.access.imap.session import ImapSession, Limits

        self.runs += 1
        if self.runs % self.RESET == 0:
            self._fresh()
        session = ImapSession(
            _Backend(self.store),
            client_address="127.0.0.1",
            tls_active=True,
            starttls_available=False,
            limits=Limits(max_line=8192, max_literal=64 * 1024),
        )
        sent = _sent(session.greeting())
        if state >= 1:
            sent += _sent(session.feed(f'a0 LOGIN alice@lab.net "{PASSWORD}"\r\n'.encode()))
        if state >= 2:
            verb = b"SELECT" if state == 2 else b"EXAMINE"
            sent += _sent(session.feed(b"s0 " + verb + b" INBOX\r\n"))
        return session, sent


def _sent(events: list[Any]) -> bytes:
    from casarray.access.imap.events import Send

    return b"".join(e.data for e in events if isinstance(e, Send))


_TAGGED = re.compile(rb"^([^ *+][^ ]*) (OK|NO|BAD)( |\r\n)", re.M)


def _check_responses(out: bytes) -> None:
    if b"[SERVERBUG]" in out or b"* BYE Internal server error" in out:
        raise ContractBroken(f"the session failed: {out[-300:]!r}")
    if out and not out.endswith(b"\r\n"):
        raise ContractBroken(f"a response doesn't end with CRLF: {out[-100:]!r}")


def imap_session_one(world: ImapWorld, data: bytes) -> None:
    """The first byte chooses the session's state, the rest is what the client sends;
    the session answers with well-formed responses, never fails, and, unless it was
    told to log out or left waiting for a literal, IDLE's DONE or a SASL response,
    answers one more command after it."""
    from casarray.access.imap.session import State

    state, data = (data[0] % 4, data[1:]) if data else (0, b"")
    session, _ = world.session(state)
    with no_errors_logged("the IMAP session"):
        out = _sent(session.feed(data))
        _check_responses(out)
        if not session.wants_input:
            if b"* BYE" not in out:
                raise ContractBroken(f"the session closed without a BYE: {out[-300:]!r}")
            return
        waiting = session.idling or session._reader.in_command or session._mode.name != "COMMAND"
        if not waiting:
            last = _sent(session.feed(b"zz9 NOOP\r\n"))
            _check_responses(last)
            if session.wants_input and not re.search(rb"^zz9 (OK|BAD) ", last, re.M):
                raise ContractBroken(f"the next command got no answer: {last[-300:]!r}")
        session.connection_lost()
        if session.state is not State.LOGOUT:
            raise ContractBroken("the session didn't end with its connection")


def make_imap_session() -> Callable[[bytes], None]:
    world = ImapWorld()
    return lambda data: imap_session_one(world, data)


def imap_session_seeds() -> list[bytes]:
    seeds = []
    for line in imap_transcripts():
        upper = line.upper()
        state = 0 if b" LOGIN " in upper or b" AUTHENTICATE " in upper else 2
        seeds.append(bytes([state]) + line)
    return seeds


# -- MIME -----------------------------------------------------------------------------

SECTIONS = (
    "",
    "HEADER",
    "TEXT",
    "1",
    "2",
    "1.MIME",
    "1.1",
    "2.1.TEXT",
    "1.HEADER",
    "HEADER.FIELDS (FROM TO SUBJECT)",
    "HEADER.FIELDS.NOT (DATE)",
)


def mime_messages() -> list[bytes]:
    messages = [p.read_bytes() for p in sorted((TESTS / "mailstore" / "messages").glob("*.eml"))]
    return _unique([*messages, IMAP_MESSAGE])


MIME_WORDS = (
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"Content-Type: ",
    b"multipart/mixed",
    b"multipart/digest",
    b"message/rfc822",
    b"text/plain",
    b'; boundary="',
    b"--",
    b"charset=",
    b"name*0*=",
    b"utf-8''%E2%82%AC",
    b"Content-Transfer-Encoding: ",
    b"base64",
    b"quoted-printable",
    b"=?utf-8?q?",
    b"=?utf-8?b?",
    b"?=",
    b"From: ",
    b"To: ",
    b"Subject: ",
    b"Date: ",
    b"Message-ID: ",
    b"In-Reply-To: ",
    b"Content-Disposition: attachment; filename=",
    b"Content-Language: ",
    b"Content-Location: ",
    b"group: a@b, c@d;",
    b"<@route:a@b>",
    b'"\\"',
    b"(comment)",
    b"=\r\n",
    b"=3D",
)


def mime_one(data: bytes) -> None:
    """What the store computes at APPEND and what FETCH, SEARCH, web mail and the API
    read from a message: each a value for any bytes; BODY[] is the bytes themselves."""
    from casarray.mailstore import mime
    from casarray.mailstore.mime.binary import (
        UnknownEncoding,
        binary_section,
        encode_binary_parts,
    )
    from casarray.mailstore.mime.fetch import fetch_section

    parts = mime.cached_parts(data)
    for text in (parts.envelope, parts.bodystructure, parts.body):
        mime.to_wire(text)
    mime.read_envelope(parts.envelope)
    readable = mime.bodystructure_parts(parts.bodystructure)
    if fetch_section(data, "") != data:
        raise ContractBroken("BODY[] is not the message")
    for section in SECTIONS:
        fetch_section(data, section)
    for part in mime.message_parts(data)[:20]:
        mime.decoded_part(data, part.number)
        mime.part_text(data, part.number)
    for part in readable[:20]:
        mime.message_part(data, part.number)
    for number in ((1,), (2,), (1, 1)):
        with contextlib.suppress(UnknownEncoding):
            binary_section(data, number)
    with contextlib.suppress(UnknownEncoding):
        encode_binary_parts(data)
    mime.decoded_headers(data)
    mime.header_values(data, "Subject")
    mime.search_text(data, "report", body_only=False)
    mime.search_text(data, "x", body_only=True)
    mime.sent_date(data)
    mime.envelope_items(parts.envelope)


def make_mime() -> Callable[[bytes], None]:
    return mime_one


def mime_store_one(world: ImapWorld, data: bytes) -> None:
    """Any bytes APPENDed are stored and served: BODY[] gives them back byte for byte,
    and BODYSTRUCTURE, ENVELOPE and the parts answer without failing."""
    from casarray.mailstore.mime import normalize_newlines

    session, _ = world.session(2)
    with no_errors_logged("APPEND and FETCH"):
        out = _sent(session.feed(b"p1 APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n"))
        _check_responses(out)
        found = re.search(rb"^p1 OK \[APPENDUID \d+ (\d+)\]", out, re.M)
        if found is None:
            if re.search(rb"^p1 NO ", out, re.M) and not data:
                return  # an empty message is refused, with a reason
            raise ContractBroken(f"APPEND failed: {out[-300:]!r}")
        uid = found.group(1)
        fetch = b"p2 UID FETCH " + uid + b" (BODY.PEEK[] BODYSTRUCTURE ENVELOPE BODY"
        fetch += b" BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[1] BINARY.SIZE[1]"
        fetch += b" BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] RFC822.SIZE)\r\n"
        out = _sent(session.feed(fetch))
        _check_responses(out)
        if not re.search(rb"^p2 OK ", out, re.M):
            # BINARY of a part in an unknown transfer encoding is NO [UNKNOWN-CTE]
            if not re.search(rb"^p2 NO \[UNKNOWN-CTE\]", out, re.M):
                raise ContractBroken(f"FETCH failed: {out[-300:]!r}")
            out = _sent(session.feed(b"p3 UID FETCH " + uid + b" (BODY.PEEK[])\r\n"))
        # the store keeps a message with CRLF line ends, as IMAP servers do (bare LFs
        # become CRLF: `mime.normalize_newlines`); any other byte is kept as sent
        stored = normalize_newlines(data)
        marker = b"BODY[] {%d}\r\n" % len(stored)
        at = out.find(marker)
        if at < 0 or out[at + len(marker) : at + len(marker) + len(stored)] != stored:
            raise ContractBroken(f"BODY[] is not the bytes APPENDed: {out[:300]!r}")
        session.connection_lost()


def make_mime_store() -> Callable[[bytes], None]:
    world = ImapWorld()
    world.RESET = 2000
    return lambda data: mime_store_one(world, data)


# -- SMTP -----------------------------------------------------------------------------


def smtp_seeds() -> list[bytes]:
    message = b"From: x@far.net\r\nTo: alice@lab.net\r\nSubject: hello\r\n\r\nHi Alice.\r\n"
    plain = base64.b64encode(b"\0alice@lab.net\0" + PASSWORD.encode())
    return [
        b"EHLO far.net\r\nMAIL FROM:<x@far.net>\r\nRCPT TO:<alice@lab.net>\r\nDATA\r\n"
        + message
        + b".\r\nQUIT\r\n",
        b"HELO far.net\r\nMAIL FROM:<>\r\nRCPT TO:<bob@lab.net>\r\nDATA\r\n"
        + b"Subject: x\r\n\r\n..dot\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n",
        b"EHLO far.net\r\nMAIL FROM:<x@far.net> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n"
        b"RCPT TO:<nobody@lab.net>\r\nRCPT TO:<x@elsewhere.com>\r\nRCPT TO:<alice@lab.net>\r\n"
        b"DATA\r\nSubject: caf\xc3\xa9\r\n\r\nbody\r\n.\r\n",
        b"EHLO far.net\r\nAUTH PLAIN " + plain + b"\r\nMAIL FROM:<alice@lab.net>\r\n",
        b"EHLO far.net\r\nAUTH LOGIN\r\nYWxpY2U=\r\ncGFzcw==\r\nAUTH PLAIN\r\n*\r\n",
        b'EHLO [127.0.0.1]\r\nMAIL FROM:<"quoted local"@far.net>\r\nRCPT TO:<@r:a@lab.net>\r\n'
        b"VRFY alice\r\nEXPN list\r\nHELP\r\nSTARTTLS\r\nDATA x\r\nBDAT 10\r\nQUIT\r\n",
        b"EHLO far.net\r\nMAIL FROM:<x@far.net>\r\nRCPT TO:<alice@lab.net>\r\nDATA\r\n"
        b"Received: by a\r\n" * 3 + b"\r\n.\r\n",
    ]


SMTP_WORDS = (
    *b"HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP STARTTLS AUTH PLAIN LOGIN "
    b"FROM: TO: SIZE= BODY=8BITMIME SMTPUTF8 BDAT <> <alice@lab.net> @lab.net \r\n.\r\n "
    b"\r\n".split(),
    *(b"\r\n", b" ", b"\r\n.\r\n", b"\x00"),
)


class _FakeTransport(asyncio.Transport):
    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.7", 40000), "sockname": ("127.77.1.21", 25)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self.closed

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


@dataclass
class _SmtpUsers:
    mailboxes: set[str] = field(default_factory=lambda: {"alice@lab.net", "bob@lab.net"})

    def exists(self, address: str) -> bool | None:
        return address.lower() in self.mailboxes

    def known(self, address: str) -> bool:
        return True  # decided on the event loop: no thread per RCPT

    def authenticate(self, login: str, password: str, client_address: str) -> Any:
        from casarray.transport.mailboxes import AuthOutcome

        if login in {"alice", "alice@lab.net"} and password == PASSWORD:
            return AuthOutcome("alice@lab.net")
        return AuthOutcome(None)


class _ListQueue:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def enqueue(self, message: Any) -> None:
        self.messages.append(message)
        del self.messages[:-10]

    def free_space(self) -> int | None:
        return None  # not known (as on PostgreSQL)


_REPLY = re.compile(rb"[2-5]\d\d[ -][^\r\n]*\r\n")


def make_smtp_exchange() -> Callable[[bytes], bytes]:
    """The receive service's SMTP session (aiosmtpd's protocol with casarray's receive
    connector rules and DATA reader) on a transport that is no socket, in this thread:
    `exchange(data)` gives what the server sends for the client's bytes, then the end
    of the stream (ContractBroken when it stops reading or doesn't end, or logs an
    error). Anonymous mail for alice and bob of lab.net, 4000 bytes at most."""
    from casarray.transport.config import (
        ANONYMOUS_USERS,
        AUTHORITATIVE,
        BASIC_AUTH,
        EXCHANGE_USERS,
        Connector,
        Domain,
        TransportConfig,
    )
    from casarray.transport.policy import SessionGuard
    from casarray.transport.receive import ReceiveContext, TransportSMTP

    connector = Connector(
        name="Default MBX01",
        bindings=(("0.0.0.0", 25),),
        auth_mechanism=frozenset({BASIC_AUTH}),
        permission_groups=frozenset({ANONYMOUS_USERS, EXCHANGE_USERS}),
        max_message_size=4000,
        max_recipients_per_message=3,
    )
    context = ReceiveContext(
        config=TransportConfig(
            server="MBX01",
            fqdn="mbx01.lab.net",
            domains=(Domain("lab.net", AUTHORITATIVE),),
            connectors=(connector,),
        ),
        queue=_ListQueue(),  # type: ignore[arg-type]
        recipients=_SmtpUsers(),
        authenticator=_SmtpUsers(),
        guard_factory=lambda: SessionGuard(
            free_failures=1, delay=0.0, auth_limit=3, recipient_limit=5
        ),
    )
    loop = asyncio.new_event_loop()

    async def session(data: bytes) -> bytes:
        protocol = TransportSMTP(context, 25)
        transport = _FakeTransport(protocol)
        protocol.connection_made(transport)
        step = 1 + (data[0] % 13 if data else 0) * 97
        for i in range(0, len(data), step):
            protocol.data_received(data[i : i + step])
            await asyncio.sleep(0)
        # as a client that waits for its replies: the end of the stream comes once the
        # session has read everything and waits for more (or has ended)
        task = protocol._handler_coroutine
        reader: Any = protocol._reader
        deadline = loop.time() + 2.0
        while task is not None and not task.done():
            if reader._waiter is not None:  # it waits for more bytes
                break
            if loop.time() > deadline:
                raise ContractBroken("the SMTP session stopped reading what it was sent")
            await asyncio.sleep(0 if reader._buffer else 0.0002)
        protocol.eof_received()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except TimeoutError:
                raise ContractBroken("the SMTP session didn't end with its stream") from None
            except asyncio.CancelledError:
                pass  # aiosmtpd cancels its handler when the connection is lost
        if not transport.closed:
            transport.close()
        await asyncio.sleep(0)
        return bytes(transport.written)

    def exchange(data: bytes) -> bytes:
        with no_errors_logged("the SMTP session"):
            return loop.run_until_complete(session(data))

    return exchange


def make_smtp() -> Callable[[bytes], None]:
    """SMTP commands and DATA (`make_smtp_exchange`): every reply is a well-formed
    reply line (no control character of what the client sent in it), none is
    aiosmtpd's "500 Error: (exception)", and the session ends once the stream does."""
    exchange = make_smtp_exchange()

    def one(data: bytes) -> None:
        out = exchange(data)
        if not out.startswith(b"220 "):
            raise ContractBroken(f"no greeting: {out[:200]!r}")
        rest = _REPLY.sub(b"", out)
        if rest:
            raise ContractBroken(f"not a reply line: {rest[:200]!r} in {out[-400:]!r}")
        if b"500 Error: (" in out or b"Error: (" in out:
            raise ContractBroken(f"aiosmtpd caught an exception: {out[-400:]!r}")

    return one


# -- DNS ------------------------------------------------------------------------------


def dns_seeds() -> list[bytes]:
    import dns.message

    from tests.dns.test_fuzz import NAMES, TYPES

    seeds = []
    for i, name in enumerate(NAMES):
        for j, rdtype in enumerate(TYPES):
            query = dns.message.make_query(
                name, rdtype, use_edns=(i + j) % 3 - 1 if (i + j) % 3 else False
            )
            seeds.append(bytes([(i + j) % 2]) + query.to_wire())
    return seeds


def make_dns() -> Callable[[bytes], None]:
    """The authoritative server's core (`Responder.answer`), over UDP or TCP (the first
    byte): it never raises, answers nothing only to packets without an ID or with QR
    set, and what it sends back parses, carries the query's ID and, over UDP, fits."""
    import dns.message

    from tests.dns.test_fuzz import check

    def one(data: bytes) -> None:
        tcp, packet = (bool(data[0] & 1), data[1:]) if data else (False, b"")
        try:
            reply = check(packet, tcp=tcp)
        except AssertionError as exc:
            raise ContractBroken(f"the DNS answer breaks the contract: {exc}") from exc
        if reply is None or tcp:
            return
        try:
            query = dns.message.from_wire(packet)
        except Exception:
            return
        limit = max(512, query.payload) if query.edns >= 0 else 512
        if len(reply) > limit:
            raise ContractBroken(f"a UDP answer of {len(reply)} bytes over {limit}")

    return one


# -- PROXY protocol -----------------------------------------------------------------


def proxy_seeds() -> list[bytes]:
    from casarray.access.proxy_protocol import V2_SIGNATURE

    v4 = bytes([0x21, 0x11, 0, 12]) + bytes([192, 0, 2, 7, 127, 77, 1, 10]) + b"\x9c\x40\x00\x8f"
    v6 = bytes([0x21, 0x21, 0, 36]) + ipaddress.IPv6Address("2001:db8::7").packed
    v6 += ipaddress.IPv6Address("::ffff:127.77.1.10").packed + b"\x9c\x40\x00\x8f"
    return [
        b"PROXY TCP4 192.0.2.7 127.77.1.10 40000 143\r\na1 NOOP\r\n",
        b"PROXY TCP6 2001:db8::7 ::1 40000 993\r\n",
        b"PROXY UNKNOWN\r\n",
        V2_SIGNATURE + v4 + b"a1 NOOP\r\n",
        V2_SIGNATURE + v6,
        V2_SIGNATURE + bytes([0x20, 0x00, 0, 0]),
        V2_SIGNATURE + bytes([0x21, 0x00, 0, 3]) + b"TLV",
    ]


def make_proxy() -> Callable[[bytes], None]:
    """`proxy_protocol.parse`: a header and its length, NEED_MORE, or
    ProxyHeaderError; a header read from a prefix is the same with more bytes after
    it, and every shorter prefix of a header needs more."""
    from casarray.access.proxy_protocol import ProxyHeaderError, parse

    def one(data: bytes) -> None:
        try:
            found = parse(data)
        except ProxyHeaderError:
            return
        if found is None:
            return
        header, used = found
        if not 0 < used <= len(data):
            raise ContractBroken(f"the header took {used} of {len(data)} bytes")
        if parse(data[:used]) != found:
            raise ContractBroken("the header changes with the bytes after it")
        for cut in {1, used // 2, used - 1}:
            if 0 < cut < used:
                try:
                    shorter = parse(data[:cut])
                except ProxyHeaderError as exc:
                    raise ContractBroken(f"a prefix of {cut} bytes of a header: {exc}") from exc
                if shorter is not None:
                    raise ContractBroken(f"a prefix of {cut} bytes is a header: {shorter}")
        for address in (header.source, header.destination):
            if address is not None:
                ipaddress.ip_address(address[0])
                if not 0 <= address[1] <= 65535:
                    raise ContractBroken(f"port {address[1]}")

    return one


# -- certificate imports ---------------------------------------------------------------


@dataclass
class _Pki:
    seeds: list[bytes]


_PKI: _Pki | None = None


def _pki() -> _Pki:
    """A lab CA, a server certificate it issued with SANs, and the files an
    administrator imports: PEM (chain, key, encrypted key), DER, PKCS #7, PKCS #12 (with
    the password "pw") and Base64 text."""
    global _PKI
    if _PKI is not None:
        return _PKI
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
    from cryptography.x509.oid import NameOID

    now = datetime(2024, 1, 1, tzinfo=UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lab CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bj-cas.lab.net")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("bj-cas.lab.net"), x509.DNSName("autodiscover.lab.net")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    encrypted = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    der = leaf.public_bytes(serialization.Encoding.DER)
    p7 = pkcs7.serialize_certificates([leaf, ca], serialization.Encoding.DER)
    p12 = pkcs12.serialize_key_and_certificates(
        b"bj-cas", key, leaf, [ca], serialization.BestAvailableEncryption(b"pw")
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
        .public_bytes(pem)
    )
    files = [
        chain + key_pem,
        chain + encrypted,
        der,
        p7,
        p12,
        base64.b64encode(p12),
        base64.b64encode(der),
        pkcs7.serialize_certificates([leaf, ca], pem),
        csr,
    ]
    # the first byte is the password: none, the right one, a wrong one
    _PKI = _Pki([bytes([i % 3]) + f for i, f in enumerate(files)] + [b"\x01" + p12])
    return _PKI


def make_pki() -> Callable[[bytes], None]:
    """Import-ExchangeCertificate's reading of a file (`formats.read_bundle`,
    `chain_of`) and what it then reads of the certificate (thumbprint, key id, names,
    dates, the key's PEM): a certificate, or PkiError naming what is wrong."""
    from casarray.pki import certificates as certs
    from casarray.pki import formats, keys
    from casarray.pki import names as pki_names
    from casarray.pki.errors import PkiError

    passwords = (None, "pw", "wrong")

    def one(data: bytes) -> None:
        password, body = (passwords[data[0] % 3], data[1:]) if data else (None, b"")
        try:
            chain = formats.chain_of(formats.read_bundle(body, password))
        except PkiError:
            return
        for cert in (chain.leaf, *chain.intermediates):
            certs.thumbprint(cert)
            keys.key_id(cert.public_key())
            pki_names.subject_text(cert.subject)
            pki_names.subject_text(cert.issuer)
            certs.domains(cert)
            certs.san_names(cert)
            certs.serial_text(cert)
            certs.is_self_signed(cert)
            cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        if chain.key is not None:
            keys.private_pem(chain.key)

    return one


# -- the shell ---------------------------------------------------------------------------


def shell_lines() -> list[bytes]:
    """The command lines of the shell's tests (the seed's lines among them)."""
    found = []
    for value in _constants(sorted((TESTS / "shell").glob("*.py"))):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        if 3 <= len(text) < 600 and (
            re.match(r"\s*[\w$(@\[]", text) and re.search(r"[- $|=]", text)
        ):
            found.append(text.encode("utf-8", "surrogatepass"))
    return _unique(found)


SHELL_WORDS = tuple(
    w.encode()
    for w in (
        "Get-MailboxDatabase",
        "Set-MailboxDatabase",
        "New-ClientAccessArray",
        "Get-ClientAccessArray",
        "Set-NlbClusterPortRule",
        "Where-Object",
        "ForEach-Object",
        "Select-Object",
        " -Identity ",
        " -RpcClientAccessServer ",
        " -Fqdn ",
        " -Site ",
        " | ",
        "$_.",
        "$true",
        "$null",
        "@{",
        "@(",
        "$(",
        "[string]",
        "::",
        " -eq ",
        " -like ",
        " -f ",
        "'",
        '"',
        "`",
        "\u2013",
        "\u201c",
        ";",
        "{",
        "}",
        "10GB",
        "0x1F",
        "#",
        "<#",
        "#>",
    )
)


def _literal(node: Any) -> Any:
    """The value of a literal argument, as the evaluator gives it; other expressions
    as a string (the binder converts what it is given)."""
    from casarray.shell import ast

    if isinstance(node, ast.StringLiteral | ast.NumberLiteral):
        return node.value
    if isinstance(node, ast.ArrayLiteral):
        return [_literal(item) for item in node.items]
    if isinstance(node, ast.Variable):
        return {"true": True, "false": False, "null": None}.get(node.name.lower(), node.name)
    return type(node).__name__


def make_shell() -> Callable[[bytes], None]:
    """The shell's scanner and parser (a syntax tree or ParseError), `is_incomplete`,
    and the binding of each command to its cmdlet's parameters (an invocation, or the
    terminating error a person reads: unknown command, parameter or value)."""
    from casarray.shell import ast
    from casarray.shell.binding import bind_static
    from casarray.shell.errors import TerminatingError
    from casarray.shell.parser import ParseError, is_incomplete, parse
    from casarray.shell.pipeline import lookup_command

    def commands(node: Any) -> Iterator[ast.Command]:
        if isinstance(node, ast.Command):
            yield node
        if isinstance(node, ast.Node):
            for value in vars(node).values():
                yield from commands(value)
        elif isinstance(node, tuple | list):
            for item in node:
                yield from commands(item)

    def one(data: bytes) -> None:
        source = data.decode("utf-8", "replace")
        is_incomplete(source)
        try:
            script = parse(source)
        except ParseError as exc:
            exc.format()
            return
        for command in commands(script):
            try:
                cls, node = lookup_command(command, source)
                bind_static(cls, node, _literal, source)
            except TerminatingError:
                continue

    return one


# -- HTTP ------------------------------------------------------------------------------


@dataclass
class _Route:
    method: str
    path: str
    content_type: str
    auth: str  # "basic": alice's Basic credentials; "owa": her web mail session and token


_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
HTTP_ROUTES = (
    _Route("POST", "/autodiscover/autodiscover.xml", "text/xml", "basic"),
    _Route("POST", "/autodiscover/autodiscover.svc", "text/xml; charset=utf-8", "basic"),
    _Route("POST", "/EWS/Exchange.asmx", "text/xml; charset=utf-8", "basic"),
    _Route("POST", "/owa/login", _FORM, ""),
    _Route("PATCH", "/api/v1/folders/INBOX/messages/2/flags", _JSON, "basic"),
    _Route("GET", "", "", "basic"),  # the body is the path and query
    _Route("POST", "/api/v1/send", _JSON, "basic"),
    _Route("GET", "/mail/config-v1.1.xml?emailaddress=", "", ""),
    _Route("POST", "/owa/flag", _FORM, "owa"),
    _Route("POST", "/owa/move", _FORM, "owa"),
    _Route("POST", "/owa/send", _FORM, "owa"),
    _Route("GET", "", "", "owa"),  # web mail's pages: the body is the path and query
    _Route("POST", "/api/v1/folders", _JSON, "basic"),
    _Route("POST", "/api/v1/folders/INBOX/messages/3/move", _JSON, "basic"),
)


def http_seeds() -> list[bytes]:
    from casarray.access.ews.soap import NS_M, NS_SOAP, NS_T

    def envelope(body: str) -> bytes:
        return (
            f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{NS_SOAP}" '
            f'xmlns:m="{NS_M}" xmlns:t="{NS_T}"><s:Header><t:RequestServerVersion '
            f'Version="Exchange2010_SP2"/></s:Header><s:Body>{body}</s:Body></s:Envelope>'
        ).encode()

    ews = [
        envelope(
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            '</m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" '
            'BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
            "</m:ParentFolderIds></m:FindItem>"
        ),
        envelope(
            "<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape>"
            '</m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/>'
            '<t:DistinguishedFolderId Id="msgfolderroot"/></m:FolderIds></m:GetFolder>'
        ),
        envelope(
            '<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>Default</t:BaseShape>'
            '</m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="root"/>'
            "</m:ParentFolderIds></m:FindFolder>"
        ),
        envelope(
            "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
            '<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>'
            "<m:MaxChangesReturned>5</m:MaxChangesReturned></m:SyncFolderItems>"
        ),
        envelope(
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape>'
            '<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/>'
            "</t:AdditionalProperties></m:ItemShape><m:Restriction><t:Contains "
            'ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI '
            'FieldURI="item:Subject"/><t:Constant Value="report"/></t:Contains>'
            '</m:Restriction><m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI '
            'FieldURI="item:DateTimeReceived"/></t:FieldOrder></m:SortOrder>'
            '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>'
            "</m:FindItem>"
        ),
        envelope(
            '<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>'
            '<t:DistinguishedFolderId Id="drafts"/></m:SavedItemFolderId><m:Items><t:Message>'
            '<t:Subject>Hi</t:Subject><t:Body BodyType="Text">x</t:Body><t:ToRecipients>'
            "<t:Mailbox><t:EmailAddress>bob@lab.net</t:EmailAddress></t:Mailbox>"
            "</t:ToRecipients></t:Message></m:Items></m:CreateItem>"
        ),
        envelope(
            '<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="inbox"/>'
            "</m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>Fz</t:DisplayName>"
            "</t:Folder></m:Folders></m:CreateFolder>"
        ),
        envelope(
            '<m:ResolveNames ReturnFullContactData="true"><m:UnresolvedEntry>ali'
            "</m:UnresolvedEntry></m:ResolveNames>"
        ),
    ]
    autodiscover = (
        b'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.'
        b'microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request>'
        b"<EMailAddress>alice@lab.net</EMailAddress><AcceptableResponseSchema>http://schemas."
        b"microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
        b"</AcceptableResponseSchema></Request></Autodiscover>"
    )
    soap = (
        b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="http://schemas.'
        b'microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/'
        b'addressing" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
        b"<a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion><wsa:Action>"
        b"http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings"
        b"</wsa:Action></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request>"
        b"<a:Users><a:User><a:Mailbox>alice@lab.net</a:Mailbox></a:User></a:Users>"
        b"<a:RequestedSettings><a:Setting>InternalEwsUrl</a:Setting><a:Setting>"
        b"ExternalMailboxServer</a:Setting><a:Setting>UserDisplayName</a:Setting>"
        b"</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body>"
        b"</soap:Envelope>"
    )
    gets = [
        b"/api/v1/folders",
        b"/api/v1/folders/INBOX/messages?limit=5&offset=0&sort=date",
        b"/api/v1/folders/INBOX/messages/1",
        b"/api/v1/folders/INBOX/messages/1/parts/2",
        b"/api/v1/folders/Projects%2F2024",
        b"/api/v1/folders/INBOX/messages/1/raw",
        b"/api/v1/openapi.json",
        b"/EWS/Services.wsdl",
        b"/autodiscover/autodiscover.svc",
        b"/mail/config-v1.1.xml?emailaddress=alice%40lab.net",
    ]
    pages = [
        b"/owa?folder=INBOX&page=2",
        b"/owa/message?folder=INBOX&uid=1",
        b"/owa/attachment?folder=INBOX&uid=1&part=2",
        b"/owa/compose?reply=1&folder=INBOX",
    ]
    index = {(r.path, r.auth): i for i, r in enumerate(HTTP_ROUTES)}

    def to(path: str, data: bytes, auth: str = "basic") -> bytes:
        return bytes([index[path, auth]]) + data

    return [
        to("/autodiscover/autodiscover.xml", autodiscover),
        to("/autodiscover/autodiscover.svc", soap),
        *(to("/EWS/Exchange.asmx", e) for e in ews),
        to("/owa/login", b"username=alice%40lab.net&password=x&csrf=x", ""),
        to("/api/v1/folders/INBOX/messages/2/flags", b'{"add": ["\\\\Seen"], "remove": []}'),
        *(to("", g) for g in gets),
        to("/api/v1/send", b'{"to": ["bob@lab.net"], "subject": "x", "body": "y"}'),
        to("/mail/config-v1.1.xml?emailaddress=", b"alice%40lab.net", ""),
        to("/owa/flag", b"folder=INBOX&uid=1&flagged=1", "owa"),
        to("/owa/move", b"folder=INBOX&uid=4&destination=INBOX%2FWork", "owa"),
        to("/owa/send", b"to=bob%40lab.net&cc=&subject=Hi&body=Hello", "owa"),
        *(to("", p, "owa") for p in pages),
        to("/api/v1/folders", b'{"name": "INBOX/Fz"}'),
        to("/api/v1/folders/INBOX/messages/3/move", b'{"to": "INBOX/Work"}'),
    ]


HTTP_WORDS = (
    b"<t:FieldURI FieldURI=",
    b"<t:DistinguishedFolderId Id=",
    b"<t:FolderId Id=",
    b"<t:ItemId Id=",
    b"<m:ItemIds>",
    b"</m:ItemIds>",
    b"<t:IndexedFieldURI ",
    b"<t:ExtendedFieldURI ",
    b"PropertyTag=",
    b"FieldIndex=",
    b"<t:And>",
    b"<t:Or>",
    b"<t:Not>",
    b"<t:IsEqualTo>",
    b"<t:Exists>",
    b"<t:FieldURIOrConstant>",
    b"<t:Constant Value=",
    b"MaxEntriesReturned=",
    b"Offset=",
    b"<m:GetItem>",
    b"<m:UpdateItem>",
    b"<m:DeleteItem DeleteType=",
    b"<m:MoveItem>",
    b"<m:SendItem>",
    b"<m:GetAttachment>",
    b"<m:SyncFolderHierarchy>",
    b"<t:SetItemField>",
    b"<t:DeleteItemField>",
    b"<t:Message>",
    b"<t:IsRead>true</t:IsRead>",
    b"<t:MimeContent>",
    b"&amp;",
    b"&#0;",
    b"<!DOCTYPE x [<!ENTITY e 'x'>]>",
    b"<![CDATA[",
    b"xmlns:",
    b'encoding="utf-16"',
    b"%00",
    b"%2F",
    b"?folder=",
    b"&uid=",
    b"&limit=",
    b"/api/v1/",
    b"/owa/",
    b'"folder":',
    b'"uids":',
    b"null",
    b"[]",
    b"{}",
)


class HttpWorld:
    """The organization of the HTTP tests (BJ/SH, the BJ array, alice in DB01 with a
    seeded mailbox, passwords that verify in microseconds) in a folder of its own, and
    the Client Access server CAS01's ASGI app, called in-process with no socket; alice
    signed in to web mail. Her mailbox is seeded anew every `RESET` requests."""

    RESET = 500

    def __init__(self) -> None:
        from casarray.access.http import AppContext, create_app
        from casarray.access.imap.directory_backend import LoginThrottle
        from casarray.directory import Directory
        from tests.access.http import build_org
        from tests.access.http.test_api import cheap_hash, seed_mailbox
        from tests.conftest import build_bj

        self.folder = tempfile.mkdtemp(prefix="casarray-fuzz-http-")
        atexit.register(shutil.rmtree, self.folder, True)
        os.environ["CASARRAY_HOME"] = self.folder
        directory = Directory.open(f"sqlite:///{self.folder}/directory.db")
        build_org(build_bj(directory), cheap_hash(PASSWORD))
        seed_mailbox(directory, "alice")
        self.directory = directory
        self._seed = seed_mailbox
        throttle = LoginThrottle(max_failures=10**9)
        self.app = create_app(AppContext.for_server(directory, "CAS01", throttle=throttle))
        self.loop = asyncio.new_event_loop()
        token = base64.b64encode(f"alice@lab.net:{PASSWORD}".encode())
        self.authorization = b"Basic " + token
        self.runs = 0
        self.cookie, self.csrf = self._sign_in()

    def close(self) -> None:
        self.loop.close()
        self.directory.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _sign_in(self) -> tuple[bytes, bytes]:
        """Web mail's sign-in as a browser does it: the form (its cookie and token),
        the POST, then a page for the session's token."""
        sent = self.request("GET", b"/owa/login", {})
        cookie = _cookies(sent)
        token = _csrf(sent)
        form = b"username=alice%40lab.net&password=" + PASSWORD.encode().replace(b"@", b"%40")
        sent = self.request(
            "POST",
            b"/owa/login",
            {b"content-type": _FORM.encode(), b"cookie": cookie},
            form + b"&csrf=" + token,
        )
        cookie = _cookies(sent)
        sent = self.request("GET", b"/owa", {b"cookie": cookie})
        if _status(sent) != 200:
            raise RuntimeError(f"web mail's sign-in failed: {_status(sent)}")
        return cookie, _csrf(sent)

    def reset(self) -> None:
        from casarray.mailstore.provisioning import database_store

        mailbox = self.directory.mailboxes.one("alice")
        database_store(self.directory.databases.one(mailbox.database)).remove_mailbox(mailbox.guid)
        self._seed(self.directory, "alice")

    def request(
        self, method: str, target: bytes, headers: dict[bytes, bytes], body: bytes = b""
    ) -> list[MutableMapping[str, Any]]:
        path, _, query = target.partition(b"?")
        fields = [(b"host", b"bj-cas.lab.net"), (b"content-length", str(len(body)).encode())]
        fields += headers.items()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "https",
            "path": urllib.parse.unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": fields,
            "client": ("127.77.1.100", 50000),
            "server": ("127.77.1.11", 443),
            "extensions": {},
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        async def call() -> None:
            await asyncio.wait_for(self.app(scope, receive, send), 5.0)

        self.loop.run_until_complete(call())
        return sent

    def route(self, route: _Route, data: bytes) -> list[MutableMapping[str, Any]]:
        """The request `route` makes of the fuzzer's bytes."""
        self.runs += 1
        if self.runs % self.RESET == 0:
            self.reset()
        target = route.path.encode()
        body = data
        if route.method == "GET":
            target = (target + data) if route.path else data
            body = b""
        if not target.startswith(b"/"):
            target = b"/" + target
        target = re.sub(rb"[\x00-\x20\x7f-\xff#]", lambda m: b"%%%02X" % m.group()[0], target)
        headers: dict[bytes, bytes] = {}
        if route.content_type:
            headers[b"content-type"] = route.content_type.encode()
        if route.auth == "basic":
            headers[b"authorization"] = self.authorization
        elif route.auth == "owa":
            headers[b"cookie"] = self.cookie
            if body or route.method == "POST":
                body = b"csrf=" + self.csrf + b"&" + body
        return self.request(route.method, target, headers, body)


def _status(sent: list[MutableMapping[str, Any]]) -> int:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    if len(starts) != 1:
        raise ContractBroken(f"{len(starts)} response starts")
    return int(starts[0]["status"])


def _cookies(sent: list[MutableMapping[str, Any]]) -> bytes:
    start = next(m for m in sent if m["type"] == "http.response.start")
    found = [v.split(b";", 1)[0] for k, v in start["headers"] if k.lower() == b"set-cookie"]
    return b"; ".join(found)


def _csrf(sent: list[MutableMapping[str, Any]]) -> bytes:
    page = b"".join(m.get("body", b"") for m in sent)
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    if found is None:
        raise RuntimeError("web mail's page has no CSRF token")
    return found.group(1)


def make_http() -> Callable[[bytes], None]:
    """The HTTP request path of a Client Access server (Autodiscover POX and SOAP, EWS
    SOAP, web mail's forms and pages, the JSON API, autoconfig) as alice, with Basic
    credentials or her web mail session where the route wants them: the first byte
    chooses the route, the rest is the body (or, for a GET, the path and query). Every
    request gets one answer, never a 500 but a SOAP fault's, and logs no error."""
    world = HttpWorld()

    def one(data: bytes) -> None:
        route = HTTP_ROUTES[data[0] % len(HTTP_ROUTES)] if data else HTTP_ROUTES[0]
        with no_errors_logged("the HTTP app"):
            try:
                sent = world.route(route, data[1:])
            except TimeoutError:
                raise ContractBroken("the HTTP request got no answer in 5 s") from None
        status = _status(sent)
        text = b"".join(m.get("body", b"") for m in sent)
        # 503: no Hub Transport to send through; 500 with a SOAP fault: an envelope EWS
        # or Autodiscover can't read (SOAP 1.1 answers its faults with 500)
        if status >= 500 and status != 503 and not (status == 500 and b":Fault>" in text):
            raise ContractBroken(f"HTTP {status}: {text[:300]!r}")

    return one


# -- the catalogue ------------------------------------------------------------------------

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "imap-parser",
            "IMAP framing and command grammar",
            make_imap_parser,
            imap_transcripts,
            tuple(IMAP_WORDS),
            4096,
            1500,
        ),
        Target(
            "imap-session",
            "the IMAP session (not authenticated, logged in, selected, examined)",
            make_imap_session,
            imap_session_seeds,
            tuple(IMAP_WORDS),
            4096,
            500,
        ),
        Target("mime", "the MIME parser", make_mime, mime_messages, MIME_WORDS, 16384, 800),
        Target(
            "mime-store",
            "APPEND of any bytes, then FETCH of its structure and bytes",
            make_mime_store,
            mime_messages,
            MIME_WORDS,
            16384,
            200,
        ),
        Target("smtp", "SMTP commands and DATA", make_smtp, smtp_seeds, SMTP_WORDS, 4096, 500),
        Target("dns", "the DNS handler", make_dns, dns_seeds, (), 1024, 1200),
        Target("http", "the HTTP request path", make_http, http_seeds, HTTP_WORDS, 8192, 120),
        Target("proxy", "PROXY protocol headers", make_proxy, proxy_seeds, (), 600, 2000),
        Target("pki", "certificate imports", make_pki, lambda: _pki().seeds, (), 8192, 500),
        Target(
            "shell",
            "the shell's parser and binding",
            make_shell,
            shell_lines,
            SHELL_WORDS,
            1024,
            1000,
        ),
    )
}
