"""Connection limits and timeouts of the SMTP receive service (`transport.receive`) in
this process, over real sockets from lab addresses: a 4th connection from one address
over a limit of 3 gets `421 4.7.0 ... Too many connections` while another address is
served; a command line or a message's data sent a byte at a time is cut with `421
4.4.2 ... timeout exceeded` and nothing is queued; data that keeps up with the minimum
rate is taken however long it takes; a client that never reads is dropped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from casarray.process.limits import ConnectionCounter, ConnectionLimits
from casarray.transport import tls
from casarray.transport.config import (
    ANONYMOUS_USERS,
    AUTHORITATIVE,
    TLS,
    Connector,
    Domain,
    TransportConfig,
)
from casarray.transport.queue import SqliteQueue
from casarray.transport.receive import ReceiveContext, bind, serve
from tests.transport.test_receive import FakeUsers

HOST = "127.77.1.21"
CLIENT_A, CLIENT_B = "127.77.9.1", "127.77.9.2"
DEFAULT = Connector(
    name="Default MBX01",
    bindings=(("0.0.0.0", 25),),
    auth_mechanism=frozenset({TLS}),
    permission_groups=frozenset({ANONYMOUS_USERS}),
    max_message_size=10_000_000,
)


@asynccontextmanager
async def receiving(
    tmp_path: Path,
    limits: ConnectionLimits | None = None,
    timeout: float = 300.0,
    data_min_rate: float = 240.0,
) -> AsyncIterator[tuple[ReceiveContext, int, list[str]]]:
    files = tls.ensure_fallback("MBX01", ["mbx01.lab.net"])
    queue = SqliteQueue(tmp_path / "queue.db")
    users = FakeUsers()
    queued: list[str] = []
    context = ReceiveContext(
        config=TransportConfig(
            server="MBX01",
            fqdn="mbx01.lab.net",
            domains=(Domain("lab.net", AUTHORITATIVE),),
            connectors=(DEFAULT,),
        ),
        queue=queue,
        recipients=users,
        authenticator=users,
        tls=tls.SmtpTls("MBX01", "mbx01.lab.net", files).context,
        on_queued=queued.append,
        connections=ConnectionCounter(limits or ConnectionLimits(per_address=50)),
        timeout=timeout,
        data_min_rate=data_min_rate,
        close_linger=0.5,
    )
    sock = bind(HOST, 0)
    port = sock.getsockname()[1]
    server = await serve(context, sock, 25)
    try:
        yield context, port, queued
    finally:
        server.close()
        queue.close()


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def reply(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


async def test_a_fourth_connection_from_one_address_gets_421(tmp_path: Path) -> None:
    async with receiving(tmp_path, ConnectionLimits(per_address=3, total=100)) as (_, port, _):
        held = [await connect(port, CLIENT_A) for _ in range(3)]
        for reader, _ in held:
            assert (await reply(reader)).startswith(b"220 ")
        reader, _ = await connect(port, CLIENT_A)
        assert await reply(reader) == (
            b"421 4.7.0 mbx01.lab.net Too many connections from your address, closing "
            b"transmission channel\r\n"
        )
        assert await asyncio.wait_for(reader.read(), 5) == b""
        other, writer = await connect(port, CLIENT_B)
        assert (await reply(other)).startswith(b"220 ")
        writer.write(b"EHLO client.example\r\n")
        assert (await reply(other)).startswith(b"250-")
        for _, held_writer in held:
            held_writer.close()
        writer.close()


async def test_a_command_line_sent_a_byte_at_a_time_is_cut(tmp_path: Path) -> None:
    async with receiving(tmp_path, timeout=1.0) as (context, port, _):
        reader, writer = await connect(port, CLIENT_A)
        assert (await reply(reader)).startswith(b"220 ")
        got = b""
        for byte in b"EHLO a-client-that-types-very-slowly.example":
            writer.write(bytes([byte]))
            try:
                got = await asyncio.wait_for(reader.readline(), 0.3)
            except TimeoutError:
                continue
            break
        assert got == b"421 4.4.2 mbx01.lab.net Error: timeout exceeded\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert context.counters.get("timed_out") == 1


async def test_data_sent_a_byte_at_a_time_is_cut_and_nothing_queued(tmp_path: Path) -> None:
    async with receiving(tmp_path, timeout=1.0) as (_, port, queued):
        reader, writer = await connect(port, CLIENT_A)
        await reply(reader)
        for line in (b"HELO x.example", b"MAIL FROM:<a@far.example>", b"RCPT TO:<alice@lab.net>"):
            writer.write(line + b"\r\n")
            assert (await reply(reader)).startswith(b"250")
        writer.write(b"DATA\r\n")
        assert (await reply(reader)).startswith(b"354")
        got = b""
        for byte in b"Subject: slow\r\n\r\n" + b"x" * 40:
            writer.write(bytes([byte]))
            try:
                got = await asyncio.wait_for(reader.readline(), 0.3)
            except TimeoutError:
                continue
            break
        assert got == b"421 4.4.2 mbx01.lab.net Error: timeout exceeded\r\n"
        assert queued == []


async def test_data_that_keeps_up_with_the_minimum_rate_is_taken(tmp_path: Path) -> None:
    # 1 s for the session, then 100 KB/s: five 100 KB parts half a second apart
    async with receiving(tmp_path, timeout=1.0, data_min_rate=100_000) as (_, port, queued):
        reader, writer = await connect(port, CLIENT_A)
        await reply(reader)
        for line in (b"HELO x.example", b"MAIL FROM:<a@far.example>", b"RCPT TO:<alice@lab.net>"):
            writer.write(line + b"\r\n")
            assert (await reply(reader)).startswith(b"250")
        writer.write(b"DATA\r\n")
        assert (await reply(reader)).startswith(b"354")
        writer.write(b"Subject: steady\r\n\r\n")
        for _ in range(5):
            writer.write((b"y" * 998 + b"\r\n") * 100 + b"part.\r\n")
            await asyncio.sleep(0.5)
        writer.write(b".\r\n")
        answer = await reply(reader)
        assert answer.startswith(b"250 2.6.0"), answer
        assert len(queued) == 1
        writer.close()


async def test_a_client_that_never_reads_is_dropped(tmp_path: Path) -> None:
    async with receiving(tmp_path, timeout=1.0) as (context, port, _):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((CLIENT_A, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (HOST, port))
        while not context.connections.total:  # accepted
            await asyncio.sleep(0.01)
        # answers the client never reads: 2 MB of them, were they all kept
        flood = b"NOOP\r\n" * 200_000
        sent = 0
        with_deadline = loop.time() + 10
        while context.connections.total and loop.time() < with_deadline:
            try:
                sent += sock.send(flood[sent:] or b"NOOP\r\n")
            except BlockingIOError:
                await asyncio.sleep(0.05)
            except OSError:
                break
        assert sent > 100_000  # it kept sending while the server took its commands
        assert context.connections.total == 0  # then it was dropped
        assert context.counters.get("timed_out") == 1
        sock.close()
