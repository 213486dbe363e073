"""What the DNS services return: plain frozen records with the DnsServer module's names
(Get-DnsServerZone, Get-DnsServerResourceRecord, Get-DnsServerClientSubnet,
Get-DnsServerQueryResolutionPolicy), and `DnsContents`, everything the DNS server
serves, read at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casarray.directory.dns.values import TYPE_CODES, IPNetwork
from casarray.directory.errors import NotFoundError


@dataclass(frozen=True)
class DnsZone:
    """Get-DnsServerZone's view of a zone."""

    zone_name: str
    zone_type: str  # Primary
    is_ds_integrated: bool  # kept in the directory (no -ZoneFile)
    zone_file: str | None
    from_accepted_domain: bool  # an accepted domain's zone: no command made it
    when_created: datetime | None


@dataclass(frozen=True)
class DnsRecord:
    """One resource record of a zone. `host_name` is relative to the zone ("@" for the
    apex); `data` is the master-file text of its data, names absolute. `origin` names
    the directory objects an automatic record comes from (None: added by cmdlet)."""

    zone_name: str
    host_name: str
    record_type: str
    ttl: int
    data: str
    origin: str | None = None
    when_created: datetime | None = None
    # an automatic record at a public name (autodiscover, autoconfig, mail, MX, SRV):
    # a cmdlet record of any type there, a CNAME too, replaces it
    replaceable: bool = False

    @property
    def automatic(self) -> bool:
        return self.origin is not None

    @property
    def type_code(self) -> int:
        """The type's number (Get-DnsServerResourceRecord's Type)."""
        return TYPE_CODES[self.record_type]

    @property
    def fqdn(self) -> str:
        return self.zone_name if self.host_name == "@" else f"{self.host_name}.{self.zone_name}"


@dataclass(frozen=True)
class DnsClientSubnet:
    name: str
    ipv4_subnets: tuple[str, ...]
    ipv6_subnets: tuple[str, ...]


@dataclass(frozen=True)
class DnsQueryPolicy:
    name: str
    action: str
    fqdn: tuple[str, ...]  # the names (a leading "*." matches every name below)
    processing_order: int
    is_enabled: bool

    def matches(self, fqdn: str) -> bool:
        name = fqdn.lower().rstrip(".")
        for pattern in self.fqdn:
            if pattern.startswith("*."):
                if name.endswith(pattern[1:]):
                    return True
            elif name == pattern:
                return True
        return False


@dataclass(frozen=True)
class ZoneContents:
    """One zone as served: its records (SOA first) and, relative to it, the names
    clients outside the inside networks don't see."""

    name: str
    from_accepted_domain: bool
    records: tuple[DnsRecord, ...]
    hidden: frozenset[str]  # lower-case relative names


@dataclass(frozen=True)
class DnsContents:
    """Everything the DNS server serves, read in one go (see the module docstring)."""

    serial: int
    listening_address: str
    zones: tuple[ZoneContents, ...]
    inside_networks: tuple[IPNetwork, ...]

    def zone(self, name: str) -> ZoneContents:
        key = name.lower().rstrip(".")
        for zone in self.zones:
            if zone.name == key:
                return zone
        raise NotFoundError("DNS zone", name)
