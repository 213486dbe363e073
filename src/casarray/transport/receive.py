"""SMTP receive on aiosmtpd: one listener per binding of the server's enabled receive
connectors, a connector chosen per connection, the policy's decisions applied.

aiosmtpd's `SMTP` protocol parses the commands (its `smtp_VERB` methods) and calls the
handler's hooks; this module adds what Exchange's receive connectors do around it:

- Per connection (`TransportSMTP.connection_made`): the connector that serves the
  client (`policy.choose_connector`: the port the client reached, its address in
  RemoteIPRanges); none: `421 4.3.2` and the connection closes. The connector gives the
  banner and FQDN, SIZE (MaxMessageSize), whether AUTH is offered and whether only
  after STARTTLS.
- EHLO: PIPELINING, 8BITMIME, SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, STARTTLS (before
  TLS), AUTH PLAIN LOGIN (where the connector offers it and, for BasicAuthRequireTLS,
  only after STARTTLS). Every reply after EHLO has an enhanced status code
  (`replies.enhance` adds it to aiosmtpd's own); a malformed command gets its 5xx and
  the session goes on.
- AUTH: checked with the directory's password and lockout in a worker thread (argon2
  never blocks the event loop); failures in a session cost a delay, and after a few
  the session is closed (`policy.SessionGuard`), as are floods of refused recipients.
- MAIL/RCPT: `policy.check_mail`, `policy.check_recipient` (recipient lookups in a
  worker thread).
- DATA: loop detection, our Received header on top, the message committed to the
  queue (fsync'd) before `250 2.6.0 <id> Queued mail for delivery`; then delivery is
  woken.
- The queue's disk filling up: MAIL is answered `452 4.3.1 Insufficient system storage`
  (Postfix's answer, RFC 1870's for a SIZE there is no room for) while the queue's file
  system has less than `queue_min_free` bytes (1 MB: room for delivery to record its
  outcomes, as Exchange's back pressure keeps) plus the declared SIZE left, and DATA the
  same when the queue's write finds no room after all (nothing is queued, and nothing
  queued before is touched). Mail is taken again as soon as there is room.

A connection from a balancer trusted for the port (the NLB cluster IP, when its port
rule says -ProxyProtocol: `TransportConfig.proxy_sources`) must start with a PROXY
protocol header (v1 or v2, within 5 s); the client it names is the one the connector
is chosen for, the policy applies to and the Received header shows.

Bindings on 0.0.0.0 (or ::) listen on the server's own address, as the Client Access
servers do, so that several servers of a lab share one machine; a port may be mapped
to another (the lab's +10000, a test's free port) while the connector is still chosen
by the configured port.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiosmtpd.proxy_protocol import ProxyData
from aiosmtpd.smtp import MISSING, AuthResult, Envelope, Session

from casarray.process.limits import ConnectionCounter, ConnectionLimits, Refusal, deadline
from casarray.transport import policy, replies
from casarray.transport.config import TLS, Connector, TransportConfig
from casarray.transport.fast_smtp import FastSMTP
from casarray.transport.headers import crlf, hop_count, received_header
from casarray.transport.mailboxes import Authenticator, Recipients
from casarray.transport.queue import (
    NewMessage,
    NewRecipient,
    QueueError,
    QueueFull,
    QueueStore,
    new_queue_id,
)
from casarray.transport.tracking import TrackingLog, track_receive, track_submit

log = logging.getLogger("casarray.transport")


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 4.5.2: the leading dot of every line goes (a plain replace: the
    look-behind regex it replaces took a quarter of the receive's time for 100 KB)."""
    if b"\r\n." not in raw and not raw.startswith(b"."):
        return raw
    content = raw.replace(b"\r\n.", b"\r\n")
    return content[1:] if content.startswith(b".") else content


def longest_line(raw: bytes) -> int:
    """The length of the longest line of `raw` (lines end CRLF)."""
    return max(map(len, raw.split(b"\r\n")))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DATA_READ_LIMIT = 256 * 1024  # the stream's buffer during DATA
