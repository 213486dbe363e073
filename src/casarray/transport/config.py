"""What the Hub Transport service knows of the directory: one frozen snapshot.

`TransportConfig` holds the accepted domains, this server's receive connectors and its
transport settings, as plain values; everything else in the package (the policy, the
receive service, delivery) takes it and never the directory, so tests build one
directly. `load_config` is the one adapter that reads `casarray.directory.transport`
(Get-AcceptedDomain, Get-ReceiveConnector, Get-TransportServer); the process calls it
again whenever the directory's topology version changes.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casarray.directory import Directory

AUTHORITATIVE = "Authoritative"
INTERNAL_RELAY = "InternalRelay"

# Receive connector permission groups and authentication mechanisms (Exchange names).
ANONYMOUS_USERS = "AnonymousUsers"
EXCHANGE_USERS = "ExchangeUsers"
EXCHANGE_SERVERS = "ExchangeServers"
TLS = "Tls"
EXCHANGE_SERVER = "ExchangeServer"  # the mechanism Exchange servers authenticate with
BASIC_AUTH = "BasicAuth"
BASIC_AUTH_REQUIRE_TLS = "BasicAuthRequireTLS"

DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024  # Exchange 2010's default: 10 MB
DEFAULT_MAX_RECIPIENTS = 200


@dataclass(frozen=True)
class Domain:
    """An accepted domain."""

    domain_name: str  # lower case
    domain_type: str  # AUTHORITATIVE or INTERNAL_RELAY


@dataclass(frozen=True)
class Connector:
    """A receive connector of this server."""

    name: str
    bindings: tuple[tuple[str, int], ...]
    remote_ip_ranges: tuple[str, ...] = ("0.0.0.0-255.255.255.255",)
    auth_mechanism: frozenset[str] = frozenset({TLS})
    permission_groups: frozenset[str] = frozenset({ANONYMOUS_USERS})
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients_per_message: int = DEFAULT_MAX_RECIPIENTS
    banner: str | None = None
    fqdn: str = ""
    enabled: bool = True

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_USERS in self.permission_groups

    @property
    def offers_user_auth(self) -> bool:
        """Users (mailboxes) may log in: ExchangeUsers with BasicAuth."""
        return EXCHANGE_USERS in self.permission_groups and bool(
            self.auth_mechanism & {BASIC_AUTH, BASIC_AUTH_REQUIRE_TLS}
        )

    @property
    def offers_server_auth(self) -> bool:
        """Exchange servers may log in as their computer account (`CAS01$`):
        ExchangeServers with the ExchangeServer mechanism (and only after STARTTLS,
        `policy.check_auth`)."""
        return EXCHANGE_SERVERS in self.permission_groups and EXCHANGE_SERVER in (
            self.auth_mechanism
        )

    @property
    def offers_auth(self) -> bool:
        return self.offers_user_auth or self.offers_server_auth

    @property
    def auth_requires_tls(self) -> bool:
        """AUTH only after STARTTLS (BasicAuthRequireTLS); plain BasicAuth allows it on
        a clear channel, as Exchange does."""
        return BASIC_AUTH_REQUIRE_TLS in self.auth_mechanism or BASIC_AUTH not in (
            self.auth_mechanism
        )

    @property
    def open_to_all(self) -> bool:
        """Whether RemoteIPRanges holds every address (the Default connector): then it
        grants no relay to anonymous clients by their address."""
        return any(
            (parsed := _address_range(entry)) is not None
            and parsed[1] == 0
            and parsed[2] == (2**32 - 1 if parsed[0] == 4 else 2**128 - 1)
            for entry in self.remote_ip_ranges
        )

    def accepts_from(self, address: str) -> bool:
        """Whether a client at `address` is in the connector's RemoteIPRanges."""
        return range_width(self.remote_ip_ranges, address) is not None


@dataclass(frozen=True)
class SendConnector:
    """A send connector this server may send through (Get-SendConnector): mail for its
    address spaces ((domain pattern, cost): "*", "*.contoso.com", "contoso.com") goes
    to its smart hosts (a name or an address, on `port`) or, with DNS routing, to the
    domain's MX hosts."""

    name: str
    address_spaces: tuple[tuple[str, int], ...]
    smart_hosts: tuple[str, ...] = ()
    dns_routing_enabled: bool = False
    port: int = 25
    require_tls: bool = False
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE


def _pattern_matches(pattern: str, domain: str) -> bool:
    if pattern == "*":
        return bool(domain)
    if pattern.startswith("*."):
        return domain == pattern[2:] or domain.endswith(pattern[1:])
    return domain == pattern


def _specificity(pattern: str) -> tuple[int, int]:
    """More labels first, an exact domain before a wildcard of it, "*" last (as
    `directory.transport.values.specificity`)."""
    if pattern == "*":
        return (0, 0)
    if pattern.startswith("*."):
        return (pattern.count("."), 0)
    return (pattern.count(".") + 1, 1)


