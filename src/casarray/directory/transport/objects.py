"""What the transport services return: accepted domains, receive and send connectors,
and a Hub Transport server's settings, as frozen records (Exchange's property names in
snake case)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from casarray.directory.transport.values import in_ranges


@dataclass(frozen=True)
class AcceptedDomain:
    """Get-AcceptedDomain: a domain the organization takes mail for. `domain_name` is a
    domain or "*.domain" (the domain and its subdomains)."""

    name: str
    domain_name: str
    domain_type: str  # "Authoritative" | "InternalRelay"
    default: bool
    guid: str = ""
    distinguished_name: str = ""


@dataclass(frozen=True)
class ReceiveConnector:
    """Get-ReceiveConnector: how one Hub Transport server takes SMTP connections on
    its bindings from the clients in `remote_ip_ranges`."""

    name: str
    server: str
    identity: str  # "SERVER\\Name"
    bindings: tuple[tuple[str, int], ...]
    remote_ip_ranges: tuple[str, ...]  # "0.0.0.0-255.255.255.255", "198.18.0.0/15", "10.0.0.1"
    auth_mechanism: frozenset[str]
    permission_groups: frozenset[str]
    max_message_size: int  # bytes
    max_recipients_per_message: int
    banner: str | None
    fqdn: str
    enabled: bool
    guid: str = ""
    distinguished_name: str = ""

    def accepts_from(self, address: str) -> bool:
        """Whether a client at `address` is one of this connector's remote IP ranges."""
        return in_ranges(address, self.remote_ip_ranges)


@dataclass(frozen=True)
class SendConnector:
    """Get-SendConnector: how mail for `address_spaces` leaves the organization: to
    `smart_hosts`, or by the domain's MX records when `dns_routing_enabled`; from
    `source_transport_servers` (any Hub Transport server when empty)."""

    name: str
    address_spaces: tuple[tuple[str, int], ...]  # (domain pattern, cost)
    smart_hosts: tuple[str, ...]
    dns_routing_enabled: bool
    source_transport_servers: tuple[str, ...]
    port: int
    require_tls: bool
    max_message_size: int  # bytes
    enabled: bool
    guid: str = ""
    distinguished_name: str = ""


@dataclass(frozen=True)
class TransportServerSettings:
    """Get-TransportServer: one Hub Transport server's queue settings."""

    server: str
    message_expiration_timeout: timedelta
    message_retry_interval: timedelta
    max_outbound_connections: int
    guid: str = ""
    fqdn: str = ""


def connector_identity(server: str, name: str) -> str:
    """A receive connector's Identity: "SERVER\\Name"."""
    return f"{server}\\{name}"


def transport_settings_dn(exchange_dn: str) -> str:
    return f"CN=Transport Settings,{exchange_dn}"
