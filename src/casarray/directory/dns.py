"""DNS: the zones casarray's DNS server is authoritative for, what is in them, and who
sees what (the DnsServer module's names and defaults).

Zones. Every accepted domain is a zone, with no command; `Add-DnsServerPrimaryZone`
adds others. A name belongs to the most specific zone that holds it; a zone inside
another is delegated from it (NS and glue in the parent).

Records. `contents()` builds every zone from the topology, in one read:
- SOA at the apex: primary server ns1.<zone>, responsible person hostmaster.<zone>,
  serial = the topology version (below), Windows' timers (refresh 15 min, retry 10
  min, expire 1 day, minimum 1 hour); NS at the apex -> ns1.<zone>, and its A -> the
  DNS server's listening address (`Set-DnsServerSetting -ListeningIPAddress`; default
  127.77.0.53, the lab's).
- A for every server FQDN (its IP), every NLB cluster name (its primary IP) and every
  client access array FQDN whose array an NLB cluster serves (linked by
  -ClientAccessArray, or named by the array's FQDN) -> the cluster IP.
- Accepted-domain zones also get the public names: autodiscover, autoconfig and mail
  -> the address of the first client access array (oldest first) whose FQDN has an A
  record (the cluster's, or one added by cmdlet); MX 10 -> mail.<zone> and the RFC 6186
  SRV records _imap._tcp (143), _imaps._tcp (993), _submission._tcp (587) -> mail.<zone>
  when mail.<zone> has an address; _autodiscover._tcp (443) -> autodiscover.<zone> when
  that has one.
- Records added by cmdlet. They win over the automatic ones: a cmdlet record of a type
  at a name replaces the automatic records of that type there (an identical record is
  therefore never doubled). A CNAME may replace the public names' records; one at a
  name where the directory makes other records (a server's, say) is refused, and if
  such a record appears after the CNAME, the CNAME keeps the name (RFC 1034).
Automatic records have a TTL of 20 minutes (Windows' for dynamically registered
hosts); cmdlet records 1 hour unless -TimeToLive says otherwise.

Serial. The SOA serial of every zone is the directory's topology version modulo 2**32.
Every directory write adds one, so the serial increases with every change, by far less
than 2**31 between two reads: increasing in RFC 1982 serial arithmetic, wrap included.
The version is read before the rest, so a serial never claims data newer than it.

Views (Microsoft's advice that the array FQDN must not resolve from outside). Clients
in the inside networks (every site subnet, every `Add-DnsServerClientSubnet` subnet,
127.0.0.0/8 and ::1) see every record; the others get NXDOMAIN for the hidden names:
every server FQDN, NLB cluster name and array FQDN, and the names of DENY query
resolution policies (`Add-DnsServerQueryResolutionPolicy -Action DENY -Fqdn
"EQ,name,*.name"`). A zone's apex and its name server are never hidden.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import (
    ConflictError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.schema import (
    AcceptedDomainRow,
    ClientAccessArrayRow,
    DnsClientSubnetRow,
    DnsQueryPolicyRow,
    DnsRecordRow,
    DnsServerRow,
    DnsZoneRow,
    NlbClusterRow,
    ServerRow,
    SubnetRow,
    TopologyRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

DEFAULT_LISTENING_ADDRESS = "127.77.0.53"
NAME_SERVER = "ns1"  # the zone's name server: ns1.<zone>
HOSTMASTER = "hostmaster"  # the SOA's responsible person: hostmaster.<zone>
DEFAULT_TTL = 3600  # Windows' default for a record added by cmdlet
AUTOMATIC_TTL = 1200  # Windows' for a dynamically registered host
MAX_TTL = 2**31 - 1  # RFC 2181
SOA_TIMERS = (900, 600, 86400, 3600)  # refresh, retry, expire, minimum (Windows')
MX_PREFERENCE = 10
SERIAL_MODULUS = 2**32
MAIL, AUTODISCOVER, AUTOCONFIG = "mail", "autodiscover", "autoconfig"
SRV_SERVICES = (  # RFC 6186, and Exchange's Autodiscover SRV
    ("_autodiscover._tcp", 443, AUTODISCOVER),
    ("_imap._tcp", 143, MAIL),
    ("_imaps._tcp", 993, MAIL),
    ("_submission._tcp", 587, MAIL),
)
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# the record types a cmdlet may add, as Get-DnsServerResourceRecord names them
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "SRV", "TXT")
SHOWN_TYPES = ("SOA", "NS", *RECORD_TYPES)
TYPE_CODES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
POLICY_ACTIONS = ("DENY",)

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$")
_TYPE_ORDER = {t: i for i, t in enumerate(SHOWN_TYPES)}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- values ---------------------------------------------------------------------------


def parse_ttl(parameter: str, value: object) -> int:
    """A TTL in seconds from seconds or a TimeSpan ("01:00:00", "1.00:00:00")."""
    if isinstance(value, bool):
        raise InvalidValueError(parameter, value, "is not a time span.")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        match = _TIMESPAN.fullmatch(text)
        if match:
            days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
            if hours > 23 or minutes > 59 or secs > 59:
                raise InvalidValueError(parameter, value, "is not a valid time span.")
            seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
        elif text.isdigit():
            seconds = int(text)
        else:
            raise InvalidValueError(
                parameter, value, "is not a time span (for example 01:00:00) or seconds."
            )
    if not 0 <= seconds <= MAX_TTL:
        raise InvalidValueError(
            parameter, value, f"is out of range: a TTL is 0 to {MAX_TTL} seconds."
        )
    return seconds


def timespan(seconds: int) -> str:
    """A TTL as Windows shows a TimeSpan: 01:00:00, 1.00:00:00."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{text}" if days else text