@dataclass(frozen=True)
class TransportConfig:
    """The snapshot the service runs on."""

    server: str
    fqdn: str
    domains: tuple[Domain, ...] = ()
    connectors: tuple[Connector, ...] = ()
    message_retry_interval: timedelta = timedelta(minutes=10)
    message_expiration_timeout: timedelta = timedelta(days=2)
    max_outbound_connections: int = 1000  # SMTP sessions to next hops at once
    # per connector port, the balancers that open connections with a PROXY protocol
    # header (the NLB cluster IP when its port rule says -ProxyProtocol)
    proxy_sources: dict[int, frozenset[str]] = field(default_factory=dict, compare=False)
    # the send connectors this server may use; None: not known (a snapshot built
    # without them: relay is then not refused at RCPT, and fails at delivery)
    send_connectors: tuple[SendConnector, ...] | None = None
    # the DNS server MX and host lookups of relay ask ("ip" or "ip:port"); "": the
    # system's resolver
    resolver: str = ""
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def domain(self, name: str) -> Domain | None:
        """The accepted domain of `name` (case-insensitive): the domain itself, else the
        nearest wildcard ("*.lab.net" covers lab.net and its subdomains); or None."""
        wanted = name.strip().rstrip(".").lower()
        by_name = {d.domain_name: d for d in self.domains}
        if wanted in by_name:
            return by_name[wanted]
        labels = wanted.split(".")
        for start in range(len(labels)):
            found = by_name.get("*." + ".".join(labels[start:]))
            if found is not None:
                return found
        return None

    def route(self, domain: str) -> SendConnector | None:
        """The send connector mail for `domain` leaves by (Exchange's choice, as
        `Directory.transport.route_for`): the most specific matching address space,
        then the lowest cost, then the name; None when none covers it."""
        wanted = domain.strip().rstrip(".").lower()
        best: tuple[tuple[int, int], int, str] | None = None
        found: SendConnector | None = None
        for connector in self.send_connectors or ():
            for pattern, cost in connector.address_spaces:
                if not _pattern_matches(pattern, wanted):
                    continue
                key = (_specificity(pattern), -cost, connector.name.lower())
                if best is None or key[:2] > best[:2] or (key[:2] == best[:2] and key[2] < best[2]):
                    best, found = key, connector
        return found

    def routable(self, domain: str) -> bool:
        """Whether relay to `domain` has a way out (always, when the send connectors
        aren't known)."""
        return self.send_connectors is None or self.route(domain) is not None


def _address_range(text: str) -> tuple[int, int, int] | None:
    """(version, first, last) of a RemoteIPRanges entry: an address, a CIDR block or
    `first-last`. None when it can't be read."""
    text = text.strip()
    try:
        if "-" in text:
            first_text, _, last_text = text.partition("-")
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip())
            if first.version != last.version:
                return None
            return first.version, int(first), int(last)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


@functools.lru_cache(maxsize=4096)
def range_width(ranges: tuple[str, ...], address: str) -> int | None:
    """The size of the narrowest of `ranges` that holds `address`, or None when none
    does (an IPv4-mapped IPv6 client counts as its IPv4 address)."""
    try:
        client = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    best: int | None = None
    for entry in ranges:
        parsed = _address_range(entry)
        if parsed is None or parsed[0] != client.version:
            continue
        _, first, last = parsed
        if first <= int(client) <= last:
            width = last - first
            best = width if best is None else min(best, width)
    return best


def _get(obj: object, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default)


def load_config(directory: Directory, server: str) -> TransportConfig:
    """The snapshot of `server`'s transport configuration in the directory now.
    Blocking. DirectoryError when the server isn't there."""
    record = directory.servers.one(server)
    version = directory.topology_version()
    transport = directory.transport
    domains = tuple(
        Domain(str(d.domain_name).lower().rstrip("."), str(d.domain_type))
        for d in transport.accepted_domains()
    )
    connectors = tuple(
        Connector(
            name=str(c.name),
            bindings=tuple((str(host), int(port)) for host, port in c.bindings),
            remote_ip_ranges=tuple(str(r) for r in c.remote_ip_ranges),
            auth_mechanism=frozenset(str(m) for m in c.auth_mechanism),
            permission_groups=frozenset(str(g) for g in c.permission_groups),
            max_message_size=int(c.max_message_size),
            max_recipients_per_message=int(c.max_recipients_per_message),
            banner=c.banner,
            fqdn=str(c.fqdn or record.fqdn),
            enabled=bool(c.enabled),
        )
        for c in transport.receive_connectors(record.name)
    )
    settings = transport.server_settings(record.name)
    send_connectors = tuple(
        SendConnector(
            name=str(c.name),
            address_spaces=tuple((str(p).lower(), int(cost)) for p, cost in c.address_spaces),
            smart_hosts=tuple(str(h) for h in c.smart_hosts),
            dns_routing_enabled=bool(c.dns_routing_enabled),
            port=int(c.port),
            require_tls=bool(c.require_tls),
            max_message_size=int(c.max_message_size),
        )
        for c in transport.send_connectors()
        if c.enabled
        and (
            not c.source_transport_servers
            or record.name.lower() in {str(s).lower() for s in c.source_transport_servers}
        )
    )
    proxy_sources = {}
    for port in sorted({port for c in connectors if c.enabled for _, port in c.bindings}):
        sources = directory.nlb.proxy_sources(record.name, port)
        if sources:
            proxy_sources[port] = frozenset(sources)
    return TransportConfig(
        server=record.name,
        fqdn=record.fqdn,
        domains=domains,
        connectors=connectors,
        message_retry_interval=_get(settings, "message_retry_interval", timedelta(minutes=10)),
        message_expiration_timeout=_get(settings, "message_expiration_timeout", timedelta(days=2)),
        max_outbound_connections=int(_get(settings, "max_outbound_connections", 1000)),
        proxy_sources=proxy_sources,
        send_connectors=send_connectors,
        resolver=relay_resolver(),
        version=version,
    )


RESOLVER_ENV = "CASARRAY_TRANSPORT_DNS"


def relay_resolver() -> str:
    """The DNS server relay asks: $CASARRAY_TRANSPORT_DNS ("ip" or "ip:port"), else
    the lab's DNS server when $CASARRAY_HOME is a lab's folder, else "" (the system's
    resolver)."""
    import os

    from casarray.config import lab_network

    given = os.environ.get(RESOLVER_ENV, "").strip()
    if given:
        return given
    try:
        lab = lab_network()
    except ValueError:
        return ""
    return f"{lab.dns_address}:{lab.dns_port}" if lab is not None else ""
