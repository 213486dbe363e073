"""Submission: how a Client Access server hands a message its user sends to a Hub
Transport server, as Exchange 2010's CAS (OWA, EWS) submits through the Hub Transport
servers of its site.

1. Which Hub Transport server (`hubs`, from the directory): those of the Client Access
   server's own AD site first, then any other, each in install order. On each, the
   receive connector that takes Exchange servers: enabled, PermissionGroups with
   ExchangeServers, AuthMechanism with ExchangeServer, RemoteIPRanges holding this
   server's address ("Default MBX01" on 25 as setup makes it). Kept per process until
   the directory's topology version changes (every write bumps it).
2. Where it listens: the server's address (the connector's binding when it names one)
   and the connector's port, mapped as the Hub Transport process says in its status
   file (`$CASARRAY_HOME/run/transport-<server>.json`, `ports`: configured -> actual)
   when it runs on this host, else the port plus the offset this Client Access server
   itself listens with (the lab's +10000), as every port of a lab is offset alike.
3. The session (`submit`, blocking: smtplib, call it from a worker thread): from this
   server's own address when it can bind it, EHLO with its FQDN, STARTTLS (required:
   the server's credential is only ever sent over TLS), the certificate checked for
   the hub's FQDN against the lab's root CA, the hub's own self-signed SMTP certificate
   (its file on this host) and the system's CAs; AUTH as this server's computer
   account (`directory.server_credentials`, `CAS01$`). Then per message: MAIL FROM the
   user's primary address, RCPT TO each recipient, DATA. The `250 2.6.0 <queue id>`
   reply is the acknowledgement: the message is in the hub's durable queue.
4. Sessions are kept (`SessionPool`, one per process, thread-safe): after a message
   the authenticated session goes back to the pool, keyed by the hub's address, port
   and FQDN and the identity it authenticated as, at most `POOL_SIZE` idle per hub
   (more threads sending at once open more; the extra ones are closed with QUIT when
   they come back); the next message takes the most recently used one and starts with
   RSET. A session idle `IDLE_LIMIT` seconds (30, well inside the transport's 300 s
   timeout) is closed when the pool is next used; `close_pool` closes them all (the
   Client Access process at stop).

Failures: a refused recipient (`RecipientsRefused`, naming each with its reply) ends
the submission before DATA and nothing is sent; a hub that can't be reached (or drops
the connection before DATA) makes the next one tried; any other refusal is a
`SubmissionError` saying what the hub answered. A kept session that turns out dead
(the hub closed it, or answers 421) before the message's content was sent is dropped
and the message goes over another kept one or a new session, transparently: nothing
was queued. Once the content was sent, a lost connection (or no reply in time) is a
`SubmissionError` saying the message may or may not have been sent, and it is never
sent again, on that hub or another.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.errors import CasarrayError

if TYPE_CHECKING:
    from casarray.directory import Directory, Server

log = logging.getLogger("casarray.access.submission")

EXCHANGE_SERVERS = "ExchangeServers"
EXCHANGE_SERVER = "ExchangeServer"
WILDCARDS = {"0.0.0.0", "::", ""}
TIMEOUT = 30.0
POOL_SIZE = 4  # idle sessions kept per hub
IDLE_LIMIT = 30.0  # seconds a kept session may wait for the next message
_QUEUE_ID = re.compile(r"<([^<>\s]+)>")


class SubmissionError(CasarrayError):
    """The message wasn't submitted; `temporary` when trying again later may work."""

    category = "ResourceUnavailable"

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary


class RecipientsRefused(SubmissionError):
    """The Hub Transport server refused recipients (nothing was sent): `refused` maps
    each to the reply it got."""

    category = "InvalidArgument"

    def __init__(self, refused: dict[str, str]) -> None:
        names = "; ".join(f"{address}: {reply}" for address, reply in refused.items())
        noun = "recipient was" if len(refused) == 1 else "recipients were"
        super().__init__(
            f"The message wasn't sent: this {noun} refused: {names}",
            temporary=all(reply.startswith("4") for reply in refused.values()),
        )
        self.refused = refused


@dataclass(frozen=True)
class Hub:
    """A Hub Transport server's receive connector that takes Exchange servers."""

    server: str
    fqdn: str
    address: str
    port: int  # where it listens (mapped)
    connector: str
    same_site: bool


@dataclass(frozen=True)
class Submitted:
    """The hub's acknowledgement."""

    queue_id: str
    server: str
    reply: str


