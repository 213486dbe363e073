"""What a receive connector allows (Exchange 2010's semantics), as pure decisions.

- Which connector serves a client: among the enabled connectors bound to the address
  and port it reached (or to 0.0.0.0 on that port), the one whose RemoteIPRanges
  holds the client most narrowly (Exchange picks the most specific match).
- MAIL FROM: a SIZE over the connector's MaxMessageSize is refused there (`552 5.3.4`).
- RCPT TO: more recipients than MaxRecipientsPerMessage get `452 4.5.3`. A recipient in
  an accepted domain is taken by anyone the connector serves: in an Authoritative
  domain it must exist (`550 5.1.1`); in an InternalRelay domain one that doesn't
  exist here is relayed. A recipient elsewhere is relay: allowed to an authenticated
  user (ExchangeUsers) and to anonymous clients of a connector
  whose RemoteIPRanges is a list of particular addresses (not everything), and
  refused otherwise (`550 5.7.1`).
- AUTH: a login that names a computer account (`CAS01$`, `LAB\\CAS01$`) is an Exchange
  server's (`directory.server_credentials`): taken only where the connector's
  PermissionGroups has ExchangeServers and its AuthMechanism has ExchangeServer, and
  only after STARTTLS (Exchange's server authentication is Kerberos or the server's
  certificate, over TLS); any other login is a user's, taken where the connector has
  ExchangeUsers and BasicAuth. Either principal may then relay and send as any sender
  (Exchange grants Ms-Exch-SMTP-Accept-Any-Recipient to ExchangeUsers and
  ExchangeServers alike, and Accept-Any-Sender / Accept-Authoritative-Domain-Sender to
  servers; casarray checks no sender against its login).
- The message: over 30 Received headers is a loop (`554 5.4.6`).
- Abuse: a session's failed AUTH attempts and refused recipients are counted
  (`SessionGuard`): past a few, each costs a delay (tarpit); past a limit, the session
  is closed with `421 4.7.0`.
- Relay (either kind) needs a send connector whose address space covers the domain:
  without one the recipient is refused at RCPT with `550 5.4.4 Unable to route`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from casarray.transport import replies
from casarray.transport.config import (
    AUTHORITATIVE,
    EXCHANGE_SERVERS,
    EXCHANGE_USERS,
    Connector,
    TransportConfig,
    range_width,
)
from casarray.transport.headers import MAX_HOPS
from casarray.transport.queue import LOCAL, RELAY, NewRecipient
from casarray.transport.replies import Reply


def _binds(connector: Connector, local_address: str, port: int) -> bool:
    return any(
        bound_port == port and host in {"0.0.0.0", "::", local_address}
        for host, bound_port in connector.bindings
    )


def choose_connector(
    connectors: tuple[Connector, ...], local_address: str, port: int, remote_address: str
) -> Connector | None:
    """The connector that serves a client at `remote_address` that reached
    `local_address`:`port`; None when none does."""
    best: tuple[int, int, Connector] | None = None
    for connector in connectors:
        if not connector.enabled or not _binds(connector, local_address, port):
            continue
        width = range_width(connector.remote_ip_ranges, remote_address)
        if width is None:
            continue
        specific = 0 if any(host == local_address for host, _ in connector.bindings) else 1
        key = (width, specific)
        if best is None or key < best[:2]:
            best = (width, specific, connector)
    return best[2] if best is not None else None


def listen_bindings(connectors: tuple[Connector, ...]) -> list[tuple[str, int]]:
    """The distinct (address, port) pairs the enabled connectors bind, in order."""
    seen: dict[tuple[str, int], None] = {}
    for connector in connectors:
        if connector.enabled:
            for binding in connector.bindings:
                seen.setdefault(binding, None)
    return list(seen)


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, domain in lower case) of `address`, or None when it has no
    domain."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(c in domain for c in " <>[]"):
        return None
    return local, domain.rstrip(".").lower()


def check_mail(connector: Connector, declared_size: int | None) -> Reply | None:
    """A reply refusing MAIL FROM, or None to accept it."""
    if (
        declared_size is not None
        and connector.max_message_size
        and declared_size > connector.max_message_size
    ):
        return replies.MESSAGE_TOO_BIG
    return None


def is_server_login(login: str) -> bool:
    """Whether an AUTH login names an Exchange server's computer account (`CAS01$`,
    `LAB\\CAS01$`), the form `directory.server_credentials` gives servers."""
    name = login.strip().rsplit("\\", 1)[-1]
    return len(name) > 1 and name.endswith("$") and "@" not in name


def check_auth(connector: Connector, login: str, *, tls_active: bool) -> Reply | None:
    """A reply refusing AUTH with `login` on `connector` before its password is checked,
    or None to check it. A server login: only where the connector offers server
    authentication, and only over TLS (`538 5.7.11`); a user login: only where it
    offers user authentication. Refused logins fail as a wrong password would (`535
    5.7.8`), so a client learns nothing of which logins a connector takes."""
    if is_server_login(login):
        if not connector.offers_server_auth:
            return replies.AUTH_FAILED
        if not tls_active:
            return replies.AUTH_REQUIRED_TLS
        return None
    if not connector.offers_user_auth:
        return replies.AUTH_FAILED
    return None


def may_relay(connector: Connector, authenticated: bool) -> bool:
    """Relay for an authenticated client (a user where the connector has ExchangeUsers,
    an Exchange server where it has ExchangeServers: `check_auth` takes each only
    there), or for the anonymous clients of a connector limited to particular
    addresses. ExchangeServers grants nothing to an anonymous client."""
    if authenticated and connector.permission_groups & {EXCHANGE_USERS, EXCHANGE_SERVERS}:
        return True
    return connector.anonymous and not connector.open_to_all


@dataclass(frozen=True)
class RecipientDecision:
    reply: Reply
    recipient: NewRecipient | None  # None: refused


def check_recipient(
    config: TransportConfig,
    connector: Connector,
    address: str,
    *,
    authenticated: bool,
    accepted_so_far: int,
    exists: Callable[[str], bool | None],
) -> RecipientDecision:
    """Whether RCPT TO `address` is taken, and its route. `exists(address)` says whether
    a mailbox has that address (None: it can't be known now)."""
    if connector.max_recipients_per_message and (
        accepted_so_far >= connector.max_recipients_per_message
    ):
        return RecipientDecision(replies.TOO_MANY_RECIPIENTS, None)
    parts = split_address(address)
    if parts is None:
        return RecipientDecision(replies.BAD_ADDRESS, None)
    _, domain_name = parts
    domain = config.domain(domain_name)
    if domain is not None:
        found = exists(address)
        if found is None:
            return RecipientDecision(replies.LOOKUP_FAILED, None)
        if found:
            return RecipientDecision(replies.RECIPIENT_OK, NewRecipient(address, LOCAL))
        if domain.domain_type == AUTHORITATIVE:
            return RecipientDecision(replies.USER_UNKNOWN, None)
        return _relayed(config, address, domain_name)
    if may_relay(connector, authenticated):
        return _relayed(config, address, domain_name)
    return RecipientDecision(replies.RELAY_DENIED, None)


def _relayed(config: TransportConfig, address: str, domain_name: str) -> RecipientDecision:
    """A recipient to relay: taken when a send connector routes its domain, else
    refused at once (`550 5.4.4`) rather than failed after `250`."""
    if not config.routable(domain_name):
        return RecipientDecision(replies.UNROUTABLE, None)
    return RecipientDecision(replies.RECIPIENT_OK, NewRecipient(address, RELAY, domain_name))


def check_message(data: bytes) -> Reply | None:
    """A reply refusing the message after DATA, or None."""
    from casarray.transport.headers import hop_count

    if hop_count(data) >= MAX_HOPS:
        return replies.LOOP
    return None


@dataclass
class SessionGuard:
    """Counts a session's failures: the delay (seconds) each new one costs, and when to
    close the session."""

    free_failures: int = 3  # failures before the tarpit starts
    delay: float = 1.0  # seconds per failure past the free ones
    auth_limit: int = 5  # failed AUTHs in one session before it is closed
    recipient_limit: int = 50  # refused recipients in one session before it is closed
    auth_failures: int = 0
    refused_recipients: int = 0

    def auth_failed(self) -> tuple[float, Reply | None]:
        """(delay before answering, the reply that closes the session or None)."""
        self.auth_failures += 1
        if self.auth_failures >= self.auth_limit:
            return self._delay(self.auth_failures), replies.TOO_MANY_AUTH_FAILURES
        return self._delay(self.auth_failures), None

    def recipient_refused(self) -> tuple[float, Reply | None]:
        self.refused_recipients += 1
        if self.refused_recipients >= self.recipient_limit:
            return self._delay(self.refused_recipients), replies.TOO_MANY_BAD_RECIPIENTS
        return self._delay(self.refused_recipients), None

    def _delay(self, failures: int) -> float:
        return self.delay if failures > self.free_failures else 0.0
