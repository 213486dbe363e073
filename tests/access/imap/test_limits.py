"""Connection limits and timeouts of the IMAP server (`access.imap.server`), with real
sessions over real sockets on lab addresses: a 4th connection from one address over a
limit of 3 is refused with a BYE while another address is served, the total limit, the
real client behind a PROXY header counted instead of the balancer, a command sent a
byte at a time cut at its deadline, a client that never logs in cut, and a client that
never reads its answers unable to make the server buffer them without bound."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from casarray.access.imap.server import ImapServer, Timeouts
from casarray.process.limits import ConnectionLimits
from tests.access.imap.fakes import FakeBackend

HOST = "127.77.1.11"
CLIENT_A, CLIENT_B, BALANCER = "127.77.9.1", "127.77.9.2", "127.77.9.9"
BIG = b"Subject: big\r\n\r\n" + b"x" * 1_000_000 + b"\r\n"


@asynccontextmanager
async def serving(
    limits: ConnectionLimits | None = None, timeouts: Timeouts | None = None
) -> AsyncIterator[ImapServer]:
    backend = FakeBackend()
    store = backend.add_user("alice", "secret")
    store.append("INBOX", BIG)
    server = ImapServer(
        backend,
        name="CAS01",
        host=HOST,
        ssl_context=None,
        allow_plaintext=True,
        connection_limits=limits,
        timeouts=timeouts,
        workers=2,
    )
    await server.start(port=0, tls_port=None)
    try:
        yield server
    finally:
        await server.shutdown(grace=0.5)


async def connect(
    server: ImapServer, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    port = server.port(False)
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    greeting = await asyncio.wait_for(reader.readline(), 5)
    return reader, writer, greeting


async def test_a_fourth_connection_from_one_address_is_refused_another_address_served() -> None:
    async with serving(ConnectionLimits(per_address=3, total=100)) as server:
        held = [await connect(server, CLIENT_A) for _ in range(3)]
        assert all(greeting.startswith(b"* OK") for _, _, greeting in held)
        reader, _, greeting = await connect(server, CLIENT_A)
        assert greeting == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
        _, other, greeting = await connect(server, CLIENT_B)
        assert greeting.startswith(b"* OK")
        # one of the three goes away: its place is free again
        held[0][1].close()
        await held[0][1].wait_closed()
        for _ in range(50):
            if server.counter.held(CLIENT_A) < 3:
                break
            await asyncio.sleep(0.02)
        _, again, greeting = await connect(server, CLIENT_A)
        assert greeting.startswith(b"* OK")
        assert server.refused and sum(server.refused.values()) == 1
        for _, writer, _ in [*held[1:], (None, other, b""), (None, again, b"")]:
            writer.close()


async def test_the_total_limit_refuses_every_address() -> None:
    async with serving(ConnectionLimits(per_address=10, total=2)) as server:
        first = await connect(server, CLIENT_A)
        second = await connect(server, CLIENT_B)
        assert first[2].startswith(b"* OK") and second[2].startswith(b"* OK")
        _, _, greeting = await connect(server, "127.77.9.3")
        assert greeting == b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"


async def test_the_client_a_proxy_header_names_is_counted_not_the_balancer() -> None:
    async with serving(ConnectionLimits(per_address=1, total=100)) as server:
        port = server.port(False)
        assert port is not None
        server.proxy_sources = {port: frozenset({BALANCER})}

        async def via_balancer(client: str) -> bytes:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(BALANCER, 0))
            writer.write(f"PROXY TCP4 {client} {HOST} 40000 143\r\n".encode())
            line = await asyncio.wait_for(reader.readline(), 5)
            opened.append(writer)
            return line

        opened: list[asyncio.StreamWriter] = []
        assert (await via_balancer("198.51.100.1")).startswith(b"* OK")
        assert (await via_balancer("198.51.100.2")).startswith(b"* OK")  # balancer not limited
        refused = await via_balancer("198.51.100.1")
        assert refused == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
        for writer in opened:
            writer.close()


async def test_a_command_sent_a_byte_at_a_time_is_cut_at_its_deadline() -> None:
    timeouts = Timeouts(command=1.0, pre_authenticated=60.0)
    async with serving(timeouts=timeouts) as server:
        reader, writer, greeting = await connect(server, CLIENT_A)
        assert greeting.startswith(b"* OK")
        loop = asyncio.get_running_loop()
        started = loop.time()
        got = b""
        for byte in b"a1 LOGIN alice secret-but-very-slowly":
            writer.write(bytes([byte]))
            try:
                got = await asyncio.wait_for(reader.readline(), 0.3)
            except TimeoutError:
                continue
            break
        assert got == b"* BYE Autologout; the command was not completed in time\r\n"
        assert loop.time() - started < 10
        assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_a_client_that_never_logs_in_is_cut_one_that_did_is_not() -> None:
    timeouts = Timeouts(pre_authenticated=1.0)
    async with serving(timeouts=timeouts) as server:
        reader, writer, _ = await connect(server, CLIENT_A)
        logged_reader, logged_writer, _ = await connect(server, CLIENT_B)
        logged_writer.write(b"a1 LOGIN alice secret\r\n")
        assert (await asyncio.wait_for(logged_reader.readline(), 5)).startswith(b"a1 OK")
        lines = []
        for n in range(12):  # busy, but never logged in
            writer.write(b"n%d NOOP\r\n" % n)
            line = await asyncio.wait_for(reader.readline(), 5)
            lines.append(line)
            if line.startswith(b"* BYE"):
                break
            await asyncio.sleep(0.25)
        assert lines[-1] == b"* BYE Autologout; not logged in in time\r\n"
        logged_writer.write(b"a2 NOOP\r\n")
        assert (await asyncio.wait_for(logged_reader.readline(), 5)).startswith(b"a2 OK")
        logged_writer.close()


async def test_a_client_that_never_reads_cannot_make_the_server_buffer_without_bound() -> None:
    timeouts = Timeouts(send=1.5)
    async with serving(timeouts=timeouts) as server:
        port = server.port(False)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((CLIENT_A, 0))
        sock.connect((HOST, port))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"a LOGIN alice secret\r\na SELECT INBOX\r\n")
        # 50 fetches of a 1 MB message, pipelined, none of it read: 50 MB if buffered
        fetches = b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % n for n in range(50))
        await loop.sock_sendall(sock, fetches)
        most = 0
        for _ in range(40):
            await asyncio.sleep(0.1)
            buffered = sum(
                c.transport.get_write_buffer_size()
                for c in server._connections
                if c.transport is not None
            )
            most = max(most, buffered)
            if not server.connections:
                break
        assert most < 3_000_000, most  # at most about one answer held, not fifty
        assert server.connections == 0  # dropped after the send time-out
        sock.close()
