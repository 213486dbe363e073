"""Connection limits of the DNS server's TCP side (`dns.server`), over real sockets from
lab addresses: a 4th connection from one address over a limit of 3 is closed at once
while another address is answered, and a query sent a byte at a time is cut at the
idle time-out."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dns.message

from casarray.dns.server import DnsServer

HOST = "127.77.53.2"
CLIENT_A, CLIENT_B = "127.77.9.1", "127.77.9.2"


class EchoResponder:
    """Answers every query with an empty NOERROR reply."""

    def answer(self, query: bytes, client: str, *, tcp: bool) -> bytes:
        return dns.message.make_response(dns.message.from_wire(query)).to_wire()


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[int]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind((HOST, 0))
    udp.bind((HOST, tcp.getsockname()[1]))
    tcp.listen(64)
    tcp.setblocking(False)
    udp.setblocking(False)
    server = DnsServer(EchoResponder(), **options)  # type: ignore[arg-type]
    await server.start(udp, tcp)
    try:
        yield tcp.getsockname()[1]
    finally:
        await server.close()


def framed() -> bytes:
    wire = dns.message.make_query("cas01.lab.net", "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(framed())
    (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
    return await asyncio.wait_for(reader.readexactly(length), 5)


async def test_a_fourth_connection_from_one_address_is_closed_another_answered() -> None:
    async with serving(max_per_address=3, max_connections=100) as port:
        held = [await asyncio.open_connection(HOST, port, local_addr=(CLIENT_A, 0)) for _ in "abc"]
        for reader, writer in held:
            assert await ask(reader, writer)
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(CLIENT_A, 0))
        writer.write(framed())
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, unanswered
        other = await asyncio.open_connection(HOST, port, local_addr=(CLIENT_B, 0))
        assert await ask(*other)
        held[0][1].close()
        await asyncio.sleep(0.1)
        again = await asyncio.open_connection(HOST, port, local_addr=(CLIENT_A, 0))
        assert await ask(*again)  # a place again


async def test_a_query_sent_a_byte_at_a_time_is_cut_at_the_idle_timeout() -> None:
    async with serving(idle_timeout=1.0) as port:
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(CLIENT_A, 0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        closed = False
        for byte in framed() * 4:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
        assert closed
        assert loop.time() - started < 3
