"""The asyncio IMAP server around the sans-IO session (`session.ImapSession`).

One `asyncio.Protocol` object per connection and no thread of its own. The input of
a session logged in to a local store (SQLite on this machine, whose operations take a
fraction of a millisecond and never wait on a network) runs on the event loop itself,
a command line at a time (a client's pipelined batch waits for the loop's next turn,
so every session takes its turn), APPENDs with their literals included up to
INLINE_MAX bytes. Everything else (logins with their argon2id, IDLE, sessions on
PostgreSQL, larger input) runs in a shared worker pool, one call at a time per
connection, the socket's reading paused meanwhile (backpressure: a client can't make
the server buffer more than one read ahead of the session). Why not the pool for all:
the threads of one process share the GIL, and every sqlite3 call lets it go; a thread
that held the database's write lock then waited for the GIL behind the others' Python
work, every writer queued behind it, and under imaptest's 50-client load the pool's
threads spent three quarters of their time waiting (the loop alone does twice the
work). The responses of one step go out in one write. When
the client doesn't read what it is sent, the transport's write buffer pauses the
session in turn. STARTTLS upgrades the connection in place (`loop.start_tls`); the
implicit-TLS listener (993) starts TLS before the greeting. After COMPRESS DEFLATE the
connection inflates what it reads and deflates what it writes (`compression.py`). A
session in IDLE is polled every `poll_interval` seconds (a message appended through
another Client Access server shows within a second), and a connection silent for the
session's idle timeout is handed to `session.timed_out()`.

Per idle connection the server keeps the protocol object (slots only), the transport
and the session; reads go through the event loop's buffer, so nothing large stays
allocated per connection.

    server = ImapServer(backend, name="CAS01", host="127.77.1.11", ssl_context=ctx)
    await server.start(port=143, tls_port=993)
    ...
    await server.shutdown()
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, TypeVarTuple, cast

from casarray.access.imap.backend import Backend
from casarray.access.imap.compression import CompressionError, DeflateStream
from casarray.access.imap.events import Close, Compress, Event, Idling, Send, StartTLS
from casarray.process.limits import ConnectionCounter, ConnectionLimits, Refusal, deadline

if TYPE_CHECKING:
    from casarray.access.imap.session import Limits

log = logging.getLogger("casarray.imap")

BYE_SHUTDOWN = b"* BYE Server shutting down\r\n"
BYE_ERROR = b"* BYE Internal server error\r\n"
BYE_REFUSED = {
    Refusal.ADDRESS: b"* BYE [UNAVAILABLE] Too many connections from your address\r\n",
    Refusal.TOTAL: b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
}
BYE_LOGIN_TIMEOUT = b"* BYE Autologout; not logged in in time\r\n"
BYE_COMMAND_TIMEOUT = b"* BYE Autologout; the command was not completed in time\r\n"
# Exchange 2010's IMAP4 service: MaxConnections and MaxConnectionFromSingleIP.
DEFAULT_LIMITS = ConnectionLimits(per_address=2000, total=2000 * 5)
TLS_HANDSHAKE_TIMEOUT = 30.0
# After our close_notify, how long to wait for the client's before dropping the
# connection (the default, 30 s, keeps sessions that said BYE around at shutdown).
TLS_SHUTDOWN_TIMEOUT = 1.0
SWEEP_INTERVAL = 1.0
# Data that arrives while the session is busy is held up to this much before reading
# is paused (it normally isn't: reading is paused during every feed()).
MAX_PENDING = 64 * 1024
# How long the balancer has to send its PROXY protocol header.
PROXY_TIMEOUT = 5.0


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may take in each state, in seconds (the authenticated
    idle time-out, the autologout, is the session's `Limits.idle_timeout`, 30 min):

    - `pre_authenticated`: from the connection to a completed login, in all (Exchange's
      PreAuthenticatedConnectionTimeout, 60 s; Dovecot's login time-out is 3 min);
    - `command`: a command line begun and not completed, from its first byte (a
      slowloris sending a byte at a time is cut then), plus the time its literals'
      bytes take at `literal_rate` bytes a second (an APPEND that keeps up is never cut);
    - `send`: the client reading nothing of what it is sent (nginx's send_timeout);
    - `tls_handshake`: an implicit-TLS or STARTTLS handshake;
    - `close_linger`: after BYE, how long the client has to read it before the
      connection is dropped."""

    pre_authenticated: float = 60.0
    command: float = 60.0
    literal_rate: float = 240.0  # bytes/s (IIS's minBytesPerSecond)
    send: float = 60.0
    tls_handshake: float = TLS_HANDSHAKE_TIMEOUT
    close_linger: float = 10.0


