"""Submission: how a Client Access server hands a message its user sends to a Hub
Transport server, as Exchange 2010's CAS (OWA, EWS) submits through the Hub Transport
servers of its site.

1. Which Hub Transport server (`hubs`, from the directory): those of the Client Access
   server's own AD site first, then any other, each in install order. On each, the
   receive connector that takes Exchange servers: enabled, PermissionGroups with
   ExchangeServers, AuthMechanism with ExchangeServer, RemoteIPRanges holding this
   server's address ("Default MBX01" on 25 as setup makes it).
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
   account (`directory.server_credentials`, `CAS01$`), MAIL FROM the user's primary
   address, RCPT TO each recipient, DATA. The `250 2.6.0 <queue id>` reply is the
   acknowledgement: the message is in the hub's durable queue.

Failures: a refused recipient (`RecipientsRefused`, naming each with its reply) ends
the submission before DATA and nothing is sent; a hub that can't be reached (or drops
the connection before DATA) makes the next one tried; any other refusal is a
`SubmissionError` saying what the hub answered.
"""

from __future__ import annotations

import errno
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
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


def hubs(
    directory: Directory, server: Server, *, port_offset: int = 0, home: Path | None = None
) -> list[Hub]:
    """The Hub Transport servers `server` (a Client Access server) may submit to, its
    own site's first (see the module docstring). Blocking."""
    from casarray.directory import ServerRole
    from casarray.directory.transport.values import in_ranges

    found: list[Hub] = []
    candidates = directory.servers.get(role=ServerRole.HubTransport)
    candidates.sort(key=lambda s: (s.site != server.site, s.install_order))
    for hub in candidates:
        mapped = _listening_ports(hub.name, home)
        connectors = [
            c
            for c in directory.transport.receive_connectors(hub.name)
            if c.enabled
            and EXCHANGE_SERVERS in c.permission_groups
            and EXCHANGE_SERVER in c.auth_mechanism
            and (not server.ip_address or in_ranges(server.ip_address, c.remote_ip_ranges))
        ]
        connectors.sort(key=lambda c: (all(port != 25 for _, port in c.bindings), c.name))
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


def _session(
    hub: Hub,
    local: Server,
    login: tuple[str, str],
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    home: Path | None,
    timeout: float,
) -> Submitted:
    client = _connect(hub, local, timeout)
    sent_data = False
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
            client.login(*login)
        except smtplib.SMTPAuthenticationError as exc:
            raise SubmissionError(
                f"{hub.fqdn} refused {local.name}'s server credential: "
                f"{_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
        code, text = client.mail(sender)
        if code != 250:
            raise SubmissionError(
                f"{hub.fqdn} refused the sender {sender}: {_reply(code, text)}",
                temporary=code < 500,
            )
        refused: dict[str, str] = {}
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = _reply(code, text)
        if refused:
            client.rset()
            raise RecipientsRefused(refused)
        sent_data = True
        code, text = client.data(data)
        reply = _reply(code, text)
        if code != 250:
            raise SubmissionError(
                f"{hub.fqdn} didn't take the message: {reply}", temporary=code < 500
            )
        match = _QUEUE_ID.search(reply)
        log.info("%s: submitted to %s (%s)", local.name, hub.fqdn, reply)
        return Submitted(match.group(1) if match else "", hub.server, reply)
    except smtplib.SMTPServerDisconnected:
        if sent_data:  # the hub may have queued it: don't send it twice
            raise SubmissionError(
                f"{hub.fqdn} closed the connection before it acknowledged the message; "
                "it may or may not have been sent."
            ) from None
        raise
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


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
    credential = server_credentials.credential(directory, local.name)
    failures: list[str] = []
    for hub in candidates:
        try:
            return _session(
                hub,
                local,
                (credential.login, credential.password),
                sender,
                recipients,
                data,
                home=home,
                timeout=timeout,
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
    "SubmissionError",
    "Submitted",
    "hubs",
    "submit",
    "tls_context",
]