def _listening_ports(server: str, home: Path | None) -> dict[int, int]:
    """configured port -> the port the server's running transport process listens on,
    from its status file on this host; {} when none runs here."""
    from casarray.process import status

    said = status.read_status(status.TRANSPORT, server, home) or {}
    ports = said.get("ports")
    if not isinstance(ports, dict):
        return {}
    result: dict[int, int] = {}
    for configured, actual in ports.items():
        try:
            result[int(configured)] = int(actual)
        except (TypeError, ValueError):
            continue
    return result


_routes_cache: dict[tuple[bytes, int, str], list[tuple[Server, list[Any]]]] = {}
_routes_lock = threading.Lock()


def _routes(directory: Directory, server: Server) -> list[tuple[Server, list[Any]]]:
    """The Hub Transport servers (its own site's first) and, for each, the receive
    connectors that take this server (by preference), as the directory has them now:
    read again whenever its topology version changes (every write bumps it), so a
    submission costs one small query instead of a reading of servers and connectors."""
    from casarray.directory import ServerRole
    from casarray.directory.transport.values import in_ranges

    key = (
        directory.session_secret(),  # the organization (tests run several in a process)
        directory.topology_version(),
        f"{server.name}|{server.ip_address}|{server.site}",
    )
    with _routes_lock:
        known = _routes_cache.get(key)
    if known is not None:
        return known
    routes = []
    candidates = directory.servers.get(role=ServerRole.HubTransport)
    candidates.sort(key=lambda s: (s.site != server.site, s.install_order))
    for hub in candidates:
        connectors = [
            c
            for c in directory.transport.receive_connectors(hub.name)
            if c.enabled
            and EXCHANGE_SERVERS in c.permission_groups
            and EXCHANGE_SERVER in c.auth_mechanism
            and (not server.ip_address or in_ranges(server.ip_address, c.remote_ip_ranges))
        ]
        connectors.sort(key=lambda c: (all(port != 25 for _, port in c.bindings), c.name))
        routes.append((hub, connectors))
    with _routes_lock:
        if len(_routes_cache) > 64:
            _routes_cache.clear()
        _routes_cache[key] = routes
    return routes


def hubs(
    directory: Directory, server: Server, *, port_offset: int = 0, home: Path | None = None
) -> list[Hub]:
    """The Hub Transport servers `server` (a Client Access server) may submit to, its
    own site's first (see the module docstring). Blocking."""

    found: list[Hub] = []
    for hub, connectors in _routes(directory, server):
        mapped = _listening_ports(hub.name, home)
        for connector in connectors:
            for host, port in connector.bindings:
                address = hub.ip_address if host in WILDCARDS else host
                if not address:
                    continue
                actual = mapped.get(port, port + port_offset)
                same_site = hub.site == server.site
                found.append(Hub(hub.name, hub.fqdn, address, actual, connector.name, same_site))
                break
            else:
                continue
            break  # one connector per hub
    return found


def tls_context(hub: Hub, home: Path | None = None) -> ssl.SSLContext:
    """The context that checks a hub's certificate: for its FQDN, against the lab's root
    CA (`lab.json`), the hub's self-signed SMTP certificate when its file is on this
    host, and the system's CAs; a certificate in the trust list is trusted itself, so a
    leaf without its chain counts (partial chains)."""
    from casarray.config import casarray_home, lab_network

    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    home = home or casarray_home()
    anchors: list[Path] = [home / "transport" / hub.server.lower() / "smtp.pem"]
    try:
        network = lab_network(home)
    except ValueError:
        network = None
    if network is not None:
        anchors.append(network.root_ca)
    for anchor in anchors:
        try:
            if anchor.is_file():
                context.load_verify_locations(cafile=str(anchor))
        except (OSError, ssl.SSLError) as exc:
            log.warning("can't read the certificate %s: %s", anchor, exc)
    return context


class _Client(smtplib.SMTP):
    """smtplib's client, connected by address, whose STARTTLS checks the certificate
    for the hub's FQDN (smtplib checks it for the host it connected to)."""

    def __init__(self, tls_name: str, **options: Any) -> None:
        self.tls_name = tls_name
        super().__init__(**options)

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> tuple[int, bytes]:
        reply = super().connect(host, port, source_address)
        self._host = self.tls_name
        return reply


def _connect(hub: Hub, local: Server, timeout: float) -> smtplib.SMTP:
    """An SMTP session with `hub`, from `local`'s own address when it may be bound."""
    sources: list[tuple[str, int] | None] = [None]
    if local.ip_address:
        sources.insert(0, (local.ip_address, 0))
    for source in sources:
        client = _Client(
            hub.fqdn, timeout=timeout, local_hostname=local.fqdn, source_address=source
        )
        try:
            client.connect(hub.address, hub.port)
        except OSError as exc:
            client.close()
            if source is not None and exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
                continue  # not this host's address (the CAS runs elsewhere): any will do
            raise
        return client
    raise OSError(errno.EADDRNOTAVAIL, "no source address")  # not reached


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}"


