"""The asyncio layer of the IMAP server (`access.imap.server`) with a scripted stand-in
session, so that what the layer itself does is checked apart from the protocol: one
feed() at a time per connection, pipelined input kept in order, STARTTLS (and the
plaintext sent after it dropped), implicit TLS, IDLE polling, the idle time-out, a
session error, and a clean shutdown with BYE. Real sockets on a lab address."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from casarray.access import tls
from casarray.access.imap.events import Close, Idling, Send, StartTLS
from casarray.access.imap.server import ImapServer

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

HOST = "127.77.1.11"


@dataclass(frozen=True)
class FakeLimits:
    idle_timeout: float = 60.0
    max_line: int = 8192
    max_literal: int = 1 << 20


class FakeSession:
    """Answers `tag VERB` lines: NOOP, SLOW (0.1 s in feed), STARTTLS, TLS (is TLS on?),
    IDLE/DONE, BOOM (raises), LOGOUT."""

    sessions: ClassVar[list[FakeSession]] = []
    lock = threading.Lock()
    active = 0
    max_active = 0

    def __init__(self, backend: Any, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.tls = kwargs["tls_active"]
        self.buffer = b""
        self.idle_tag: bytes | None = None
        self.polls = 0
        self.news = 0
        self.lost = False
        self.fed: list[bytes] = []
        self.wants_input = True
        FakeSession.sessions.append(self)

    def greeting(self) -> list[Any]:
        return [Send(b"* OK fake ready\r\n")]

    def feed(self, data: bytes) -> list[Any]:
        with FakeSession.lock:
            FakeSession.active += 1
            FakeSession.max_active = max(FakeSession.max_active, FakeSession.active)
        try:
            return self._feed(data)
        finally:
            with FakeSession.lock:
                FakeSession.active -= 1

    def _feed(self, data: bytes) -> list[Any]:
        self.buffer += data
        events: list[Any] = []
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self.fed.append(line)
            if self.idle_tag is not None:
                if line.upper() == b"DONE":
                    events += [Idling(False), Send(self.idle_tag + b" OK IDLE done\r\n")]
                    self.idle_tag = None
                continue
            tag, _, verb = line.partition(b" ")
            verb = verb.upper()
            if verb == b"SLOW":
                time.sleep(0.1)
                events.append(Send(tag + b" OK slow\r\n"))
            elif verb == b"STARTTLS":
                self.buffer = b""  # the session drops what followed, too
                events += [Send(tag + b" OK begin TLS\r\n"), StartTLS()]
                return events
            elif verb == b"TLS":
                events.append(Send(tag + (b" OK yes\r\n" if self.tls else b" OK no\r\n")))
            elif verb == b"IDLE":
                self.idle_tag = tag
                events += [Send(b"+ idling\r\n"), Idling(True)]
            elif verb == b"BOOM":
                raise RuntimeError("boom")
            elif verb == b"LOGOUT":
                events += [Send(b"* BYE bye\r\n" + tag + b" OK LOGOUT\r\n"), Close()]
                return events
            else:
                events.append(Send(tag + b" OK " + verb + b"\r\n"))
        return events

    def tls_started(self) -> list[Any]:
        self.tls = True
        return []

    def poll(self) -> list[Any]:
        self.polls += 1
        if self.news:
            self.news = 0
            return [Send(b"* 1 EXISTS\r\n")]
        return []

    def timed_out(self) -> list[Any]:
        return [Send(b"* BYE Autologout; idle for too long\r\n"), Close()]

    def connection_lost(self) -> None:
        self.lost = True


LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="no uvloop")),
]


@pytest.fixture(params=LOOPS)
def arun(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Runs a test's coroutine on asyncio's own loop, and again on uvloop (which
    `casarray server run` uses)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run_it(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return run_it


@pytest.fixture(autouse=True)
def reset_fake() -> None:
    FakeSession.sessions = []
    FakeSession.active = FakeSession.max_active = 0


@pytest.fixture
def cert(tmp_path: Path) -> tls.CertificateFiles:
    files, _ = tls.ensure_certificate("CAS01", ["CAS01.lab.net", HOST], home=tmp_path)
    return files


async def start(cert: tls.CertificateFiles, **kwargs: Any) -> ImapServer:
    kwargs.setdefault("limits", FakeLimits())
    kwargs.setdefault("session_factory", FakeSession)
    server = ImapServer(
        object(),  # type: ignore[arg-type]
        name="CAS01",
        host=HOST,
        ssl_context=tls.server_context(cert),
        workers=4,
        **kwargs,
    )
    await server.start(0, 0)
    return server


async def serving(
    cert: tls.CertificateFiles, body: Callable[[ImapServer], Awaitable[Any]], **kwargs: Any
) -> Any:
    """Run `body(server)` against a started server, then shut it down."""
    srv = await start(cert, **kwargs)
    try:
        return await body(srv)
    finally:
        await srv.shutdown(grace=1)


class Client:
    """A blocking line client (run it in a thread: the server shares the test's loop)."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((HOST, port), timeout=5)
        self.sock: socket.socket = (
            context.wrap_socket(sock, server_hostname="CAS01.lab.net") if context else sock
        )
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def starttls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_hostname="CAS01.lab.net")
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def run(func: Any, *args: Any) -> Any:
    return asyncio.to_thread(func, *args)