IDENT = "casarray Microsoft ESMTP MAIL Service ready"
BACKLOG = 1024
SESSION_TIMEOUT = 300.0  # Postfix's smtpd_timeout: from the last command, in all
# A message's data may take longer than SESSION_TIMEOUT while it arrives at least this
# fast (bytes a second); slower, it is cut (IIS's minBytesPerSecond).
DATA_MIN_RATE = 240.0
CLOSE_LINGER = 10.0  # seconds a client has to read a 421 before the connection is dropped
# Exchange's MaxInboundConnection; Postfix's smtpd_client_connection_count_limit (50)
# rather than Exchange 2010's MaxInboundConnectionPerSource (20), which a busy MTA's
# parallel deliveries reach.
DEFAULT_LIMITS = ConnectionLimits(per_address=50, total=5000)
REFUSED = {
    Refusal.ADDRESS: "421 4.7.0 {host} Too many connections from your address, closing "
    "transmission channel",
    Refusal.TOTAL: "421 4.3.2 {host} Too many connections, try again later, closing "
    "transmission channel",
}
TIMED_OUT = "421 4.4.2 {host} Error: timeout exceeded"
PROXY_TIMEOUT = 5.0  # seconds a trusted balancer has to send its PROXY header
QUEUE_MIN_FREE = 1 << 20  # bytes the queue's disk keeps free: MAIL is refused below it


@dataclass
class ReceiveContext:
    """What every session of the process shares; `config` is replaced whole when the
    directory changes."""

    config: TransportConfig
    queue: QueueStore
    recipients: Recipients
    authenticator: Authenticator
    tls: ssl.SSLContext | None = None
    on_queued: Callable[[str], None] = lambda queue_id: None
    guard_factory: Callable[[], policy.SessionGuard] = policy.SessionGuard
    counters: dict[str, int] = field(default_factory=dict)
    tracking: TrackingLog | None = None  # the message tracking log (None: not kept)
    # Connections per client address and in all, over every listener of the process.
    connections: ConnectionCounter = field(
        default_factory=lambda: ConnectionCounter(DEFAULT_LIMITS.within_fd_limit())
    )
    timeout: float = SESSION_TIMEOUT
    data_min_rate: float = DATA_MIN_RATE
    close_linger: float = CLOSE_LINGER
    queue_min_free: int = QUEUE_MIN_FREE  # see the module docstring

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


