"""Relay: queued recipients of other domains sent on through a send connector (the
SMTP send side of Exchange 2010's Hub Transport).

The route. A relayed recipient's domain (its next hop) is routed as Exchange routes
it (`TransportConfig.route`, from the directory's send connectors this server may
use): the most specific address space, then the lowest cost. No connector: the
recipient fails for good, `550 5.4.4 Unable to route` (the receive side refuses such
a recipient at RCPT already; this covers a connector removed since). The connector
sends to its smart hosts (a name or an address, `[10.0.0.1]` too, on its Port, in
their order) or, with DNSRoutingEnabled, to the domain's MX hosts by preference (the
domain itself when it has no MX record: RFC 5321's implicit MX), looked up through
the configured DNS server (`TransportConfig.resolver`: $CASARRAY_TRANSPORT_DNS, the
lab's DNS server in a lab, else the system's resolver). A domain that does not exist
fails for good (`554 5.4.4`); a lookup that can't be made now is retried. Hosts are
reached over IPv4 (their A records) only.

The session (smtplib, in a worker thread of the transport process). Each next host
in turn until one answers; EHLO with this server's FQDN; STARTTLS whenever the host
offers it (certificates not verified: opportunistic TLS, as Exchange's default), and
a connector with RequireTLS sends nothing on a session without TLS (a temporary
failure: `451 4.7.5`). One transaction carries every recipient of one message for
one next hop: MAIL FROM (SIZE; BODY=8BITMIME for 8-bit content when offered;
SMTPUTF8 when an address needs it, and then only to a host that offers it), one
RCPT each (its reply is that recipient's outcome: 2xx taken, 4xx retried, 5xx
failed), then DATA with the queued bytes as they are (our Received header on top),
whose reply settles every recipient the host took. A host that can't be reached, or
a session that breaks, leaves the recipients for a retry.

What is promised, and what remains possible. A recipient is recorded Delivered only
after the next hop answered `250` to the message's DATA; nothing acknowledged is
lost. The next hop's `250` and our record of it are two systems, so a crash of the
transport (or a broken connection) between DATA's final dot and the record leaves the
attempt in flight, and it is made again after the restart: the next hop may get the
message twice (at most once per crash, as with any MTA), never zero times.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver

from casarray.errors import CasarrayError
from casarray.transport.config import SendConnector, TransportConfig

log = logging.getLogger("casarray.transport")

TIMEOUT = 30.0  # seconds: connect and every command
CONNECT_TIMEOUT = 10.0

UNROUTABLE = "550 5.4.4 Unable to route: no send connector serves {domain}"

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")


class RelayFailure(CasarrayError):
    """The whole attempt failed before any recipient's reply: `reply` says why and
    whether for good (a 5xx reply) or for now."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply

    @property
    def permanent(self) -> bool:
        return self.reply.startswith("5")


@dataclass(frozen=True)
class RecipientResult:
    address: str
    state: str  # "delivered", "retry" or "failed"
    reply: str  # the reply of the next hop (or our own reason), enhanced status first
    remote: str = ""  # the host that gave it, "name [ip]"


@dataclass(frozen=True)
class Host:
    """A next host to connect to."""

    name: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.name} [{self.address}]" if self.name != self.address else self.address


def reply_text(code: int, message: bytes | str, fallback_status: str = "") -> str:
    """An SMTP reply as one line: the code, an enhanced status code (the host's own,
    else `fallback_status` or one from the code's class), the text."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    text = " ".join(text.split())
    if _STATUS.match(text):
        return f"{code} {text}"
    status = fallback_status or f"{str(code)[0]}.0.0"
    return f"{code} {status} {text}".rstrip()


def with_remote(reply: str, remote: str) -> str:
    """A recipient's last error naming the host that gave it (`dsn` reads it back)."""
    return f"{reply} (remote: {remote})" if remote else reply


_REMOTE = re.compile(r"\s*\(remote: ([^()]*)\)\s*$")


def split_remote(error: str) -> tuple[str, str]:
    """(the reply, the remote host) of a last error made by `with_remote`."""
    found = _REMOTE.search(error)
    if found is None:
        return error, ""
    return error[: found.start()], found.group(1)


# -- where to connect -----------------------------------------------------------------------


class Resolver:
    """Host and MX lookups through one DNS server ("ip" or "ip:port"), or the
    system's (host names also through /etc/hosts)."""

    def __init__(self, server: str = "", timeout: float = 5.0) -> None:
        self.server = server
        if server:
            host, port = server, 53
            if server.count(":") == 1:
                host, _, port_text = server.partition(":")
                port = int(port_text)
            elif server.startswith("[") and "]:" in server:
                host, _, port_text = server[1:].partition("]:")
                port = int(port_text)
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.resolver.Resolver(configure=False)
                self._resolver.nameservers = ["127.0.0.1"]
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    def mx(self, domain: str) -> list[str]:
        """The domain's mail hosts by preference; [domain] when it has no MX record.
        RelayFailure when the domain doesn't exist (for good) or can't be looked up."""
        try:
            answer = self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RelayFailure(
                f"554 5.4.4 Unable to route: the domain {domain} doesn't exist"
            ) from None
        except dns.resolver.NoAnswer:
            return [domain]
        except (dns.exception.DNSException, OSError) as exc:
            raise RelayFailure(f"451 4.4.3 The MX of {domain} can't be looked up: {exc}") from exc
        records = sorted(answer, key=lambda r: (r.preference, str(r.exchange)))
        hosts = [str(r.exchange).rstrip(".") for r in records]
        if hosts == [""]:  # a null MX (RFC 7505): the domain takes no mail
            raise RelayFailure(f"556 5.1.10 The domain {domain} accepts no mail (null MX)")
        return hosts

    def addresses(self, name: str) -> list[str]:
        """The IPv4 addresses of a host name (an address stands for itself)."""
        literal = name[1:-1] if name.startswith("[") and name.endswith("]") else name
        try:
            return [str(ipaddress.ip_address(literal))]
        except ValueError:
            pass
        if self.server:
            try:
                answer = self._resolver.resolve(literal, "A")
            except (dns.exception.DNSException, OSError):
                return []
            return [str(r) for r in answer]
        try:
            found = socket.getaddrinfo(literal, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in found))


