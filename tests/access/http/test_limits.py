"""Limits of the HTTP service under load (`access.http.limits`), on the uvicorn server
the Client Access server runs (`app.http_server`), over real sockets from lab
addresses: a 4th connection from one address over a limit of 3 gets `503` with
`Retry-After` while another address is served; headers sent a byte at a time (a
slowloris) get `408` at the header deadline, and a connection that sends nothing is
closed; oversized headers get `431`; a client that pipelines requests and never reads
the answers holds about one answer in the server, then is dropped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from casarray.access.http.app import http_server
from casarray.access.http.limits import HttpLimits
from casarray.process.limits import ConnectionLimits

HOST = "127.77.1.11"
CLIENT_A, CLIENT_B = "127.77.9.1", "127.77.9.2"
BIG = b"z" * 1_000_000


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def big(request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


@asynccontextmanager
async def serving(limits: HttpLimits) -> AsyncIterator[tuple[int, object]]:
    app = Starlette(routes=[Route("/", hello), Route("/big", big)])
    sock = socket.create_server((HOST, 0))
    port = sock.getsockname()[1]
    server = http_server(app, limits=limits)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def get(port: int, source: str) -> bytes:
    reader, writer = await connect(port, source)
    writer.write(b"GET / HTTP/1.1\r\nHost: cas01\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_a_fourth_connection_from_one_address_gets_503_another_address_served() -> None:
    limits = HttpLimits(connections=ConnectionLimits(per_address=3, total=100))
    async with serving(limits) as (port, _):
        held = [await connect(port, CLIENT_A) for _ in range(3)]
        refused = await get(port, CLIENT_A)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nretry-after: 10\r\n" in refused
        assert refused.endswith(b"Too many connections from your address.\n")
        assert (await get(port, CLIENT_B)).startswith(b"HTTP/1.1 200 OK")
        held[0][1].close()
        await asyncio.sleep(0.2)
        assert (await get(port, CLIENT_A)).startswith(b"HTTP/1.1 200 OK")  # a place again
        for _, writer in held[1:]:
            writer.close()


async def test_headers_sent_a_byte_at_a_time_get_408_at_the_deadline() -> None:
    async with serving(HttpLimits(request_header=1.0)) as (port, _):
        reader, writer = await connect(port, CLIENT_A)
        loop = asyncio.get_running_loop()
        started = loop.time()
        request = b"GET / HTTP/1.1\r\nHost: cas01\r\n" + b"X-Slow: " + b"a" * 60
        answer = b""
        for byte in request:
            writer.write(bytes([byte]))
            try:
                answer = await asyncio.wait_for(reader.read(), 0.2)
            except TimeoutError:
                continue
            break
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert loop.time() - started < 5


async def test_a_connection_that_sends_nothing_is_closed_and_keep_alive_works() -> None:
    async with serving(HttpLimits(request_header=0.5, keep_alive=0.5)) as (port, _):
        reader, _ = await connect(port, CLIENT_A)
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408")
        reader, writer = await connect(port, CLIENT_B)
        for _ in range(2):  # two requests on one connection, within the deadlines
            writer.write(b"GET / HTTP/1.1\r\nHost: cas01\r\n\r\n")
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readuntil(b"hello"), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # idle: closed


async def test_oversized_headers_get_431() -> None:
    async with serving(HttpLimits(max_header_bytes=8192)) as (port, _):
        reader, writer = await connect(port, CLIENT_A)
        writer.write(b"GET / HTTP/1.1\r\nHost: cas01\r\n")
        for n in range(100):
            writer.write(b"X-Filler-%d: %s\r\n" % (n, b"f" * 200))
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


async def test_a_client_that_never_reads_holds_one_answer_then_is_dropped() -> None:
    async with serving(HttpLimits(send=1.0)) as (port, server):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((CLIENT_A, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (HOST, port))
        # 30 pipelined requests for 1 MB each: 30 MB, were they all buffered
        await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: cas01\r\n\r\n" * 30)
        state = server.server_state  # type: ignore[attr-defined]
        most = 0
        for _ in range(40):
            await asyncio.sleep(0.1)
            buffered = [c.transport.get_write_buffer_size() for c in state.connections]
            most = max([most, *buffered])
            if not state.connections:
                break
        assert most < 3_000_000, most
        assert not state.connections  # dropped after the send time-out
        sock.close()