def test_greeting_and_pipelined_commands(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_greeting_and_pipelined_commands))


async def _test_greeting_and_pipelined_commands(server: ImapServer) -> None:
    port = server.port(False)
    assert port and server.serving

    def talk() -> list[bytes]:
        c = Client(port)
        lines = [c.line()]
        c.send(b"".join(b"a%d SLOW\r\n" % i for i in range(5)) + b"b1 NOOP\r\n")
        lines += [c.line() for _ in range(6)]
        c.send(b"z LOGOUT\r\n")
        lines += [c.line(), c.line(), c.line()]
        c.close()
        return lines

    lines = await run(talk)
    assert lines[0] == b"* OK fake ready\r\n"
    assert lines[1:7] == [b"a%d OK slow\r\n" % i for i in range(5)] + [b"b1 OK NOOP\r\n"]
    assert lines[7:] == [b"* BYE bye\r\n", b"z OK LOGOUT\r\n", b""]  # then closed
    assert FakeSession.max_active == 1
    await asyncio.sleep(0.1)
    assert FakeSession.sessions[0].lost
    assert server.connections == 0


def test_one_feed_at_a_time_per_session_many_clients(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_one_feed_at_a_time_per_session_many_clients))


async def _test_one_feed_at_a_time_per_session_many_clients(server: ImapServer) -> None:
    port = server.port(False)

    def talk(n: int) -> bytes:
        c = Client(port)
        c.line()
        c.send(b"x SLOW\r\n")
        line = c.line()
        c.close()
        return line

    lines = await asyncio.gather(*(run(talk, i) for i in range(8)))
    assert lines == [b"x OK slow\r\n"] * 8
    # four workers: feeds of different sessions ran side by side
    assert FakeSession.max_active > 1


def test_byte_by_byte_input(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_byte_by_byte_input))


async def _test_byte_by_byte_input(server: ImapServer) -> None:
    port = server.port(False)

    def talk() -> bytes:
        c = Client(port)
        c.line()
        for byte in b"a NOOP\r\n":
            c.send(bytes([byte]))
        line = c.line()
        c.close()
        return line

    assert await run(talk) == b"a OK NOOP\r\n"


def test_starttls(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, lambda server: _test_starttls(server, cert)))


async def _test_starttls(server: ImapServer, cert: tls.CertificateFiles) -> None:
    port = server.port(False)
    context = tls.client_context(cert.certificate)

    def talk() -> list[bytes]:
        c = Client(port)
        lines = [c.line()]
        c.send(b"a TLS\r\n")
        lines.append(c.line())
        # "b NOOP" comes in the same packet: an injection the server must not run
        c.send(b"s STARTTLS\r\nb NOOP\r\n")
        lines.append(c.line())
        c.starttls(context)
        c.send(b"c TLS\r\n")
        lines.append(c.line())
        c.close()
        return lines

    lines = await run(talk)
    assert lines == [b"* OK fake ready\r\n", b"a OK no\r\n", b"s OK begin TLS\r\n", b"c OK yes\r\n"]
    assert b"b NOOP" not in FakeSession.sessions[0].fed


def test_implicit_tls(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, lambda server: _test_implicit_tls(server, cert)))


async def _test_implicit_tls(server: ImapServer, cert: tls.CertificateFiles) -> None:
    port = server.port(True)
    context = tls.client_context(cert.certificate)

    def talk() -> list[bytes]:
        c = Client(port, context)
        lines = [c.line()]
        c.send(b"a TLS\r\n")
        lines.append(c.line())
        c.close()
        return lines

    assert await run(talk) == [b"* OK fake ready\r\n", b"a OK yes\r\n"]
    assert FakeSession.sessions[0].kwargs["tls_active"] is True
    assert FakeSession.sessions[0].kwargs["starttls_available"] is False


def test_untrusted_certificate_refused(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_untrusted_certificate_refused))