def zone_name(parameter: str, value: str) -> str:
    """A zone's name: a domain name, lower-case, no trailing dot."""
    return validate.fqdn(parameter, value).lower()


def _host(parameter: str, value: str) -> str:
    """A host name record data points at, absolute (trailing dot)."""
    return validate.fqdn(parameter, value) + "."


def _network(parameter: str, value: str, version: int) -> str:
    text = str(value).strip()
    example = "10.1.0.0/16" if version == 4 else "2001:db8::/32"
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise InvalidValueError(
                parameter, value, f"has host bits set; the subnet is {fixed}."
            ) from None
        network = None
    if network is None or network.version != version or "/" not in text:
        raise InvalidValueError(
            parameter, value, f"is not an IPv{version} subnet in CIDR form (for example {example})."
        )
    return str(network)


def _split(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def _csv(text: str) -> list[str]:
    return [p for p in text.split(",") if p]


# -- records -------------------------------------------------------------------------


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


# -- building the zones ---------------------------------------------------------------


@dataclass
class _Entry:
    record: DnsRecord
    origins: list[str] = field(default_factory=list)
    replaceable: bool = False


class _Builder:
    """The records of every zone: automatic ones added under the cmdlet records' rule
    (a cmdlet record of a type at a name, or a cmdlet CNAME, keeps them out)."""

    def __init__(self, zones: list[str], cmdlet_rows: list[DnsRecordRow]) -> None:
        self.zones = zones
        self.entries: dict[tuple[str, str], dict[str, list[_Entry]]] = {}
        self.cmdlet_types: dict[tuple[str, str], set[str]] = {}
        self.cmdlet_rows = cmdlet_rows
        for row in cmdlet_rows:
            if row.zone_key in zones:
                self.cmdlet_types.setdefault((row.zone_key, row.name_key), set()).add(row.rr_type)

    def zone_of(self, fqdn: str) -> tuple[str, str] | None:
        """(zone, relative name) of the most specific zone holding `fqdn`."""
        name = fqdn.lower().rstrip(".")
        best: str | None = None
        for zone in self.zones:
            if (name == zone or name.endswith("." + zone)) and (
                best is None or len(zone) > len(best)
            ):
                best = zone
        if best is None:
            return None
        return best, "@" if name == best else fqdn.rstrip(".")[: -len(best) - 1]

    def add(
        self,
        zone: str,
        host: str,
        rtype: str,
        data: str,
        origin: str,
        ttl: int = AUTOMATIC_TTL,
        *,
        replaceable: bool = False,
    ) -> None:
        key = (zone, host.lower())
        cmdlet = self.cmdlet_types.get(key, set())
        if rtype in cmdlet or ("CNAME" in cmdlet and rtype not in ("SOA", "NS")):
            return
        bucket = self.entries.setdefault(key, {}).setdefault(rtype, [])
        for entry in bucket:
            if entry.record.data == data:
                if origin not in entry.origins:
                    entry.origins.append(origin)
                entry.replaceable = entry.replaceable and replaceable
                return
        record = DnsRecord(zone, host, rtype, ttl, data, origin)
        bucket.append(_Entry(record, [origin], replaceable))

    def add_fqdn(self, fqdn: str, rtype: str, data: str, origin: str) -> None:
        where = self.zone_of(fqdn)
        if where is not None:
            self.add(where[0], where[1], rtype, data, origin)

    def add_cmdlet_records(self) -> None:
        for row in self.cmdlet_rows:
            if row.zone_key not in self.zones:
                continue
            record = DnsRecord(
                row.zone_key, row.name, row.rr_type, row.ttl, row.data, None, row.when_created
            )
            key = (row.zone_key, row.name_key)
            self.entries.setdefault(key, {}).setdefault(row.rr_type, []).append(_Entry(record))

    def addresses(self, fqdn: str) -> list[str]:
        where = self.zone_of(fqdn)
        if where is None:
            return []
        types = self.entries.get((where[0], where[1].lower()), {})
        return [e.record.data for e in types.get("A", []) + types.get("AAAA", [])]

    def has_address(self, zone: str, host: str) -> bool:
        types = self.entries.get((zone, host.lower()), {})
        return any(types.get(t) for t in ("A", "AAAA", "CNAME"))

    def records(self, zone: str) -> list[DnsRecord]:
        out: list[DnsRecord] = []
        for (z, _), types in self.entries.items():
            if z != zone:
                continue
            for entries in types.values():
                for entry in entries:
                    record = entry.record
                    if entry.origins:
                        record = dataclasses.replace(
                            record,
                            origin=" and ".join(entry.origins),
                            replaceable=entry.replaceable,
                        )
                    out.append(record)
        out.sort(key=_sort_key)
        return out


def _sort_key(record: DnsRecord) -> tuple[object, ...]:
    """The apex first, then names in DNS canonical order (RFC 4034: by labels from
    the right), then by type and data."""
    labels = () if record.host_name == "@" else tuple(reversed(record.host_name.lower().split(".")))
    return (labels, _TYPE_ORDER.get(record.record_type, 99), record.data)


# -- the service -----------------------------------------------------------------------


class DnsService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    # -- the server's settings ---------------------------------------------------------

    def listening_address(self) -> str:
        """The address the DNS server listens on (default 127.77.0.53)."""
        with self.dir.store.read() as session:
            return self._listening_address(session)

    @staticmethod
    def _listening_address(session: Session) -> str:
        row = session.get(DnsServerRow, 1)
        if row is None or not row.listening_ip_address:
            return DEFAULT_LISTENING_ADDRESS
        return row.listening_ip_address

    def set_listening_address(self, address: str | None) -> str:
        """Set-DnsServerSetting -ListeningIPAddress; None restores the default."""
        value = validate.ipv4("ListeningIPAddress", address) if address is not None else None
        with self.dir.store.write() as session:
            cluster = session.scalars(
                select(NlbClusterRow).where(NlbClusterRow.ip_address == value)
            ).first()
            if cluster is not None:
                raise ConflictError(
                    f"{value} is the primary IP of the NLB cluster '{cluster.name}', whose "
                    "balancer owns it; the DNS server needs an address of its own.",
                    conflicting=cluster.name,
                    target=value,
                )
            row = session.get(DnsServerRow, 1)
            if row is None:
                row = DnsServerRow(id=1)
                session.add(row)
            row.listening_ip_address = value
            return self._listening_address(session)

    # -- zones ---------------------------------------------------------------------------

    @staticmethod
    def _zone_names(session: Session) -> tuple[list[str], list[DnsZoneRow]]:
        accepted = [
            row.domain.lower()
            for row in session.scalars(select(AcceptedDomainRow).order_by(AcceptedDomainRow.id))
        ]
        added = list(session.scalars(select(DnsZoneRow).order_by(DnsZoneRow.id)))
        return accepted, added

    def zones(self, name: str | None = None) -> list[DnsZone]:
        """Get-DnsServerZone: the accepted domains' zones, then those added by cmdlet."""
        with self.dir.store.read() as session:
            accepted, added = self._zone_names(session)
        zones = [DnsZone(d, "Primary", True, None, True, None) for d in accepted] + [
            DnsZone(
                row.name_key,
                "Primary",
                not row.zone_file,
                row.zone_file or None,
                False,
                row.when_created,
            )
            for row in added
            if row.name_key not in accepted
        ]
        if name is None:
            return zones
        key = str(name).strip().lower().rstrip(".")
        found = [z for z in zones if z.zone_name == key]
        if not found:
            raise NotFoundError("DNS zone", str(name))
        return found

    def zone(self, name: str) -> DnsZone:
        return self.zones(name)[0]

    def _zone_key(self, session: Session, name: str) -> str:
        accepted, added = self._zone_names(session)
        key = str(name).strip().lower().rstrip(".")
        if key in accepted or any(row.name_key == key for row in added):
            return key
        raise NotFoundError("DNS zone", str(name))

    def add_zone(self, name: str, zone_file: str | None = None) -> DnsZone:
        """Add-DnsServerPrimaryZone. -ZoneFile is kept and shown (the zone lives in the
        directory either way)."""

        key = zone_name("Name", name)
        file_name = validate.display_name("ZoneFile", zone_file, 255) if zone_file else ""
        with self.dir.store.write() as session:
            accepted, added = self._zone_names(session)
            if key in accepted:
                raise ConflictError(
                    f"The zone {key} already exists: it is the zone of the accepted domain {key}.",
                    conflicting=key,
                    target=key,
                )
            if any(row.name_key == key for row in added):
                raise ConflictError(f"The zone {key} already exists.", conflicting=key, target=key)
            row = DnsZoneRow(
                guid=new_guid(),
                name=key,
                name_key=key,
                zone_file=file_name,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            return DnsZone(
                key, "Primary", not file_name, file_name or None, False, row.when_created
            )

    def remove_zone(self, name: str) -> DnsZone:
        """Remove-DnsServerZone: a zone added by cmdlet, with its records."""
        key = str(name).strip().lower().rstrip(".")
        with self.dir.store.write() as session:
            accepted, added = self._zone_names(session)
            if key in accepted:
                raise InvalidOperationError(
                    f"The zone {key} is the zone of the accepted domain {key}; it exists as "
                    "long as the accepted domain does and can't be removed.",
                    target=key,
                )
            row = next((r for r in added if r.name_key == key), None)
            if row is None:
                raise NotFoundError("DNS zone", str(name))
            zone = DnsZone(
                key, "Primary", not row.zone_file, row.zone_file or None, False, row.when_created
            )
            session.execute(delete(DnsRecordRow).where(DnsRecordRow.zone_key == key))
            session.delete(row)
            return zone

    # -- contents ----------------------------------------------------------------------

    def contents(self) -> DnsContents:
        """Every zone with its records, the hidden names and the inside networks, read
        in one transaction (the topology version first)."""
        with self.dir.store.read() as session:
            return self._contents(session)

    def _contents(self, session: Session) -> DnsContents:
        version = session.scalar(select(TopologyRow.version).where(TopologyRow.id == 1)) or 0
        serial = int(version) % SERIAL_MODULUS
        listen = self._listening_address(session)
        accepted, added = self._zone_names(session)
        zones = accepted + [r.name_key for r in added if r.name_key not in accepted]
        cmdlet_rows = list(session.scalars(select(DnsRecordRow).order_by(DnsRecordRow.id)))
        servers = list(session.scalars(select(ServerRow).order_by(ServerRow.install_order)))
        arrays = list(
            session.scalars(select(ClientAccessArrayRow).order_by(ClientAccessArrayRow.id))
        )
        clusters = list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.id)))
        subnets = list(session.scalars(select(SubnetRow).order_by(SubnetRow.id)))
        client_subnets = list(
            session.scalars(select(DnsClientSubnetRow).order_by(DnsClientSubnetRow.id))
        )
        policies = [
            self._policy(row)
            for row in session.scalars(
                select(DnsQueryPolicyRow).order_by(
                    DnsQueryPolicyRow.processing_order, DnsQueryPolicyRow.id
                )
            )
        ]

        b = _Builder(zones, cmdlet_rows)
        hidden: set[str] = set()
        refresh, retry, expire, minimum = SOA_TIMERS
        for zone in zones:
            ns = f"{NAME_SERVER}.{zone}."
            b.add(
                zone,
                "@",
                "SOA",
                f"{ns} {HOSTMASTER}.{zone}. {serial} {refresh} {retry} {expire} {minimum}",
                f"zone '{zone}'",
                DEFAULT_TTL,
            )
            b.add(zone, "@", "NS", ns, f"zone '{zone}'", DEFAULT_TTL)
            b.add_fqdn(ns, "A", listen, "the DNS server's ListeningIPAddress")
            parent = _Builder([z for z in zones if z != zone], []).zone_of(zone)
            if parent is not None:  # a zone inside another: delegated from it
                b.add(parent[0], parent[1], "NS", ns, f"the delegation of zone '{zone}'")
                glue = f"{NAME_SERVER}.{parent[1]}"
                b.add(parent[0], glue, "A", listen, f"the delegation of zone '{zone}'")
        for server in servers:
            b.add_fqdn(server.fqdn, "A", server.ip_address, f"server '{server.name}'")
            hidden.add(server.fqdn.lower())
        for cluster in clusters:
            b.add_fqdn(cluster.name, "A", cluster.ip_address, f"NLB cluster '{cluster.name}'")
            hidden.add(cluster.name.lower())
        for array in arrays:
            hidden.add(array.fqdn_key)
            front = next(
                (c for c in clusters if c.array_id == array.id),
                next((c for c in clusters if c.name_key == array.fqdn_key), None),
            )
            if front is not None:
                b.add_fqdn(
                    array.fqdn,
                    "A",
                    front.ip_address,
                    f"client access array '{array.name}' (NLB cluster '{front.name}')",
                )
        b.add_cmdlet_records()
        public = next(
            ((array, addresses) for array in arrays if (addresses := b.addresses(array.fqdn))),
            None,
        )
        for zone in accepted:
            if public is not None:
                array, addresses = public
                for host in (AUTODISCOVER, AUTOCONFIG, MAIL):
                    for address in addresses:
                        rtype = "AAAA" if ":" in address else "A"
                        b.add(
                            zone,
                            host,
                            rtype,
                            address,
                            f"client access array '{array.name}'",
                            replaceable=True,
                        )
            if b.has_address(zone, MAIL):
                b.add(
                    zone,
                    "@",
                    "MX",
                    f"{MX_PREFERENCE} {MAIL}.{zone}.",
                    f"accepted domain '{zone}'",
                    replaceable=True,
                )
            for service, port, target in SRV_SERVICES:
                if b.has_address(zone, target):
                    b.add(
                        zone,
                        service,
                        "SRV",
                        f"0 1 {port} {target}.{zone}.",
                        f"accepted domain '{zone}'",
                        replaceable=True,
                    )

        contents = []
        for zone in zones:
            records = b.records(zone)
            names = {r.host_name.lower() for r in records} - {"@", NAME_SERVER}
            zone_hidden = {
                n
                for n in names
                if f"{n}.{zone}" in hidden
                or any(p.is_enabled and p.matches(f"{n}.{zone}") for p in policies)
            }
            contents.append(
                ZoneContents(zone, zone in accepted, tuple(records), frozenset(zone_hidden))
            )

        inside: list[IPNetwork] = []
        for text in [s.cidr for s in subnets] + [
            cidr
            for row in client_subnets
            for cidr in _csv(row.ipv4_subnets) + _csv(row.ipv6_subnets)
        ]:
            network = ipaddress.ip_network(text, strict=False)
            if network not in inside:
                inside.append(network)
        inside += [n for n in LOOPBACK_NETWORKS if n not in inside]
        return DnsContents(serial, listen, tuple(contents), tuple(inside))

    # -- records -----------------------------------------------------------------------

    def records(
        self, zone: str, name: str | None = None, rr_type: str | None = None
    ) -> list[DnsRecord]:
        """Get-DnsServerResourceRecord: the zone's records as served (automatic and
        added by cmdlet), optionally only those at `name` and of `rr_type`."""
        with self.dir.store.read() as session:
            key = self._zone_key(session, zone)
            contents = self._contents(session)
            accepted, added = self._zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host = self._owner(key, name, zones, "Name")[0] if name is not None else None
        wanted_type = _record_type("RRType", rr_type, SHOWN_TYPES) if rr_type is not None else None
        return [
            r
            for r in contents.zone(key).records
            if (host is None or r.host_name.lower() == host.lower())
            and (wanted_type is None or r.record_type == wanted_type)
        ]

    @staticmethod
    def _owner(
        zone: str, name: str | None, zones: list[str], parameter: str, *, adding: bool = False
    ) -> tuple[str, str]:
        """(relative name or "@", FQDN) of a record's name in `zone`. When `adding`, a name
        that belongs to a zone inside `zone` is refused. "@" (or
        "." as Windows also writes it) is the zone itself; a name ending in a dot is
        absolute; one ending in the zone's name is taken as the FQDN
        it already is; any other is relative to the zone."""
        text = str(name if name is not None else "").strip()
        if text in ("", "@", "."):
            return "@", zone
        if text.endswith("."):
            absolute = text[:-1]
        elif text.lower() == zone or text.lower().endswith("." + zone):
            absolute = text
        else:
            absolute = f"{text}.{zone}"
        lower = absolute.lower()
        if lower != zone and not lower.endswith("." + zone):
            raise InvalidValueError(
                parameter, name, f"is not in the zone {zone}: the name must end in {zone}."
            )
        if lower == zone:
            return "@", zone
        relative = absolute[: -len(zone) - 1]
        if len(absolute) > 253:
            raise InvalidValueError(parameter, name, "is longer than 253 characters.")
        labels = relative.split(".")
        for i, label in enumerate(labels):
            if label == "*" and i == 0:
                continue
            if not _LABEL.fullmatch(label):
                raise InvalidValueError(
                    parameter,
                    name,
                    f"is not a valid DNS name: label '{label}' must be 1 to 63 letters, digits, "
                    "hyphens or underscores, not starting or ending with a hyphen.",
                )
        inner = [
            z
            for z in zones
            if z != zone and z.endswith("." + zone) and (lower == z or lower.endswith("." + z))
        ]
        if inner and adding:
            raise InvalidValueError(
                parameter,
                name,
                f"belongs to the zone {max(inner, key=len)}, not to {zone}; add it there.",
            )
        return relative, absolute

    def add_record(
        self,
        zone: str,
        name: str | None,
        rr_type: str,
        data: str,
        ttl: object = None,
    ) -> DnsRecord:
        """Add a resource record (A, AAAA, CNAME, MX, SRV, TXT) in master-file form (for
        MX "10 mail.lab.net", SRV "0 100 443 host.lab.net"). RFC 1034's rule holds: a
        CNAME has its name to itself (no other data, no second CNAME, not at the apex),
        and adding the same record twice is refused."""

        rtype = _record_type("RRType", rr_type, RECORD_TYPES)
        seconds = parse_ttl("TimeToLive", ttl) if ttl is not None else DEFAULT_TTL
        text = _record_data(rtype, data)
        with self.dir.store.write() as session:
            key = self._zone_key(session, zone)
            accepted, added = self._zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host, fqdn = self._owner(key, name, zones, "Name", adding=True)
            if host == "@" and rtype == "CNAME":
                raise InvalidValueError(
                    "Name",
                    name or "@",
                    f"is the zone's apex ({key}), which has the zone's SOA and NS records; a "
                    "CNAME can't share a name with other data (RFC 1034).",
                )
            self._check_clash(session, key, host, fqdn, rtype, text)
            row = DnsRecordRow(
                zone_key=key,
                name=host,
                name_key=host.lower(),
                rr_type=rtype,
                data=text,
                ttl=seconds,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            return DnsRecord(key, host, rtype, seconds, text, None, row.when_created)

    def _check_clash(
        self, session: Session, zone: str, host: str, fqdn: str, rtype: str, text: str
    ) -> None:
        rows = list(
            session.scalars(
                select(DnsRecordRow).where(
                    DnsRecordRow.zone_key == zone, DnsRecordRow.name_key == host.lower()
                )
            )
        )
        for row in rows:
            if row.rr_type == rtype and row.data == text:
                raise ConflictError(
                    f"The {rtype} record {fqdn} {text} already exists in zone {zone}.",
                    conflicting=f"{fqdn} {rtype} {text}",
                    target=fqdn,
                )
            if rtype == "CNAME" or row.rr_type == "CNAME":
                raise ConflictError(
                    f"{fqdn} already has {_a(row.rr_type)} record ({row.data}); a CNAME can't "
                    "share its name with other data (RFC 1034): remove that record first.",
                    conflicting=f"{fqdn} {row.rr_type} {row.data}",
                    target=fqdn,
                )
        if rtype == "CNAME":
            served = self._contents(session).zone(zone)
            automatic = [
                r
                for r in served.records
                if r.host_name.lower() == host.lower() and not r.replaceable
            ]
            if automatic:
                first = automatic[0]
                raise ConflictError(
                    f"{fqdn} already has {_a(first.record_type)} record ({first.data}) made "
                    f"from {first.origin}; a CNAME can't share its name with other data "
                    "(RFC 1034).",
                    conflicting=f"{fqdn} {first.record_type} {first.data}",
                    target=fqdn,
                )

    def remove_records(
        self, zone: str, name: str | None, rr_type: str, data: str | None = None
    ) -> list[DnsRecord]:
        """Remove-DnsServerResourceRecord: the cmdlet records of `rr_type` at `name` (only
        the one with `data` if given). An automatic record can't be removed: the error
        names the directory object it comes from."""
        rtype = _record_type("RRType", rr_type, SHOWN_TYPES)
        with self.dir.store.write() as session:
            key = self._zone_key(session, zone)
            accepted, added = self._zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host, fqdn = self._owner(key, name, zones, "Name")
            wanted = (
                _record_data(rtype, data) if data is not None and rtype in RECORD_TYPES else data
            )
            rows = [
                row
                for row in session.scalars(
                    select(DnsRecordRow)
                    .where(
                        DnsRecordRow.zone_key == key,
                        DnsRecordRow.name_key == host.lower(),
                        DnsRecordRow.rr_type == rtype,
                    )
                    .order_by(DnsRecordRow.id)
                )
                if wanted is None or row.data == wanted
            ]
            if not rows:
                served = self._contents(session).zone(key)
                automatic = [
                    r
                    for r in served.records
                    if r.host_name.lower() == host.lower()
                    and r.record_type == rtype
                    and (wanted is None or r.data == wanted)
                ]
                if automatic:
                    first = automatic[0]
                    raise InvalidOperationError(
                        f"The {rtype} record {fqdn} {first.data} is made from {first.origin} "
                        "in the directory, not added by cmdlet; change or remove that object "
                        "instead.",
                        target=fqdn,
                    )
                what = f"{rtype} record {fqdn}" + (f" {data}" if data is not None else "")
                raise NotFoundError("DNS resource record", what)
            removed = [
                DnsRecord(key, r.name, r.rr_type, r.ttl, r.data, None, r.when_created) for r in rows
            ]
            for row in rows:
                session.delete(row)
            return removed

    # -- client subnets and query resolution policies ---------------------------------

    @staticmethod
    def _client_subnet(row: DnsClientSubnetRow) -> DnsClientSubnet:
        return DnsClientSubnet(
            row.name, tuple(_csv(row.ipv4_subnets)), tuple(_csv(row.ipv6_subnets))
        )

    def add_client_subnet(
        self,
        name: str,
        ipv4: Iterable[str] | str | None = None,
        ipv6: Iterable[str] | str | None = None,
    ) -> DnsClientSubnet:
        """Add-DnsServerClientSubnet: networks whose clients see the inside view."""
        label = validate.display_name("Name", name)
        v4 = [_network("IPv4Subnet", s, 4) for s in _split(ipv4)]
        v6 = [_network("IPv6Subnet", s, 6) for s in _split(ipv6)]
        if not v4 and not v6:
            raise InvalidValueError(
                "IPv4Subnet", "", "is missing: give -IPv4Subnet or -IPv6Subnet (or both)."
            )
        with self.dir.store.write() as session:
            other = session.scalars(
                select(DnsClientSubnetRow).where(DnsClientSubnetRow.name_key == label.lower())
            ).first()
            if other is not None:
                raise ConflictError(
                    f"The client subnet {other.name} already exists.",
                    conflicting=other.name,
                    target=label,
                )
            row = DnsClientSubnetRow(
                name=label,
                name_key=label.lower(),
                ipv4_subnets=",".join(dict.fromkeys(v4)),
                ipv6_subnets=",".join(dict.fromkeys(v6)),
            )
            session.add(row)
            return self._client_subnet(row)

    def client_subnets(self, name: str | None = None) -> list[DnsClientSubnet]:
        with self.dir.store.read() as session:
            stmt = select(DnsClientSubnetRow).order_by(DnsClientSubnetRow.id)
            if name is not None:
                stmt = stmt.where(DnsClientSubnetRow.name_key == str(name).strip().lower())
            found = [self._client_subnet(row) for row in session.scalars(stmt)]
        if name is not None and not found:
            raise NotFoundError("client subnet", str(name))
        return found

    def remove_client_subnet(self, name: str) -> DnsClientSubnet:
        with self.dir.store.write() as session:
            row = session.scalars(
                select(DnsClientSubnetRow).where(
                    DnsClientSubnetRow.name_key == str(name).strip().lower()
                )
            ).first()
            if row is None:
                raise NotFoundError("client subnet", str(name))
            subnet = self._client_subnet(row)
            session.delete(row)
            return subnet

    @staticmethod
    def _policy(row: DnsQueryPolicyRow) -> DnsQueryPolicy:
        return DnsQueryPolicy(
            row.name, row.action, tuple(_csv(row.fqdn)), row.processing_order, row.is_enabled
        )

    def add_query_policy(
        self,
        name: str,
        fqdn: str,
        action: str = "DENY",
        processing_order: int | None = None,
        enabled: bool = True,
    ) -> DnsQueryPolicy:
        """Add-DnsServerQueryResolutionPolicy, reduced: -Action DENY for the names of
        -Fqdn ("EQ,name,*.name"), for every client outside the inside networks."""
        label = validate.display_name("Name", name)
        verb = str(action).strip().upper()
        if verb not in POLICY_ACTIONS:
            raise InvalidValueError(
                "Action",
                action,
                "is not supported: casarray's policies only DENY names to clients outside "
                "the inside networks (site subnets, client subnets, loopback).",
            )
        patterns = _fqdn_criterion(fqdn)
        with self.dir.store.write() as session:
            rows = list(session.scalars(select(DnsQueryPolicyRow)))
            other = next((r for r in rows if r.name_key == label.lower()), None)
            if other is not None:
                raise ConflictError(
                    f"The query resolution policy {other.name} already exists.",
                    conflicting=other.name,
                    target=label,
                )
            if processing_order is None:
                order = max((r.processing_order for r in rows), default=0) + 1
            else:
                order = int(processing_order)
                if order < 1:
                    raise InvalidValueError(
                        "ProcessingOrder", processing_order, "is not a number from 1 up."
                    )
            row = DnsQueryPolicyRow(
                name=label,
                name_key=label.lower(),
                action=verb,
                fqdn=",".join(patterns),
                processing_order=order,
                is_enabled=bool(enabled),
            )
            session.add(row)
            return self._policy(row)

    def query_policies(self, name: str | None = None) -> list[DnsQueryPolicy]:
        with self.dir.store.read() as session:
            stmt = select(DnsQueryPolicyRow).order_by(
                DnsQueryPolicyRow.processing_order, DnsQueryPolicyRow.id
            )
            if name is not None:
                stmt = stmt.where(DnsQueryPolicyRow.name_key == str(name).strip().lower())
            found = [self._policy(row) for row in session.scalars(stmt)]
        if name is not None and not found:
            raise NotFoundError("query resolution policy", str(name))
        return found

    def remove_query_policy(self, name: str) -> DnsQueryPolicy:
        with self.dir.store.write() as session:
            row = session.scalars(
                select(DnsQueryPolicyRow).where(
                    DnsQueryPolicyRow.name_key == str(name).strip().lower()
                )
            ).first()
            if row is None:
                raise NotFoundError("query resolution policy", str(name))
            policy = self._policy(row)
            session.delete(row)
            return policy


# -- parsing ---------------------------------------------------------------------------


def _a(rtype: str) -> str:
    """The article of a record type read as letters: "an A", "an MX", "a CNAME"."""
    return f"an {rtype}" if rtype[0] in "AEFHILMNORSX" else f"a {rtype}"


def _record_type(parameter: str, value: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().upper()
    if text not in allowed:
        raise InvalidValueError(parameter, value, f"is not one of {', '.join(allowed)}.")
    return text


def _record_data(rtype: str, data: str | None) -> str:
    """The record data in canonical master-file form (names absolute), or an error
    saying what is wrong."""
    text = str(data if data is not None else "").strip()
    if rtype == "A":
        return validate.ipv4("IPv4Address", text)
    if rtype == "AAAA":
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise InvalidValueError("IPv6Address", data, "is not an IPv6 address.") from None
    if rtype == "CNAME":
        return _host("HostNameAlias", text)
    if rtype == "MX":
        parts = text.split()
        if len(parts) != 2:
            raise InvalidValueError("MailExchange", data, "is not 'preference host'.")
        return f"{_number('Preference', parts[0])} {_host('MailExchange', parts[1])}"
    if rtype == "SRV":
        parts = text.split()
        if len(parts) != 4:
            raise InvalidValueError("DomainName", data, "is not 'priority weight port host'.")
        numbers = [
            _number(p, v) for p, v in zip(("Priority", "Weight", "Port"), parts, strict=False)
        ]
        return " ".join(str(n) for n in numbers) + " " + _host("DomainName", parts[3])
    if rtype == "TXT":
        import dns.exception
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype

        if not text:
            raise InvalidValueError("DescriptiveText", data, "is empty.")
        try:
            chunks = [text[i : i + 255] for i in range(0, len(text), 255)]
            quoted = " ".join(
                '"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
            )
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, quoted)
        except (dns.exception.DNSException, UnicodeError):
            raise InvalidValueError("DescriptiveText", data, "is not valid TXT data.") from None
        return rdata.to_text()
    raise AssertionError(rtype)


def _number(parameter: str, value: str, high: int = 65535) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidValueError(parameter, value, f"is not a number from 0 to {high}.") from None
    if not 0 <= number <= high:
        raise InvalidValueError(parameter, value, f"is not a number from 0 to {high}.")
    return number


def _fqdn_criterion(value: str) -> list[str]:
    """The names of a policy's -Fqdn criterion "EQ,name[,name...]"."""
    parts = [p.strip() for p in str(value or "").split(",")]
    if len(parts) < 2 or parts[0].upper() != "EQ" or not all(parts[1:]):
        raise InvalidValueError(
            "Fqdn",
            value,
            'is not an FQDN criterion of the form "EQ,name[,name...]" (a name may start '
            'with "*." for every name below it, e.g. "EQ,bj-cas.lab.net,*.int.lab.net").',
        )
    names = []
    for part in parts[1:]:
        wildcard = part.startswith("*.")
        name = validate.fqdn("Fqdn", part[2:] if wildcard else part).lower()
        names.append(f"*.{name}" if wildcard else name)
    return list(dict.fromkeys(names))