@dataclass(frozen=True)
class ListenerInfo:
    """One bound listener: its address, its port and whether TLS is implicit."""

    host: str
    port: int
    implicit_tls: bool

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port} ({'TLS' if self.implicit_tls else 'STARTTLS'})"


class Session(Protocol):
    """What the server needs of a session (`session.ImapSession`; the asyncio tests use a
    scripted stand-in): each call returns the events to carry out."""

    @property
    def wants_input(self) -> bool:
        """False once the session has ended: the connection's reading stays paused."""
        ...

    def greeting(self) -> list[Event]: ...

    def feed(self, data: bytes) -> list[Event]: ...

    def tls_started(self) -> list[Event]: ...

    def poll(self) -> list[Event]: ...

    def timed_out(self) -> list[Event]: ...

    def connection_lost(self) -> None: ...


class SessionFactory(Protocol):
    """Makes one connection's session (`session.ImapSession` itself, by default)."""

    def __call__(
        self,
        backend: Backend,
        /,
        *,
        client_address: str,
        tls_active: bool,
        starttls_available: bool,
        allow_plaintext: bool,
        limits: Limits,
        capabilities_extra: tuple[str, ...],
    ) -> Session: ...


_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


# Commands that never run on the event loop: a login's argon2id, IDLE, and those whose
# effect is on the connection itself. (Only a logged-in session's input runs there, for
# which LOGIN and AUTHENTICATE are refused at once; they are still kept out, to be safe.)
_THREAD_ONLY = frozenset((b"LOGIN", b"AUTHENTICATE", b"IDLE", b"STARTTLS", b"COMPRESS"))
INLINE_MAX = 128 * 1024  # bytes of input (an APPEND's literal too) the loop may run itself


def _inline_ok(data: bytes) -> bool:
    """Whether the event loop may run a logged-in session's input `data`: INLINE_MAX bytes
    at most, and no line whose second word (a command's name, after UID too) is in
    _THREAD_ONLY. Lines of a literal are looked at too: a message line that happens to
    read like one sends the input to the pool, which is only slower."""
    if len(data) > INLINE_MAX:
        return False
    upper = data.upper()
    if not any(name in upper for name in _THREAD_ONLY):
        return True  # the common case, at C speed: none of the names anywhere
    for line in data.split(b"\n"):
        parts = line.split(b" ", 3)
        if len(parts) < 2:
            continue
        name = parts[1].rstrip(b"\r").upper()
        if name == b"UID" and len(parts) > 2:
            name = parts[2].rstrip(b"\r").upper()
        if name in _THREAD_ONLY:
            return False
    return True