async def _test_untrusted_certificate_refused(server: ImapServer) -> None:
    port = server.port(True)

    def talk() -> None:
        Client(port, ssl.create_default_context())

    with pytest.raises(ssl.SSLCertVerificationError):
        await run(talk)


def test_idle_polls_the_session(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_idle_polls_the_session))


async def _test_idle_polls_the_session(server: ImapServer) -> None:
    port = server.port(False)

    def talk() -> list[bytes]:
        c = Client(port)
        c.line()
        c.send(b"i IDLE\r\n")
        lines = [c.line()]
        time.sleep(0.5)
        FakeSession.sessions[0].news = 1
        t0 = time.monotonic()
        lines.append(c.line())
        assert time.monotonic() - t0 < 3  # pushed at the next poll, not at a timeout
        c.send(b"DONE\r\n")
        lines.append(c.line())
        c.close()
        return lines

    assert await run(talk) == [b"+ idling\r\n", b"* 1 EXISTS\r\n", b"i OK IDLE done\r\n"]
    session = FakeSession.sessions[0]
    polls = session.polls
    assert 2 <= polls <= 6  # every 0.2 s while idling
    await asyncio.sleep(0.5)
    assert session.polls == polls  # not after DONE


def test_idle_timeout(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(_test_idle_timeout(cert))


async def _test_idle_timeout(cert: tls.CertificateFiles) -> None:
    server = await start(cert, limits=FakeLimits(idle_timeout=0.5))
    port = server.port(False)

    def talk() -> tuple[list[bytes], float]:
        c = Client(port)
        c.line()
        t0 = time.monotonic()
        lines = [c.line(), c.line()]
        c.close()
        return lines, time.monotonic() - t0

    try:
        lines, waited = await run(talk)
    finally:
        await server.shutdown(grace=1)
    assert lines == [b"* BYE Autologout; idle for too long\r\n", b""]
    assert 0.4 < waited < 2.5


def test_session_error_says_bye(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_session_error_says_bye))


async def _test_session_error_says_bye(server: ImapServer) -> None:
    port = server.port(False)

    def talk() -> list[bytes]:
        c = Client(port)
        c.line()
        c.send(b"a BOOM\r\n")
        lines = [c.line(), c.line()]
        c.close()
        return lines

    assert await run(talk) == [b"* BYE Internal server error\r\n", b""]
    # the server goes on
    assert await run(lambda: Client(server.port(False)).line()) == b"* OK fake ready\r\n"


def test_shutdown_says_bye_after_the_running_command(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(_test_shutdown_says_bye_after_the_running_command(cert))


async def _test_shutdown_says_bye_after_the_running_command(cert: tls.CertificateFiles) -> None:
    server = await start(cert)
    port = server.port(False)
    ready = threading.Event()

    def idle_client() -> list[bytes]:
        c = Client(port)
        c.line()
        ready.set()
        lines = [c.line(), c.line()]
        c.close()
        return lines

    def busy_client() -> list[bytes]:
        c = Client(port)
        c.line()
        c.send(b"a SLOW\r\n")
        time.sleep(0.05)
        lines = [c.line(), c.line(), c.line()]
        c.close()
        return lines

    idle = asyncio.ensure_future(run(idle_client))
    busy = asyncio.ensure_future(run(busy_client))
    await run(ready.wait)
    await asyncio.sleep(0.1)
    await server.shutdown(grace=2)
    assert await idle == [b"* BYE Server shutting down\r\n", b""]
    assert await busy == [b"a OK slow\r\n", b"* BYE Server shutting down\r\n", b""]
    assert not server.serving
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=1)


def test_client_that_does_not_read(arun: Any, cert: tls.CertificateFiles) -> None:
    arun(serving(cert, _test_client_that_does_not_read))


async def _test_client_that_does_not_read(server: ImapServer) -> None:
    """A client that sends without reading what it is answered: the server stops
    reading once its writes back up, so nothing piles up in the server."""
    port = server.port(False)
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    sent = 0
    line = b"a " + b"N" * 1000 + b"\r\n"  # answered with as many bytes
    stalled = 0
    deadline = time.monotonic() + 5
    while stalled < 10 and time.monotonic() < deadline:
        try:
            sent += sock.send(line)
            stalled = 0
        except BlockingIOError:
            stalled += 1
            await asyncio.sleep(0.02)
            continue
        await asyncio.sleep(0)
    assert stalled == 10  # the server stopped taking input
    (connection,) = server._connections
    # what the server holds for it in user space stays bounded (the kernel's socket
    # buffers hold the rest): under what the client sent, which a server that kept
    # reading would hold whole. Not tighter: the commands of the read that filled the
    # write buffer are still answered, and uvloop reads up to 250 KB at once (its
    # UV_STREAM_RECV_BUF_SIZE), so a run can hold 250 KB of answers plus the buffer's
    # high-water mark (one fresh-clone run held 312 KB)
    held = connection.transport.get_write_buffer_size() + connection._pending_size
    assert held < 1024 * 1024 and held < sent
    assert sent < 16 * 1024 * 1024
    sock.close()