def next_hosts(connector: SendConnector, domain: str, resolver: Resolver) -> list[Host]:
    """The hosts to try, in order, for mail to `domain` through `connector`."""
    names = list(connector.smart_hosts) if not connector.dns_routing_enabled else []
    if connector.dns_routing_enabled:
        names = resolver.mx(domain)
    hosts = []
    for name in names:
        for address in resolver.addresses(name):
            hosts.append(Host(name.strip("[]"), address, connector.port))
    if not hosts:
        raise RelayFailure(
            f"451 4.4.0 No address found for the next hop of {domain} ({', '.join(names)})"
        )
    return hosts


# -- the session ------------------------------------------------------------------------------


def _needs_utf8(*addresses: str) -> bool:
    return any(not a.isascii() for a in addresses)


def _eight_bit(data: bytes) -> bool:
    return any(byte > 127 for byte in data)


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # opportunistic TLS: encrypt, trust nothing
    return context


def send_message(
    config: TransportConfig,
    connector: SendConnector,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    hosts: Sequence[Host],
) -> list[RecipientResult]:
    """One message to `recipients` through the first of `hosts` that answers: each
    recipient's result. RelayFailure when no host could take the message at all."""
    last: RelayFailure | None = None
    for host in hosts:
        try:
            return _session(config, connector, sender, recipients, data, host)
        except RelayFailure as exc:
            last = exc
            if exc.permanent:
                raise
            log.info("relay to %s: %s", host, exc.reply)
    assert last is not None
    raise last


def _session(
    config: TransportConfig,
    connector: SendConnector,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    host: Host,
) -> list[RecipientResult]:
    remote = str(host)
    try:
        # connected in the constructor, so that STARTTLS names the host it reached
        client = smtplib.SMTP(
            host.address, host.port, local_hostname=config.fqdn, timeout=CONNECT_TIMEOUT
        )
    except smtplib.SMTPConnectError as exc:  # a greeting other than 220
        raise RelayFailure(
            with_remote(reply_text(exc.smtp_code, exc.smtp_error, "4.4.1"), remote)
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise RelayFailure(f"451 4.4.1 {remote} can't be reached: {exc}") from exc
    try:
        if client.sock is not None:
            client.sock.settimeout(TIMEOUT)
        try:
            return _transaction(client, config, connector, sender, recipients, data, remote)
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            raise RelayFailure(f"451 4.4.2 The session with {remote} broke: {exc}") from exc
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _transaction(
    client: smtplib.SMTP,
    config: TransportConfig,
    connector: SendConnector,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    remote: str,
) -> list[RecipientResult]:
    code, text = client.ehlo(config.fqdn)
    if code != 250:
        code, text = client.helo(config.fqdn)
        if code != 250:
            raise RelayFailure(with_remote(reply_text(code, text, "4.4.0"), remote))
    tls = False
    if client.has_extn("starttls"):
        try:
            client.starttls(context=_tls_context())
        except smtplib.SMTPResponseException as exc:  # refused (454): on in the clear
            log.info(
                "relay to %s: STARTTLS refused: %s",
                remote,
                reply_text(exc.smtp_code, exc.smtp_error),
            )
        except (ssl.SSLError, smtplib.SMTPException) as exc:
            raise RelayFailure(f"451 4.7.5 TLS with {remote} failed: {exc}") from exc
        else:
            tls = True
    if tls:
        code, text = client.ehlo(config.fqdn)
        if code != 250:
            raise RelayFailure(with_remote(reply_text(code, text, "4.4.0"), remote))
    if connector.require_tls and not tls:
        raise RelayFailure(
            f"451 4.7.5 The send connector {connector.name} requires TLS and {remote} "
            "doesn't offer STARTTLS"
        )
    options = []
    if client.has_extn("size"):
        options.append(f"SIZE={len(data)}")
    if _eight_bit(data) and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if _needs_utf8(sender, *recipients):
        if not client.has_extn("smtputf8"):
            reply = f"553 5.6.7 {remote} doesn't take internationalized addresses (SMTPUTF8)"
            return [RecipientResult(r, "failed", reply, remote) for r in recipients]
        options.append("SMTPUTF8")
    code, text = client.mail(sender, options)
    if code != 250:
        reply = with_remote(reply_text(code, text), remote)
        client.rset()
        if code >= 500:
            return [RecipientResult(r, "failed", reply, remote) for r in recipients]
        raise RelayFailure(reply)
    results: dict[str, RecipientResult] = {}
    taken = []
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        reply = reply_text(code, text)
        if code in (250, 251):
            taken.append(recipient)
        else:
            state = "failed" if code >= 500 else "retry"
            results[recipient] = RecipientResult(recipient, state, reply, remote)
    if not taken:
        client.rset()
        return [results[r] for r in recipients]
    answer: bytes | str
    try:
        code, answer = client.data(data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
        code, answer = exc.smtp_code, exc.smtp_error
    reply = reply_text(code, answer)
    state = "delivered" if code == 250 else "failed" if code >= 500 else "retry"
    for recipient in taken:
        results[recipient] = RecipientResult(recipient, state, reply, remote)
    return [results[r] for r in recipients]
