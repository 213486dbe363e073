"""The zones the DNS server is authoritative for, as dnspython zones, in two views.

`build_zones(directory)` reads the directory once (`Directory.dns.contents()`, where
the rules for what each zone holds live) and returns a `ZoneSet`:

- `inside`: every zone with every record, for clients in `inside_networks` (the
  site subnets, the DNS client subnets, 127.0.0.0/8 and ::1);
- `outside`: the same zones without the hidden names (server FQDNs, NLB cluster
  names, array FQDNs, names of DENY query resolution policies), so those get
  NXDOMAIN (or NODATA when names below them remain);
- `serial`: every zone's SOA serial, the topology version modulo 2**32 (increasing
  with every directory change, RFC 1982-safe).

The zones are relativized (`relativize=True`, dnspython's default): node names are
relative to the zone's absolute origin (`@` is the apex); names in rdata (NS, CNAME,
MX, SRV targets) are absolute. `zone.to_text()` writes them relative to the origin.
Zones are in the directory's order: the accepted domains first, then the zones added
by Add-DnsServerPrimaryZone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

from casarray.directory.dns.objects import DnsContents, ZoneContents

if TYPE_CHECKING:
    from casarray.directory import Directory

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ZoneSet:
    """Every zone the server is authoritative for, in two views."""

    inside: tuple[dns.zone.Zone, ...]  # for clients inside (site subnets and loopback)
    outside: tuple[dns.zone.Zone, ...]  # for the others: the hidden names removed
    inside_networks: tuple[IPNetwork, ...]  # client networks that get `inside`
    serial: int  # the SOA serial of every zone

    def view_for(self, client: str) -> tuple[dns.zone.Zone, ...]:
        """The zones a client at `client` (an IP address as text; an IPv4-mapped IPv6
        address counts as its IPv4 address) sees; an unreadable address is outside."""
        return self.inside if is_inside(client, self.inside_networks) else self.outside

    def zone(self, name: str, *, outside: bool = False) -> dns.zone.Zone:
        """One zone by name (of the inside view unless `outside`)."""
        origin = dns.name.from_text(name)
        for zone in self.outside if outside else self.inside:
            if zone.origin == origin:
                return zone
        raise KeyError(name)


def is_inside(client: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        address = ipaddress.ip_address(str(client).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def zone_from_contents(contents: ZoneContents, *, outside: bool = False) -> dns.zone.Zone:
    """A dnspython zone of one zone's records (without its hidden names if `outside`)."""
    origin = dns.name.from_text(contents.name)
    zone = dns.zone.Zone(origin, relativize=True)
    for record in contents.records:
        if outside and record.host_name.lower() in contents.hidden:
            continue
        owner = dns.name.from_text(record.host_name, origin).relativize(origin)
        rdtype = dns.rdatatype.from_text(record.record_type)
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, record.data, origin=origin, relativize=False
        )
        zone.find_rdataset(owner, rdtype, create=True).add(rdata, record.ttl)
    return zone


def zone_set(contents: DnsContents) -> ZoneSet:
    return ZoneSet(
        inside=tuple(zone_from_contents(z) for z in contents.zones),
        outside=tuple(zone_from_contents(z, outside=True) for z in contents.zones),
        inside_networks=contents.inside_networks,
        serial=contents.serial,
    )


def build_zones(directory: Directory) -> ZoneSet:
    """Every zone, both views, from one read of the directory (blocking)."""
    return zone_set(directory.dns.contents())


def listen_address(directory: Directory) -> str:
    """The DNS server's IP from the directory (default 127.77.0.53)."""
    return directory.dns.listening_address()