# -- PROXY protocol from the balancer ---------------------------------------------------


def test_proxy_header_from_the_balancer_names_the_client(
    arun: Any, cert: tls.CertificateFiles
) -> None:
    arun(serving(cert, _test_proxy_header))


async def _test_proxy_header(server: ImapServer) -> None:
    from casarray.balancer.proxy import proxy_v2_header

    port = server.port(False)
    assert port is not None
    # connections from 127.0.0.1 to this port come from the balancer, with a header
    server.proxy_sources = {port: frozenset({"127.0.0.1"})}

    def talk(first: bytes) -> bytes:
        c = Client(port)
        c.send(first)
        line = c.line()
        c.close()
        return line

    header = proxy_v2_header(("198.51.100.7", 40000), (HOST, 143))
    # a version 2 header, then a version 1 line
    assert await run(talk, header) == b"* OK fake ready\r\n"
    assert FakeSession.sessions[-1].kwargs["client_address"] == "198.51.100.7"
    v1 = b"PROXY TCP4 203.0.113.9 127.77.1.11 5555 143\r\n"
    assert await run(talk, v1) == b"* OK fake ready\r\n"
    assert FakeSession.sessions[-1].kwargs["client_address"] == "203.0.113.9"
    count = len(FakeSession.sessions)
    # no header from the balancer: the connection is dropped, no session is made
    assert await run(talk, b"a NOOP\r\n") == b""
    assert len(FakeSession.sessions) == count
    # anyone else (other port: no balancer there) is greeted at once, header or not
    server.proxy_sources = {}
    assert await run(talk, b"") == b"* OK fake ready\r\n"
    assert FakeSession.sessions[-1].kwargs["client_address"] == "127.0.0.1"


def test_a_port_that_cant_be_bound_is_the_error_shown(
    arun: Any, cert: tls.CertificateFiles
) -> None:
    """A server that couldn't open its listeners shuts down cleanly, so the bind error
    is what the runner reports (not an error of the shutdown)."""

    async def body() -> str:
        with socket.socket() as taken:
            taken.bind((HOST, 0))
            taken.listen()
            server = ImapServer(
                object(),  # type: ignore[arg-type]
                name="CAS01",
                host=HOST,
                ssl_context=tls.server_context(cert),
                session_factory=FakeSession,
                limits=FakeLimits(),
            )
            try:
                await server.start(taken.getsockname()[1], None)
            except OSError as exc:
                error = str(exc)
            else:
                raise AssertionError("the taken port was bound")
            await server.shutdown(grace=0.1)
            return error

    assert "address already in use" in arun(body()).lower()


class LocalFakeSession(FakeSession):
    """A session on a local store (run on the event loop); WORK takes 2 ms."""

    local_store = True
    order: ClassVar[list[bytes]] = []

    def _feed(self, data: bytes) -> list[Any]:
        if data.endswith(b" WORK\r\n"):
            time.sleep(0.002)
        LocalFakeSession.order += [line for line in data.split(b"\r\n") if line]
        return super()._feed(data)


def test_a_pipelined_batch_does_not_hold_up_another_client(
    arun: Any, cert: tls.CertificateFiles
) -> None:
    LocalFakeSession.order = []
    arun(serving(cert, _test_a_pipelined_batch, session_factory=LocalFakeSession))


async def _test_a_pipelined_batch(server: ImapServer) -> None:
    port = server.port(False)

    def talk() -> tuple[list[bytes], bytes]:
        bulk, other = Client(port), Client(port)
        bulk.line(), other.line()
        bulk.send(b"".join(b"a%d WORK\r\n" % i for i in range(500)))  # about a second
        first = bulk.line()  # the batch is being worked through
        other.send(b"b1 NOOP\r\n")
        answer = other.line()
        rest = [bulk.line() for _ in range(499)]
        bulk.close(), other.close()
        return [first, *rest], answer

    bulk, answer = await run(talk)
    assert bulk == [b"a%d OK WORK\r\n" % i for i in range(500)]  # in order, all there
    assert answer == b"b1 OK NOOP\r\n"
    # the other client's command ran while the batch was still going, not after it
    assert LocalFakeSession.order.index(b"b1 NOOP") < 499