class RoutedEnvelope(Envelope):
    """An envelope with the routes of its accepted recipients."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[NewRecipient] = []


def _address_of(transport: asyncio.BaseTransport, name: str) -> tuple[str, int]:
    value = transport.get_extra_info(name)
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return "", 0


class TransportSMTP(FastSMTP):
    """aiosmtpd's protocol with the receive connector of the connection."""

    def __init__(self, context: ReceiveContext, configured_port: int) -> None:
        self.context = context
        self.configured_port = configured_port
        self.connector: Connector | None = None
        self.guard = context.guard_factory()
        self.authenticated_as = ""
        self._close_after_reply = False
        self._raw_replies = False
        self._greeted = False
        self._banner = ""
        self.local_address = ""
        self.proxied = False
        self._counted: str | None = None  # the key context.connections counts it under
        self._refusal: Refusal | None = None
        self._linger: asyncio.TimerHandle | None = None
        super().__init__(
            _HANDLER,
            data_size_limit=None,
            enable_SMTPUTF8=True,
            hostname=context.config.fqdn,
            ident=IDENT,
            tls_context=context.tls,
            timeout=context.timeout,
            auth_require_tls=True,
            loop=asyncio.get_running_loop(),
        )

    # -- the connection and its connector ------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the first call (STARTTLS calls it again)
            self.local_address, _ = _address_of(transport, "sockname")
            peer, _ = _address_of(transport, "peername")
            trusted = self.context.config.proxy_sources.get(self.configured_port, frozenset())
            proxied = peer in trusted
            # counted from the accept on (a balancer's connection in the total only,
            # until its PROXY header names the client: `count_client`)
            counted = self.context.connections.admit(peer, exempt=proxied)
            if isinstance(counted, Refusal):
                self._refusal = counted
            else:
                self._counted = counted
            if self._refusal is not None:
                pass  # refused in _handle_client, before any connector is looked up
            elif proxied:
                # a balancer: the client's address comes in its PROXY header (handle_PROXY)
                self.proxied = True
                self._proxy_timeout = PROXY_TIMEOUT
            else:
                self.choose_connector(peer)
        else:  # after STARTTLS the client starts again (RFC 3207 4.2), logged out
            self.authenticated_as = ""
        # aiosmtpd's new session after STARTTLS takes the socket's peer: through a
        # balancer, keep the client its PROXY header named
        client = self.session.peer if self.proxied and self.session is not None else None
        super().connection_made(transport)
        if client is not None and self.session is not None:
            self.session.peer = client

    def choose_connector(self, client: str) -> Connector | None:
        """The connector that serves `client` here (applied to the session), or None."""
        config = self.context.config
        self.connector = policy.choose_connector(
            config.connectors, self.local_address, self.configured_port, client
        )
        if self.connector is not None:
            self._apply(self.connector)
        return self.connector

    def _apply(self, connector: Connector) -> None:
        self.data_size_limit = connector.max_message_size or None
        self._auth_require_tls = connector.auth_requires_tls
        if connector.fqdn:
            self.hostname = connector.fqdn
        if connector.banner:
            text = connector.banner.strip()
            self._banner = text[3:].strip() if text.startswith("220") else text
        if not connector.offers_auth:
            self._auth_methods = {}
        if TLS not in connector.auth_mechanism:
            self.tls_context = None  # no STARTTLS without Tls in AuthMechanism

    def count_client(self, client: str) -> bool:
        """The balancer's PROXY header named `client`: counted as the client's
        connection; False when that is over the limit (then refused)."""
        counted = self.context.connections.move(self._counted or "", client)
        self._counted = None
        if isinstance(counted, Refusal):
            self._refusal = counted
            return False
        self._counted = counted
        return True

    async def _refuse(self, refusal: Refusal) -> None:
        assert self.session is not None
        self.context.count("refused_" + refusal.name.lower())
        log.info("%s: refused %r: %s", self.hostname, self.session.peer, refusal.value)
        self._close_after_reply = True
        self._raw_replies = True
        await self.push(REFUSED[refusal].format(host=self.hostname))

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted is not None:
            self.context.connections.release(self._counted)
            self._counted = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        """The client took too long (a command, or a message's data slower than
        `data_min_rate`): 421 4.4.2 as Postfix says it, then the connection closes; a
        client that doesn't read that either is dropped after `close_linger`."""
        assert self.session is not None
        log.info("%s: %r timed out", self.hostname, self.session.peer)
        self.context.count("timed_out")
        if self.transport is None:
            return
        transport = cast(asyncio.Transport, self.transport)
        with contextlib.suppress(Exception):
            transport.write(
                replies.enhance(TIMED_OUT.format(host=self.hostname)).encode() + b"\r\n"
            )
        transport.close()
        self._linger = self.loop.call_later(self.context.close_linger, transport.abort)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            await self._refuse(self._refusal)
            return
        if self.connector is None and not self.proxied:
            assert self.session is not None
            log.info("%s: no receive connector serves %r", self.hostname, self.session.peer)
            self.context.count("no_connector")
            self._close_after_reply = True
            await self.push(str(replies.NO_CONNECTOR))
            return
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            # aiosmtpd quotes what the client sent in some replies (`500 Error: command
            # "X" not recognized`): a CR, LF or NUL of it must not reach the client
            status = _CONTROL.sub("?", status)
            if not self._greeted and status.startswith("220 "):
                self._greeted = True
                if self._banner:  # the connector's Banner replaces "FQDN ident"
                    status = f"220 {self._banner}"
            if not self._raw_replies:
                status = replies.enhance(status)
        try:
            # a byte of the client's that isn't UTF-8 (aiosmtpd keeps it as a lone
            # surrogate) goes back as "?"
            data = status.encode("utf-8", "replace") if isinstance(status, str) else status
            await super().push(data)
        finally:
            if self._close_after_reply and self.transport is not None:
                self.transport.close()

    def close_after_reply(self) -> None:
        self._close_after_reply = True

    def _create_envelope(self) -> RoutedEnvelope:
        return RoutedEnvelope()

    @property
    def tls_active(self) -> bool:
        return self._tls_protocol is not None

    # -- commands aiosmtpd does, with what Exchange adds -----------------------------

    async def smtp_HELO(self, hostname: str) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._raw_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._raw_replies = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read up to each ".<CRLF>" (or 1 KB at a time,
        the stream's limit) instead of a line at a time: a 100 KB message was 1,300 reads
        on the event loop. The same replies as aiosmtpd's: 503 without a recipient, 501
        with an argument, 500 for a line over `line_length_limit`, 552 over the size
        limit (both once the message has ended), and the handler's reply."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        raw, too_much = await self._read_data()
        if raw is None:
            return  # the connection went away
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        if len(raw) + 2 > self.line_length_limit and longest_line(raw) + 2 > (
            self.line_length_limit
        ):
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()
            return
        content = unstuff(raw)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes | None, bool]:
        """The message's bytes up to the line "." that ends it (not included), and
        whether it was over the size limit (then its bytes are not kept); None when the
        connection went away first."""
        buffer = bytearray()
        limit = self.data_size_limit
        # During DATA the stream's buffer may hold more than a command line: with
        # aiosmtpd's 1 KB limit, a 100 KB message was a hundred reads, and the socket
        # paused and resumed at every 2 KB. The limit comes back for the next command.
        reader: Any = self._reader
        reader._limit = DATA_READ_LIMIT
        try:
            return await self._read_until_dot(buffer, limit)
        finally:
            reader._limit = self.line_length_limit

    async def _read_until_dot(
        self, buffer: bytearray, limit: int | None
    ) -> tuple[bytes | None, bool]:
        too_much = False
        started = self.loop.time()
        received = 0
        while self.transport is not None:
            try:
                chunk = await self._reader.readuntil(b".\r\n")
            except asyncio.CancelledError:
                log.info("Connection lost during DATA")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as exc:  # no ".<CRLF>" in DATA_READ_LIMIT
                chunk = await self._reader.read(exc.consumed)
            # the session's deadline, moved on by what arrived at the minimum rate
            received += len(chunk)
            due = deadline(started, self.context.timeout, received, self.context.data_min_rate)
            self._reset_timeout(max(0.001, due - self.loop.time()))
            buffer += chunk
            if chunk.endswith(b".\r\n"):
                dot = len(buffer) - 3
                if (dot == 0 and not too_much) or buffer[dot - 2 : dot] == b"\r\n":
                    too_much = too_much or bool(limit and dot > limit)
                    return (b"" if too_much else bytes(buffer[:dot])), too_much
            if limit and len(buffer) > limit + 3:
                too_much = True
                del buffer[:-2]  # the last line break is all the end's check needs
        return None, too_much

    async def smtp_AUTH(self, arg: str) -> None:
        assert self.connector is not None
        if not self.connector.offers_auth:
            await self.push(str(replies.AUTH_NOT_OFFERED))
            return
        await super().smtp_AUTH(arg)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check_login(parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check_login(login, password)

    async def _check_login(self, login_bytes: bytes, password_bytes: bytes) -> AuthResult:
        assert self.session is not None
        try:
            login = login_bytes.decode("utf-8")
            password = password_bytes.decode("utf-8")
        except UnicodeDecodeError:
            login, password = "", ""
        peer = str(self.session.peer[0]) if isinstance(self.session.peer, tuple) else ""
        outcome = None
        assert self.connector is not None
        refused = policy.check_auth(self.connector, login, tls_active=self.tls_active)
        if refused == replies.AUTH_REQUIRED_TLS:  # a server's login, before STARTTLS
            return AuthResult(success=False, handled=False, message=str(refused))
        if login and refused is None:  # a login the connector doesn't take fails as wrong
            try:
                outcome = await asyncio.to_thread(
                    self.context.authenticator.authenticate, login, password, peer
                )
            except Exception:
                log.exception("AUTH %r from %s: the check failed", login, peer)
                return AuthResult(
                    success=False,
                    handled=False,
                    message="454 4.7.0 Temporary authentication failure",
                )
        if outcome is not None and outcome.retry_after is not None:
            self.context.count("auth_throttled")
            log.info("AUTH %r from %s: throttled", login, peer)
            return AuthResult(success=False, handled=False, message=str(replies.AUTH_THROTTLED))
        if outcome is not None and outcome.user is not None:
            self.authenticated_as = outcome.user
            log.info("AUTH %r from %s: ok (%s)", login, peer, outcome.user)
            return AuthResult(success=True, auth_data=outcome.user)
        self.context.count("auth_failed")
        log.info("AUTH %r from %s: failed", login, peer)
        delay, closing = self.guard.auth_failed()
        if delay:
            await asyncio.sleep(delay)
        if closing is not None:
            self.close_after_reply()
            return AuthResult(success=False, handled=False, message=str(closing))
        return AuthResult(success=False, handled=False)  # 535 5.7.8


class ReceiveHandler:
    """aiosmtpd's handler hooks; `server` is the connection's `TransportSMTP`."""

    async def handle_PROXY(
        self, server: TransportSMTP, session: Session, envelope: Envelope, proxy_data: ProxyData
    ) -> bool:
        """A trusted balancer's PROXY header: the session is the client's, and so is
        the connector's choice. A header without addresses (a health check's) leaves
        the balancer's."""
        peer = session.peer
        client = str(peer[0]) if isinstance(peer, tuple) else ""
        if proxy_data.src_addr is not None and proxy_data.src_port is not None:
            client = str(proxy_data.src_addr)
            session.peer = (client, proxy_data.src_port)  # type: ignore[assignment]
            if not server.count_client(client):  # over the client's connection limit
                assert server._refusal is not None
                await server._refuse(server._refusal)
                return False
        if server.choose_connector(client) is None:
            log.info(
                "%s: no receive connector serves %s (through a balancer)", server.hostname, client
            )
            server.context.count("no_connector")
            return False
        return True

    async def handle_EHLO(
        self,
        server: TransportSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        kept = [
            line
            for line in responses[:-1]
            if not line.startswith("250-AUTH")
            or (server.connector and server.connector.offers_auth)
        ]
        return [*kept, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]

    async def handle_MAIL(
        self,
        server: TransportSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        assert server.connector is not None
        if address != "<>" and policy.split_address(address) is None:
            return str(replies.BAD_SENDER)
        size = None
        for option in mail_options:
            name, _, value = option.partition("=")
            if name == "SIZE" and value.isdigit():
                size = int(value)
        refused = policy.check_mail(server.connector, size)
        if refused is not None:
            return str(refused)
        context = server.context
        free = context.queue.free_space()
        if free is not None and free < context.queue_min_free + (size or 0):
            context.count("insufficient_storage")
            log.warning(
                "%s: MAIL refused: %d bytes left for the queue (%s)",
                context.config.server,
                free,
                replies.INSUFFICIENT_STORAGE,
            )
            return str(replies.INSUFFICIENT_STORAGE)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self,
        server: TransportSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        assert server.connector is not None and isinstance(envelope, RoutedEnvelope)
        context = server.context
        # a mailbox already looked up is decided here; a lookup goes to a worker thread
        decide = functools.partial(
            policy.check_recipient,
            context.config,
            server.connector,
            address,
            authenticated=bool(server.authenticated_as),
            accepted_so_far=len(envelope.routes),
        )
        if context.recipients.known(address):
            decision = decide(exists=context.recipients.exists)
        else:
            decision = await asyncio.to_thread(decide, exists=context.recipients.exists)
        if decision.recipient is None:
            context.count("recipient_refused")
            if decision.reply.permanent:
                delay, closing = server.guard.recipient_refused()
                if delay:
                    await asyncio.sleep(delay)
                if closing is not None:
                    server.close_after_reply()
                    return str(closing)
            return str(decision.reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.routes.append(decision.recipient)
        return str(decision.reply)

    async def handle_DATA(self, server: TransportSMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, RoutedEnvelope) and server.connector is not None
        context = server.context
        content = envelope.original_content or b""
        refused = policy.check_message(content)
        if refused is not None:
            context.count("loop")
            return str(refused)
        queue_id = new_queue_id()
        peer = str(session.peer[0]) if isinstance(session.peer, tuple) else str(session.peer)
        protocol = (
            "ESMTP" + ("S" if server.tls_active else "") + ("A" if server.authenticated_as else "")
        )
        received = received_header(
            helo=session.host_name or "unknown",
            client_address=peer,
            by=server.connector.fqdn or context.config.fqdn,
            queue_id=queue_id,
            recipient=envelope.routes[0].address if len(envelope.routes) == 1 else None,
            protocol=protocol,
            when=datetime.now(UTC),
        )
        data = received + crlf(content)
        sender = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        message = NewMessage(
            sender=sender,
            recipients=tuple(envelope.routes),
            data=data,
            client_address=peer,
            client_helo=session.host_name or "",
            hop_count=hop_count(data),
            authenticated_as=server.authenticated_as,
            queue_id=queue_id,
        )
        try:
            await asyncio.to_thread(context.queue.enqueue, message)
        except QueueFull as exc:
            context.count("insufficient_storage")
            log.warning(
                "%s: a message from %s can't be queued: %s", context.config.server, peer, exc
            )
            return str(replies.INSUFFICIENT_STORAGE)
        except QueueError as exc:
            log.error("%s: a message from %s can't be queued: %s", context.config.server, peer, exc)
            return str(replies.QUEUE_FAILED)
        context.count("queued")
        if context.tracking is not None:  # RECEIVE in the message tracking log
            if server.authenticated_as.endswith("$"):  # a Client Access server's
                # a mailbox's message (web mail, the API) handed over by its CAS: SUBMIT
                # first, as Exchange's store driver logs a mailbox's submission
                track_submit(
                    context.tracking,
                    internal_message_id=queue_id,
                    data=data,
                    sender=sender,
                    recipients=[r.address for r in envelope.routes],
                    server_hostname=server.hostname,
                    source_context=f"submitted by {server.authenticated_as}",
                )
            track_receive(
                context.tracking,
                message,
                connector_id=f"{context.config.server}\\{server.connector.name}",
                server_ip=server.local_address,
                server_hostname=server.hostname,
            )
        log.debug(  # each message is in the message tracking log (RECEIVE)
            "%s: queued %s from <%s> for %d recipient(s), %d bytes",
            context.config.server,
            queue_id,
            sender,
            len(envelope.routes),
            len(data),
        )
        context.on_queued(queue_id)
        return str(replies.queued(queue_id))


_HANDLER = ReceiveHandler()  # stateless: one for every connection


@dataclass
class Listener:
    configured: tuple[str, int]  # the connector's binding
    address: str  # where it listens
    port: int
    server: asyncio.base_events.Server | None = None


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    context: ReceiveContext, sock: socket.socket, configured_port: int
) -> asyncio.base_events.Server:
    """Serve SMTP on the listening socket `sock` for the connectors of
    `configured_port`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TransportSMTP(context, configured_port), sock=sock, start_serving=True
    )