_LEADING_DOT = re.compile(rb"(?m)^\.")


class _Stale(Exception):
    """A reused session turned out dead before the message's content was sent."""


@dataclass(frozen=True)
class _Key:
    """What a pooled session is good for: the hub's endpoint and the identity it was
    opened with."""

    address: str
    port: int
    fqdn: str
    local: str
    login: str


@dataclass
class _Idle:
    client: smtplib.SMTP
    since: float


class SessionPool:
    """Authenticated SMTP sessions to Hub Transport servers, kept for the next message:
    at most `size` idle ones per hub (and identity), each closed when it has been idle
    `idle_limit` seconds (lazily: when the pool is next used). Thread-safe; the
    sessions themselves are used by one thread at a time (taken, then given back)."""

    def __init__(self, size: int = POOL_SIZE, idle_limit: float = IDLE_LIMIT) -> None:
        self.size = size
        self.idle_limit = idle_limit
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[_Idle]] = {}
        self._pid = os.getpid()
        self.opened = 0  # sessions opened (for tests and logs)

    def take(self, key: _Key) -> smtplib.SMTP | None:
        """The most recently used idle session for `key`, or None."""
        expired: list[smtplib.SMTP] = []
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's are not ours
                self._idle, self._pid = {}, os.getpid()
            for k in list(self._idle):
                kept = [i for i in self._idle[k] if now - i.since < self.idle_limit]
                expired += [i.client for i in self._idle[k] if now - i.since >= self.idle_limit]
                if kept:
                    self._idle[k] = kept
                else:
                    del self._idle[k]
            idle = self._idle.get(key)
            client = idle.pop().client if idle else None
        for old in expired:
            _quit(old)
        return client

    def give(self, key: _Key, client: smtplib.SMTP) -> None:
        """Keep `client` (a session with no transaction under way) for the next message,
        or close it when `size` are kept already."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.size:
                idle.append(_Idle(client, time.monotonic()))
                return
        _quit(client)

    def opened_one(self) -> None:
        with self._lock:
            self.opened += 1

    def count(self) -> int:
        """Idle sessions kept now."""
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """QUIT every idle session (at process stop)."""
        with self._lock:
            clients = [i.client for idle in self._idle.values() for i in idle]
            self._idle.clear()
        for client in clients:
            _quit(client)


def _quit(client: smtplib.SMTP, timeout: float = 2.0) -> None:
    try:
        if client.sock is not None:
            client.sock.settimeout(timeout)
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


_pool = SessionPool()


def close_pool() -> None:
    """Close the process's kept sessions (the Client Access process calls it at stop)."""
    _pool.close()