class ImapConnection(asyncio.Protocol):
    """One client connection: feeds what it reads to its session and carries out the
    session's events."""

    __slots__ = (
        "_batch",
        "_batch_at",
        "_busy",
        "_closed_at",
        "_closing",
        "_cmd_bytes",
        "_cmd_start",
        "_counted",
        "_idle_handle",
        "_idling",
        "_lost",
        "_pending",
        "_pending_size",
        "_proxy_buffer",
        "_proxy_timer",
        "_read_paused",
        "_shutdown",
        "_tls_starting",
        "_write_paused",
        "_write_paused_at",
        "bytes_in",
        "bytes_out",
        "cid",
        "compression",
        "implicit_tls",
        "last_active",
        "opened",
        "peer",
        "server",
        "session",
        "tls",
        "transport",
    )

    def __init__(self, server: ImapServer, implicit_tls: bool) -> None:
        self.server = server
        self.implicit_tls = implicit_tls
        self.tls = implicit_tls
        self.cid = 0
        self.peer = "?"
        self.session: Session | None = None
        self.transport: asyncio.Transport | None = None
        self._busy = False
        self._closing = False
        self._lost = False
        self._shutdown = False
        self._tls_starting = False
        self._read_paused = False
        self._write_paused = False
        self._idling = False
        self._idle_handle: asyncio.TimerHandle | None = None
        self._pending: list[bytes] | None = None
        # A pipelined batch, run a command line per step from _batch_at.
        self._batch = b""
        self._batch_at = 0
        self._pending_size = 0
        self._proxy_buffer: bytes | None = None  # awaiting the balancer's PROXY header
        self._proxy_timer: asyncio.TimerHandle | None = None
        self.compression: DeflateStream | None = None  # after COMPRESS DEFLATE
        self.bytes_in = 0
        self.bytes_out = 0
        self.opened = self.last_active = time.monotonic()
        self._counted: str | None = None  # the key the server's counter counts it under
        self._cmd_start = 0.0  # when the command line now arriving began (0: none)
        self._cmd_bytes = 0  # bytes of it received so far
        self._write_paused_at = 0.0
        self._closed_at = 0.0

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server hands a read-write transport: asyncio's is an asyncio.Transport,
        # uvloop's has the same methods without being a subclass (hence a cast, no check).
        server = self.server
        self.transport = cast(asyncio.Transport, transport)
        self.cid = server._next_id()
        peername = transport.get_extra_info("peername")
        client_address = peername[0] if peername else "?"
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server._connections.add(self)
        log.debug(
            "%s #%d %s connect %s",
            server.name,
            self.cid,
            self.peer,
            "tls" if self.implicit_tls else "plain",
        )
        sockname = transport.get_extra_info("sockname")
        local_port = int(sockname[1]) if sockname else 0
        proxied = not self.implicit_tls and server.expects_proxy(client_address, local_port)
        # Counted from the accept on, as the kernel sees it (a balancer's connection
        # in the total only, until its PROXY header names the client).
        counted = server.counter.admit(client_address, exempt=proxied)
        if isinstance(counted, Refusal):
            self._refuse(counted, client_address)
            return
        self._counted = counted
        if proxied:
            # the balancer says first who the client is (PROXY protocol)
            self._proxy_buffer = b""
            self._proxy_timer = server.loop.call_later(PROXY_TIMEOUT, self._proxy_failed)
            return
        self._begin(client_address)

    def _refuse(self, refusal: Refusal, client_address: str) -> None:
        """Over a connection limit: say so (on the implicit-TLS port too: its handshake
        is done by then) and close."""
        server = self.server
        server.refused[refusal] += 1
        if server.refused[refusal] <= 10 or server.refused[refusal] % 1000 == 0:
            log.warning(
                "%s: refused a connection from %s: %s (%d so far)",
                server.name,
                client_address,
                refusal.value,
                server.refused[refusal],
            )
        self._bye(BYE_REFUSED[refusal])

    def _begin(self, client_address: str) -> None:
        """Start the session: its greeting goes out."""
        server = self.server
        try:
            self.session = session = server._session_factory(
                server.backend,
                client_address=client_address,
                tls_active=self.implicit_tls,
                starttls_available=not self.implicit_tls and server.ssl_context is not None,
                allow_plaintext=server.allow_plaintext,
                limits=server.limits,
                capabilities_extra=server.capabilities_extra,
            )
            events = session.greeting()
        except Exception:
            log.exception("%s #%d session start failed", server.name, self.cid)
            self._fail()
            return
        self._handle(events)

    def _proxy_data(self, data: bytes) -> None:
        from casarray.access import proxy_protocol

        buffer = (self._proxy_buffer or b"") + data
        try:
            parsed = proxy_protocol.parse(buffer)
        except proxy_protocol.ProxyHeaderError as exc:
            log.warning("%s #%d %s: %s", self.server.name, self.cid, self.peer, exc)
            self._proxy_failed()
            return
        if parsed is None:
            self._proxy_buffer = buffer
            return
        header, used = parsed
        self._proxy_buffer = None
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
            self._proxy_timer = None
        balancer = self.peer
        client_address = self.peer.rsplit(":", 1)[0]
        if header.source is not None:
            client_address = header.source[0]
            self.peer = f"{header.source[0]}:{header.source[1]}"
        log.info("%s #%d %s via %s", self.server.name, self.cid, self.peer, balancer)
        # the limit per address is the real client's
        counted = self.server.counter.move(self._counted or "", client_address)
        self._counted = None
        if isinstance(counted, Refusal):
            self._refuse(counted, client_address)
            return
        self._counted = counted
        self._begin(client_address)
        rest = buffer[used:]
        if rest and self.session is not None:
            self.data_received(rest)

    def _proxy_failed(self) -> None:
        """No valid PROXY header from the balancer in time: drop the connection."""
        self._proxy_timer = None
        if self._proxy_buffer is not None:
            self._proxy_buffer = None
            self._closing = True
            if self.transport is not None:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = now = time.monotonic()
        self.bytes_in += len(data)
        if not self._cmd_start:
            self._cmd_start = now
        self._cmd_bytes += len(data)
        if self._proxy_buffer is not None:
            self._proxy_data(data)
            return
        if self._closing or self._tls_starting:
            return
        if self._busy or self._write_paused:
            if self._pending is None:
                self._pending = [data]
            else:
                self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > MAX_PENDING:
                self._pause_reading()
            return
        self._feed(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def pause_writing(self) -> None:
        # The client isn't reading what it is sent: stop reading what it sends.
        self._write_paused = True
        self._write_paused_at = time.monotonic()
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._write_paused_at = 0.0
        if not self._busy:
            self._continue()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
            self._proxy_timer = None
        self._lost = True
        self._closing = True
        self._stop_idle()
        server = self.server
        server._connections.discard(self)
        if self._counted is not None:
            server.counter.release(self._counted)
            self._counted = None
        # A connection that sent nothing (a balancer's or health page's probe, every
        # 500 ms) is logged only at DEBUG.
        log.log(
            logging.INFO if self.bytes_in else logging.DEBUG,
            "%s #%d %s close after %.1f s, %d bytes in, %d out%s",
            server.name,
            self.cid,
            self.peer,
            time.monotonic() - self.opened,
            self.bytes_in,
            self.bytes_out,
            f" ({exc})" if exc else "",
        )
        if not self._busy:
            self._release_session()

    # -- the session --------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        assert self.session is not None  # input is fed only once the session has started
        if not self._cmd_start:
            self._cmd_start = time.monotonic()
        if self.compression is not None:
            try:
                data = self.compression.inflate(data)
            except CompressionError as exc:
                log.info("%s #%d %s: %s", self.server.name, self.cid, self.peer, exc)
                self._fail()
                return
            if not data:  # more compressed input is needed
                self._continue()
                return
        # A command line at a time: the rest of a pipelined batch waits for the next
        # turn (every session takes its turn), and for the client to read the answers
        # so far (a client that pipelines and never reads can't make the server hold
        # more than one command's answer).
        if self.compression is None and b"{" not in data:
            end = data.find(b"\n") + 1
            if 0 < end < len(data):
                self._batch, self._batch_at = data, end
                data = data[:end]
        self._step(data)

    def _step(self, data: bytes) -> None:
        assert self.session is not None
        if self.server.inline and _inline_ok(data) and getattr(self.session, "local_store", False):
            # The input of a session on a local store runs here (see the module's
            # docstring).
            self._run_inline(data)
            return
        self._busy = True
        self._pause_reading()
        self.server._run(self.session.feed, data).add_done_callback(self._fed)

    def _run_inline(self, data: bytes) -> None:
        assert self.session is not None
        try:
            events = self.session.feed(data)
        except Exception:
            log.exception("%s #%d session error", self.server.name, self.cid)
            self._fail()
            return
        self._handle(events)
        self._progress(events)
        if self._batch:
            self._busy = True
            self.server._wait_turn(self)
            return
        self._continue()

    def _next_turn(self) -> None:
        self._busy = False
        self._continue()

    def _next_batch_line(self) -> None:
        """The batch's next command line (the last one ends the batch)."""
        batch, start = self._batch, self._batch_at
        end = batch.find(b"\n", start) + 1
        if 0 < end < len(batch):
            self._batch_at = end
        else:
            end, self._batch, self._batch_at = len(batch), b"", 0
        self._step(batch[start:end])

    def _settle(self, future: asyncio.Future[list[Event]], what: str) -> list[Event] | None:
        """The events a worker-thread call of the session produced; None when the
        connection is finished (the call failed, or the client went away meanwhile)."""
        self._busy = False
        try:
            events = future.result()
        except Exception:
            log.exception("%s #%d %s", self.server.name, self.cid, what)
            self._fail()
            return None
        if self._lost:
            self._release_session()
            return None
        return events

    def _fed(self, future: asyncio.Future[list[Event]]) -> None:
        events = self._settle(future, "session error")
        if events is None:
            return
        self._handle(events)
        self._progress(events)
        self._continue()

    def _progress(self, events: list[Event]) -> None:
        """After the session took input: the command deadline stops when no command is
        left unfinished, and starts again when one was answered (or a literal's
        continuation sent) and more of the input waits."""
        session = self.session
        if session is None or not getattr(session, "input_pending", False):
            self._cmd_start = 0.0
            self._cmd_bytes = 0
        elif any(isinstance(event, Send) for event in events):
            self._cmd_start = time.monotonic()
            self._cmd_bytes = 0

    def _continue(self) -> None:
        """After the session finished a step: feed what arrived meanwhile, or read on."""
        if self._lost:
            return
        if self._shutdown and not self._closing:
            self._bye(BYE_SHUTDOWN)
            return
        if self._closing or self._tls_starting or self._busy or self._write_paused:
            return
        if self._batch:  # before what arrived meanwhile, which came after it
            self._next_batch_line()
            return
        if self.compression is not None and self.compression.has_input:
            self._feed(b"")  # the rest of what was inflated only in part
            return
        if self._pending:
            data = b"".join(self._pending)
            self._pending = None
            self._pending_size = 0
            self._feed(data)
            return
        if self.session is None or self.session.wants_input:
            self._resume_reading()

    def _handle(self, events: Iterable[Event]) -> None:
        sends: list[bytes] = []  # written together: one send() for a command's responses
        for event in events:
            if self._closing:
                return
            if isinstance(event, Send):
                sends.append(event.data)
                continue
            if sends:
                self._write(b"".join(sends))
                sends = []
            if isinstance(event, Compress):
                self._start_compression(event.pending)
            elif isinstance(event, StartTLS):
                self._start_tls()
                return
            elif isinstance(event, Idling):
                if event.active:
                    self._start_idle()
                else:
                    self._stop_idle()
            elif isinstance(event, Close):
                self._close()
                return
        if sends and not self._closing:
            self._write(b"".join(sends))

    def _release_session(self) -> None:
        session = self.session
        if session is None:
            return
        self.session = None
        try:
            self.server._run(session.connection_lost)
        except RuntimeError:  # the worker pool is shut down: the server is stopping
            with contextlib.suppress(Exception):
                session.connection_lost()

    def _write(self, data: bytes) -> None:
        assert self.transport is not None  # events come after connection_made
        if self.compression is not None:
            data = self.compression.deflate(data)
        self.bytes_out += len(data)
        self.transport.write(data)

    def _start_compression(self, pending: bytes) -> None:
        """COMPRESS DEFLATE: from now on both directions are deflate streams. What the
        client sent after the command (`pending`, from the session's buffer) goes
        before what arrived meanwhile; `_feed` inflates both."""
        self.compression = DeflateStream()
        if self._batch:  # the rest of the batch came after the command: compressed
            pending += self._batch[self._batch_at :]
            self._batch, self._batch_at = b"", 0
        if pending:
            self._pending = [pending, *(self._pending or [])]
            self._pending_size += len(pending)

    # -- STARTTLS -----------------------------------------------------------------------

    def _start_tls(self) -> None:
        context = self.server.ssl_context
        if context is None or self.tls:
            log.error("%s #%d STARTTLS without a TLS context", self.server.name, self.cid)
            self._fail()
            return
        self._tls_starting = True
        # Anything the client sent after STARTTLS, before the handshake, is dropped:
        # plaintext must not be taken as if it had come over TLS.
        self._batch, self._batch_at = b"", 0
        self._pending = None
        self._pending_size = 0
        task = asyncio.ensure_future(self._upgrade(context))
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)

    async def _upgrade(self, context: ssl.SSLContext) -> None:
        assert self.transport is not None and self.session is not None  # a session asked
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self.transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.server.timeouts.tls_handshake,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("%s #%d %s STARTTLS failed: %s", self.server.name, self.cid, self.peer, exc)
            self._tls_starting = False
            self._closing = True
            with contextlib.suppress(Exception):
                self.transport.abort()
            self.connection_lost(exc)  # the TLS layer had the connection: not called
            return
        if transport is None or self._lost:
            return
        self.transport = transport
        self.tls = True
        self._tls_starting = False
        self._read_paused = False
        log.info(
            "%s #%d %s starttls %s",
            self.server.name,
            self.cid,
            self.peer,
            transport.get_extra_info("cipher", ("?",))[0],
        )
        try:
            events = self.session.tls_started()
        except Exception:
            log.exception("%s #%d session error after STARTTLS", self.server.name, self.cid)
            self._fail()
            return
        self._handle(events)
        self._continue()

    # -- IDLE -----------------------------------------------------------------------------

    def _start_idle(self) -> None:
        self._idling = True
        if self._idle_handle is None:
            self._idle_handle = self.server.loop.call_later(
                self.server.poll_interval, self._poll_due
            )

    def _stop_idle(self) -> None:
        self._idling = False
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _poll_due(self) -> None:
        self._idle_handle = None
        if not self._idling or self._closing:
            return
        if self._busy or self._write_paused:
            self._start_idle()  # try again next tick
            return
        self._busy = True
        assert self.session is not None  # only a started session idles
        self.server._run(self.session.poll).add_done_callback(self._polled)

    def _polled(self, future: asyncio.Future[list[Event]]) -> None:
        events = self._settle(future, "session poll error")
        if events is None:
            return
        self._handle(events)
        if self._idling and not self._closing:
            self._start_idle()
        self._continue()

    # -- time-out and shutdown ------------------------------------------------------------

    def check_timeout(self, now: float, timeout: float) -> None:
        """Once a second (the server's sweep): end a connection past a deadline of its
        state (`Timeouts`), or hand one silent for the idle time-out to its session."""
        if self._lost:
            return
        timeouts = self.server.timeouts
        if self._closing:  # BYE said: the client had its time to read it
            if self._closed_at and now - self._closed_at > timeouts.close_linger:
                self._abort("not reading after BYE")
            return
        if self._write_paused and now - self._write_paused_at > timeouts.send:
            self._abort(f"reading nothing of what it is sent for {timeouts.send:g} s")
            return
        if self._busy or self._tls_starting:
            return
        session = self.session
        if session is None:  # still awaiting a PROXY header: its own timer ends it
            return
        if self._cmd_start and now > deadline(
            self._cmd_start, timeouts.command, self._cmd_bytes, timeouts.literal_rate
        ):
            log.info("%s #%d %s command time-out", self.server.name, self.cid, self.peer)
            self._bye(BYE_COMMAND_TIMEOUT)
            return
        if (
            getattr(session, "user", None) is None
            and now - self.opened > timeouts.pre_authenticated
            and session.wants_input
        ):
            log.info("%s #%d %s login time-out", self.server.name, self.cid, self.peer)
            self._bye(BYE_LOGIN_TIMEOUT)
            return
        if now - self.last_active < timeout:
            return
        self.last_active = now  # one call per timeout period
        log.info("%s #%d %s idle time-out", self.server.name, self.cid, self.peer)
        try:
            events = session.timed_out()
        except Exception:
            log.exception("%s #%d session error on time-out", self.server.name, self.cid)
            self._fail()
            return
        self._handle(events)

    def shutdown(self) -> None:
        """Say BYE and close, once the session's current step (if any) has finished."""
        if self._closing or self._lost:
            return
        if self._proxy_buffer is not None:
            self._proxy_failed()
            return
        self._shutdown = True
        if self._tls_starting:
            assert self.transport is not None  # a session asked for TLS
            self._closing = True
            self.transport.abort()
        elif not self._busy:
            self._bye(BYE_SHUTDOWN)

    # -- the transport --------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._read_paused:
            self._read_paused = True
            with contextlib.suppress(Exception):
                if self.transport is not None:
                    self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            with contextlib.suppress(Exception):
                if self.transport is not None:
                    self.transport.resume_reading()

    def _bye(self, line: bytes) -> None:
        if not self._closing and self.transport is not None:
            self._write(line)
        self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._closed_at = time.monotonic()
        self._stop_idle()
        self._pending = None
        if self.transport is not None:
            self.transport.close()  # after the write buffer is flushed

    def _fail(self) -> None:
        self._bye(BYE_ERROR)

    def _abort(self, why: str) -> None:
        log.info("%s #%d %s dropped: %s", self.server.name, self.cid, self.peer, why)
        self._closing = True
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()


