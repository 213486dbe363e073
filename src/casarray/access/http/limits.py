"""Limits of the HTTP service under load: uvicorn's httptools protocol with connection
limits and a deadline for every state of a connection.

uvicorn (0.55) has none of these: a connection that sends nothing, or a request's
headers a byte every few seconds (slowloris), or a body that never ends, is kept for
ever; headers may grow without bound; a client that reads nothing of a response holds
its request's task for ever. `limited_protocol(limits, counter)` makes the protocol
class a server runs (`app.http_server(..., limits=...)`):

- connections per client address and in all (`HttpLimits.connections`), counted from
  the connection (after the TLS handshake on 443, which `tls_handshake` bounds before);
  over a limit the client gets `503 Service Unavailable` with `Retry-After` and the
  connection closes;
- `request_header`: from a connection's first byte, or a request's first byte on a
  kept-alive connection, to the end of the request's headers, in all (nginx's
  client_header_timeout, 60 s; http.sys's HeaderWait, 120 s): `408 Request Timeout`;
  a connection that sends nothing at all is closed after the same time;
- `max_header_bytes` of request line and headers (http.sys's MaxRequestBytes is 16 KB;
  NTLM and Kerberos headers need more): `431 Request Header Fields Too Large`;
- `request_body`: the body in `request_body` seconds plus its bytes at `body_min_rate`
  (IIS's minBytesPerSecond, 240): the connection closes;
- `send`: the client reading nothing of what it is sent (nginx's send_timeout, 60 s):
  the connection is dropped;
- between requests, uvicorn's keep-alive time-out (`keep_alive`, 5 s).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from casarray.process.limits import ConnectionCounter, ConnectionLimits, Refusal, deadline

log = logging.getLogger("casarray.http")

RETRY_AFTER = 10  # seconds a refused client is told to wait


@dataclass(frozen=True)
class HttpLimits:
    connections: ConnectionLimits = field(
        default_factory=lambda: ConnectionLimits(per_address=2000, total=10_000)
    )
    request_header: float = 60.0
    max_header_bytes: int = 64 * 1024
    request_body: float = 60.0
    body_min_rate: float = 240.0
    send: float = 60.0
    keep_alive: float = 5.0
    close_linger: float = 5.0


def _response(status: int, reason: str, text: str, *extra: str) -> bytes:
    body = text.encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: text/plain; charset=utf-8",
        f"content-length: {len(body)}",
        *extra,
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


REFUSED = {
    refusal: _response(
        503,
        "Service Unavailable",
        text,
        f"retry-after: {RETRY_AFTER}",
    )
    for refusal, text in (
        (Refusal.ADDRESS, "Too many connections from your address.\n"),
        (Refusal.TOTAL, "Too many connections; try again later.\n"),
    )
}
TIMED_OUT = _response(408, "Request Timeout", "The request took too long to arrive.\n")
TOO_LARGE = _response(
    431, "Request Header Fields Too Large", "The request's headers are too large.\n"
)


class LimitedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits of `limits`, counted in `counter` (class
    attributes of the subclass `limited_protocol` makes)."""

    limits: HttpLimits
    counter: ConnectionCounter

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False
        self._body_start = 0.0
        self._body_bytes = 0
        self._refused = False

    # -- the connection -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        counted = self.counter.admit(address)
        if isinstance(counted, Refusal):
            self._refused = True
            log.info("refused an HTTP connection from %s: %s", address, counted.value)
            self._end(REFUSED[counted])
            return
        self._counted = counted
        # nothing sent at all: closed after the header time-out
        self._arm(self.limits.request_header, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted is not None:
            self.counter.release(self._counted)
            self._counted = None
        self._disarm()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers or self.cycle is None or self.cycle.response_complete:
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._end(TOO_LARGE)
                return
        super().data_received(data)

    # -- the parser's events --------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._arm(self.limits.request_header, self._header_timed_out)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._disarm()
        self._body_start = self.loop.time()
        self._body_bytes = 0
        self._arm(self.limits.request_body, self._body_timed_out)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        due = deadline(
            self._body_start, self.limits.request_body, self._body_bytes, self.limits.body_min_rate
        )
        self._arm(due - self.loop.time(), self._body_timed_out)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- writing --------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- deadlines ------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(max(0.0, delay), callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_timed_out(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its own deadlines apply
        log.info("%s: the request's headers took too long", self._who())
        self._end(TIMED_OUT)

    def _body_timed_out(self) -> None:
        self._deadline = None
        log.info("%s: the request's body took too long", self._who())
        if self.cycle is not None and not self.cycle.response_started:
            self._end(TIMED_OUT)
        else:
            self.transport.abort()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        log.info("%s: reads nothing of the response; dropped", self._who())
        self.transport.abort()

    def _end(self, response: bytes) -> None:
        """Answer `response` and close; drop the connection if it isn't read."""
        self._disarm()
        if self.transport.is_closing():
            return
        self.transport.write(response)
        self.transport.close()
        self.loop.call_later(self.limits.close_linger, self.transport.abort)

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"


def limited_protocol(
    limits: HttpLimits | None = None, counter: ConnectionCounter | None = None
) -> type[LimitedHttpProtocol]:
    """The protocol class of one server (or of several that share `counter`: a Client
    Access server's HTTP and HTTPS)."""
    limits = limits or HttpLimits()
    counter = counter or ConnectionCounter(limits.connections.within_fd_limit())
    return type(
        "LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits, "counter": counter}
    )