def _open(
    hub: Hub,
    local: Server,
    login: str,
    password: Callable[[], str],
    *,
    home: Path | None,
    timeout: float,
) -> smtplib.SMTP:
    """A new session with `hub`: EHLO, STARTTLS, EHLO, AUTH as the server's account."""
    client = _connect(hub, local, timeout)
    try:
        client.ehlo()
        if not client.has_extn("starttls"):
            raise SubmissionError(
                f"{hub.fqdn} ({hub.connector}) doesn't offer STARTTLS: the server's "
                "credential is only sent over TLS."
            )
        try:
            client.starttls(context=tls_context(hub, home))
        except ssl.SSLCertVerificationError as exc:
            raise SubmissionError(
                f"The certificate of {hub.fqdn} can't be trusted: {exc.verify_message}."
            ) from None
        client.ehlo()
        if not client.has_extn("auth"):
            raise SubmissionError(
                f"{hub.fqdn} ({hub.connector}) doesn't offer authentication to Exchange servers."
            )
        try:
            client.login(login, password())
        except smtplib.SMTPAuthenticationError as exc:
            raise SubmissionError(
                f"{hub.fqdn} refused {local.name}'s server credential: "
                f"{_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
    except BaseException:
        _quit(client)
        raise
    return client


def _transaction(
    client: smtplib.SMTP,
    hub: Hub,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    reused: bool,
) -> str:
    """MAIL, RCPT, DATA on an authenticated session; the DATA reply. A reused session
    that fails before the content is sent (closed meanwhile, or 421) raises _Stale;
    after the content was sent, the outcome is unknown: SubmissionError saying so."""
    sent_data = False
    try:
        if reused:
            code, text = client.rset()  # between messages; and is the session alive?
            if code != 250:
                raise _Stale(_reply(code, text))
        code, text = client.mail(sender)
        if code == 421 and reused:
            raise _Stale(_reply(code, text))
        if code != 250:
            raise SubmissionError(
                f"{hub.fqdn} refused the sender {sender}: {_reply(code, text)}",
                temporary=code < 500,
            )
        refused: dict[str, str] = {}
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code == 421 and reused:
                raise _Stale(_reply(code, text))
            if code not in (250, 251):
                refused[recipient] = _reply(code, text)
        if refused:
            client.rset()
            raise RecipientsRefused(refused)
        client.putcmd("data")
        code, text = client.getreply()
        if code == 421 and reused:
            raise _Stale(_reply(code, text))
        if code != 354:
            raise SubmissionError(
                f"{hub.fqdn} didn't take the message: {_reply(code, text)}",
                temporary=code < 500,
            )
        content = _LEADING_DOT.sub(b"..", data)
        if not content.endswith(b"\r\n"):
            content += b"\r\n"
        sent_data = True
        client.send(content + b".\r\n")
        code, text = client.getreply()
        reply = _reply(code, text)
        if code != 250:
            raise SubmissionError(
                f"{hub.fqdn} didn't take the message: {reply}", temporary=code < 500
            )
        return reply
    except (smtplib.SMTPException, OSError) as exc:
        if sent_data:  # the hub may have queued it: never send it twice
            raise SubmissionError(
                f"{hub.fqdn} closed the connection before it acknowledged the message; "
                "it may or may not have been sent."
            ) from None
        if reused:
            raise _Stale(str(exc) or type(exc).__name__) from None
        raise


def _session(
    hub: Hub,
    local: Server,
    login: str,
    password: Callable[[], str],
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    home: Path | None,
    timeout: float,
    pool: SessionPool | None,
) -> Submitted:
    key = _Key(hub.address, hub.port, hub.fqdn, local.name, login)
    attempts = (pool.size + 1) if pool is not None else 0
    while True:
        client = pool.take(key) if pool is not None and attempts > 0 else None
        attempts -= 1
        reused = client is not None
        if client is None:
            client = _open(hub, local, login, password, home=home, timeout=timeout)
            if pool is not None:
                pool.opened_one()
        else:
            client.timeout = timeout
            if client.sock is not None:
                client.sock.settimeout(timeout)
        try:
            reply = _transaction(client, hub, sender, recipients, data, reused=reused)
        except _Stale as exc:
            log.info("%s: the kept session with %s is gone (%s)", local.name, hub.fqdn, exc)
            client.close()
            continue
        except RecipientsRefused:
            if pool is not None:  # RSET done: the session is fine
                pool.give(key, client)
            else:
                _quit(client)
            raise
        except BaseException:
            _quit(client)
            raise
        if pool is not None:
            pool.give(key, client)
        else:
            _quit(client)
        match = _QUEUE_ID.search(reply)
        log.info("%s: submitted to %s (%s)", local.name, hub.fqdn, reply)
        return Submitted(match.group(1) if match else "", hub.server, reply)


def submit(
    directory: Directory,
    local: Server,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    port_offset: int = 0,
    home: Path | None = None,
    timeout: float = TIMEOUT,
    pool: SessionPool | None = _pool,
) -> Submitted:
    """Submit `data` (the message, CRLF lines) from `sender` to `recipients` through a
    Hub Transport server (see the module docstring). Blocking. RecipientsRefused or
    SubmissionError when it wasn't sent."""
    from casarray.directory import server_credentials

    if not recipients:
        raise SubmissionError("The message has no recipient.", temporary=False)
    candidates = hubs(directory, local, port_offset=port_offset, home=home)
    if not candidates:
        raise SubmissionError(
            "No Hub Transport server takes mail from this Client Access server (none has "
            "an enabled receive connector with ExchangeServers and ExchangeServer "
            "authentication)."
        )
    login = server_credentials.login_of(local.name)
    known: list[str] = []

    def password() -> str:  # read from the directory only when a session is opened
        if not known:
            known.append(server_credentials.credential(directory, local.name).password)
        return known[0]

    failures: list[str] = []
    for hub in candidates:
        try:
            return _session(
                hub,
                local,
                login,
                password,
                sender,
                recipients,
                data,
                home=home,
                timeout=timeout,
                pool=pool,
            )
        except SubmissionError:
            raise
        except (OSError, smtplib.SMTPException) as exc:  # unreachable or gone: the next
            reason = str(exc) or type(exc).__name__
            log.warning("%s: %s:%d can't be used: %s", local.name, hub.fqdn, hub.port, reason)
            failures.append(f"{hub.fqdn} ({reason})")
    raise SubmissionError("No Hub Transport server could be reached: " + "; ".join(failures) + ".")


__all__ = [
    "Hub",
    "RecipientsRefused",
    "SessionPool",
    "SubmissionError",
    "Submitted",
    "close_pool",
    "hubs",
    "submit",
    "tls_context",
]
