"""The DNS server's sockets: UDP and TCP on one address and port, around a Responder.

Thin by design: each datagram is answered at once (`Responder.answer`) and the answer
sent back to its source; over TCP (RFC 7766) every message has a two-byte length, a
connection may carry several queries, answered in order, and is closed after
`idle_timeout` seconds without a complete query (a query sent a byte at a time is cut
then too). At most `max_connections` TCP connections are served at once, and at most
`max_per_address` from one client address (BIND's tcp-clients is 150 in all); a new one
beyond either is closed at once (DNS has no refusal to say over TCP before a query).
A connection whose client does not read its answers stops being read until it does,
and is dropped (not closed politely: its buffer would wait for ever) at the idle
time-out.

`DnsServer.responder` may be replaced at any time (new zones): the next query is
answered from the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any, cast

from casarray.dns.handler import Responder, servfail
from casarray.process.limits import ConnectionCounter, ConnectionLimits, Refusal

log = logging.getLogger("casarray.dns")

IDLE_TIMEOUT = 10.0  # seconds a TCP connection may stay without a query
MAX_CONNECTIONS = 1000
MAX_PER_ADDRESS = 100
UDP_BUFFER = 4 << 20  # receive buffer asked for (the kernel may give less)


class DnsServer:
    """UDP and TCP service on sockets bound by the caller."""

    def __init__(
        self,
        responder: Responder,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_per_address: int = MAX_PER_ADDRESS,
    ) -> None:
        self.responder = responder
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.counter = ConnectionCounter(
            ConnectionLimits(per_address=max_per_address, total=max_connections)
        )
        self.refused = 0
        self.connections: set[_TcpConnection] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._failures = 0

    async def start(self, udp: socket.socket, tcp: socket.socket) -> None:
        """Serve on `udp` (bound) and `tcp` (bound and listening)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
        self._tcp = await loop.create_server(lambda: _TcpConnection(self), sock=tcp)

    def answer(self, query: bytes, client: str, *, tcp: bool) -> bytes | None:
        try:
            return self.responder.answer(query, client, tcp=tcp)
        except Exception:
            return self.failed(query)

    def failed(self, query: bytes) -> bytes | None:
        """Answering `query` raised (a bug): say it (now and then), answer SERVFAIL."""
        self._failures += 1
        if self._failures <= 10 or self._failures % 1000 == 0:
            log.exception("failed to answer a query (%d so far)", self._failures)
        return servfail(query)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self.connections):
                connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 5)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (uvloop's has the methods, not the base class)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:  # the hot path: no call in between
            reply = self.server.responder.answer(data, addr[0], tcp=False)
        except Exception:
            reply = self.server.failed(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors of earlier sends
        pass


class _TcpConnection(asyncio.Protocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.buffer = bytearray()
        self.last_query = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.counted: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport (uvloop's has the methods, not the base class)
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""
        counted = self.server.counter.admit(self.client)
        if isinstance(counted, Refusal):
            self.server.refused += 1
            if self.server.refused <= 10 or self.server.refused % 1000 == 0:
                log.warning(
                    "refused a TCP connection from %s: %s (%d so far)",
                    self.client,
                    counted.value,
                    self.server.refused,
                )
            self.transport = None
            transport.close()
            return
        self.counted = counted
        self.server.connections.add(self)
        self._arm(self.server.idle_timeout)

    def _arm(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        idle = time.monotonic() - self.last_query  # a client that doesn't read is idle too
        if idle >= self.server.idle_timeout:
            if self.transport is not None:
                self.transport.abort()
        else:
            self._arm(self.server.idle_timeout - idle)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        replies = []
        while len(buffer) >= 2:
            (length,) = struct.unpack_from("!H", buffer)
            if len(buffer) < 2 + length:
                break
            query = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            self.last_query = time.monotonic()
            reply = self.server.answer(query, self.client, tcp=True)
            if reply is not None:
                replies.append(struct.pack("!H", len(reply)) + reply)
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def pause_writing(self) -> None:  # the client doesn't read: stop reading too
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted is not None:
            self.server.counter.release(self.counted)
            self.counted = None
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None