class ImapServer:
    """The IMAP service of one Client Access server: a STARTTLS listener and an
    implicit-TLS listener on the server's address, a worker pool for the sessions."""

    def __init__(
        self,
        backend: Backend,
        *,
        name: str,
        host: str,
        ssl_context: ssl.SSLContext | None,
        limits: Limits | None = None,
        allow_plaintext: bool = False,
        workers: int = 16,
        poll_interval: float = 0.2,
        capabilities_extra: Sequence[str] = (),
        session_factory: SessionFactory | None = None,
        backlog: int = 1024,
        inline: bool = True,
        connection_limits: ConnectionLimits | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        if session_factory is None or limits is None:
            from casarray.access.imap.session import ImapSession, Limits

            session_factory = session_factory or ImapSession
            limits = limits if limits is not None else Limits()
        self.backend = backend
        self.name = name
        self.host = host
        self.ssl_context = ssl_context
        self.limits = limits
        self.timeouts = timeouts or Timeouts()
        # Connections per client address and in all (`connection_limits`, else
        # Exchange's defaults), the total kept within the process's descriptors.
        self.counter = ConnectionCounter()
        self.set_connection_limits(connection_limits or DEFAULT_LIMITS)
        self.refused: dict[Refusal, int] = dict.fromkeys(Refusal, 0)
        self.allow_plaintext = allow_plaintext
        self.poll_interval = poll_interval
        self.capabilities_extra = tuple(capabilities_extra)
        self.backlog = backlog
        # Short commands of sessions on a local store run on the event loop (see _feed).
        self.inline = inline
        self._session_factory = session_factory
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"imap-{name}"
        )
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[ImapConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = 0
        # Sessions whose pipelined input waits for its next turn (see _take_turns).
        self._turns: collections.deque[ImapConnection] = collections.deque()
        self._turn_taker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.listeners: list[ListenerInfo] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # set when the listeners open
        # Per local port, the balancers (addresses) that open each connection with a
        # PROXY protocol header naming the client (the runner keeps it current).
        self.proxy_sources: dict[int, frozenset[str]] = {}

    def set_connection_limits(self, limits: ConnectionLimits) -> None:
        """New limits for new connections (those open stay)."""
        self.counter.limits = limits.within_fd_limit()

    # -- helpers for the connections ----------------------------------------------------

    def expects_proxy(self, peer: str, local_port: int) -> bool:
        """Whether a connection from `peer` to `local_port` starts with a PROXY header."""
        sources = self.proxy_sources.get(local_port)
        return sources is not None and peer in sources

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server was started in (the connections run there)."""
        if self._loop is None:
            raise RuntimeError(f"IMAP server {self.name} is not started")
        return self._loop

    def _run(self, func: Callable[[*_Ts], _T], *args: *_Ts) -> asyncio.Future[_T]:
        return self.loop.run_in_executor(self._executor, func, *args)

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, port: int | None, tls_port: int | None) -> list[ListenerInfo]:
        """Bind the listeners (None: that listener is not opened; 0: a free port).
        Raises OSError (PermissionError for a port the process may not bind)."""
        return await self._open([(port, None, False), (tls_port, None, True)])

    async def serve(
        self, plain: socket.socket | None, tls: socket.socket | None
    ) -> list[ListenerInfo]:
        """Serve on listening sockets the caller bound (the runner binds every service's
        socket itself, shared by worker processes with SO_REUSEPORT): `plain` for
        STARTTLS, `tls` for implicit TLS; None: that listener is not opened."""
        return await self._open([(None, plain, False), (None, tls, True)])

    async def _open(
        self, wanted: Sequence[tuple[int | None, socket.socket | None, bool]]
    ) -> list[ListenerInfo]:
        self._loop = loop = asyncio.get_running_loop()
        wanted = [w for w in wanted if w[0] is not None or w[1] is not None]
        if any(implicit for *_, implicit in wanted) and self.ssl_context is None:
            raise ValueError("an implicit-TLS listener needs an SSL context")
        try:
            for number, sock, implicit in wanted:
                factory = functools.partial(ImapConnection, self, implicit)
                context = self.ssl_context if implicit else None
                # (a connection of the implicit-TLS port is counted once its handshake
                # is done; until then `tls_handshake` bounds it)
                handshake = self.timeouts.tls_handshake if implicit else None
                shutdown = TLS_SHUTDOWN_TIMEOUT if implicit else None
                if sock is not None:  # a socket the caller bound
                    server = await loop.create_server(
                        factory,
                        sock=sock,
                        ssl=context,
                        ssl_handshake_timeout=handshake,
                        ssl_shutdown_timeout=shutdown,
                        backlog=self.backlog,
                    )
                else:
                    server = await loop.create_server(
                        factory,
                        self.host,
                        number,
                        reuse_address=True,
                        ssl=context,
                        ssl_handshake_timeout=handshake,
                        ssl_shutdown_timeout=shutdown,
                        backlog=self.backlog,
                    )
                self._servers.append(server)
                bound = server.sockets[0].getsockname()[1]
                self.listeners.append(ListenerInfo(self.host, int(bound), implicit))
        except BaseException:
            for opened in self._servers:
                opened.close()
            self._servers.clear()
            self.listeners.clear()
            raise
        self._sweeper = asyncio.ensure_future(self._sweep())
        return list(self.listeners)

    @property
    def serving(self) -> bool:
        """Whether the listeners are up (for health checks)."""
        return bool(self._servers) and all(s.is_serving() for s in self._servers)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def port(self, implicit_tls: bool) -> int | None:
        for listener in self.listeners:
            if listener.implicit_tls == implicit_tls:
                return listener.port
        return None

    async def _sweep(self) -> None:
        """Once a second: hand connections silent for the idle timeout to their session."""
        timeout = float(self.limits.idle_timeout)
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.check_timeout(now, timeout)

    def _wait_turn(self, connection: ImapConnection) -> None:
        self._turns.append(connection)
        if self._turn_taker is None or self._turn_taker.done():
            self._turn_taker = self.loop.create_task(self._take_turns())

    async def _take_turns(self) -> None:
        """The next command of each waiting session in turn, yielding to the loop after
        each: a command that arrives meanwhile from a session with nothing queued (a
        client waiting for its answer) runs first, at once, as a process that mostly
        sleeps gets the CPU first from the kernel's scheduler."""
        while self._turns:
            connection = self._turns.popleft()
            try:
                connection._next_turn()
            except Exception:
                log.exception("%s #%d session error", self.name, connection.cid)
            await asyncio.sleep(0)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Close the listeners, say BYE to every session (after its current command),
        wait up to `grace` seconds for them to close, then drop the rest."""
        for server in self._servers:
            server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self._connections):
            connection.shutdown()
        deadline = time.monotonic() + grace
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self._connections):
            with contextlib.suppress(Exception):
                if connection.transport is not None:
                    connection.transport.abort()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)
        # The commands still running finish (an APPEND answered OK stays durable).
        # (a server that never started has no loop yet: nothing ran on its executor)
        loop = self._loop or asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown, True)
        self._servers.clear()
