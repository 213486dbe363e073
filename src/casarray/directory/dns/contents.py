"""What the DNS server serves: every zone built from the topology, in one read
(`read_contents`).

Records.
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
  record (the cluster's, or one added by cmdlet); smtp -> every Hub Transport server's
  address (the servers that take the domain's mail); MX 10 -> smtp.<zone> (mail.<zone>
  when there is no Hub Transport server), and the RFC 6186 SRV records _imap._tcp
  (143), _imaps._tcp (993) -> mail.<zone>, _submission._tcp (587) -> the MX's host, each
  when its target has an address; _autodiscover._tcp (443) -> autodiscover.<zone> when
  that has one.
- Hub Transport behind NLB. A transport cluster is an NLB cluster that follows no array
  and whose nodes are all Hub Transport servers, with a port rule (not Disabled, TCP)
  covering 25. Its name is then an MX target (MX 10 -> the cluster, one record per
  cluster), and the _submission._tcp target when a rule covers 587; its name is public
  (not hidden: outside MTAs must resolve it); smtp.<zone> gets its IP in place of its
  nodes' addresses. smtp.<zone> stays an MX target (and the submission target) only
  while some Hub Transport server is behind no such cluster.
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
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.dns.objects import DnsContents, DnsRecord, ZoneContents
from casarray.directory.dns.policies import query_policy
from casarray.directory.dns.settings import listening_address
from casarray.directory.dns.values import (
    AUTOCONFIG,
    AUTODISCOVER,
    AUTOMATIC_TTL,
    DEFAULT_TTL,
    HOSTMASTER,
    LOOPBACK_NETWORKS,
    MAIL,
    MX_PREFERENCE,
    NAME_SERVER,
    SERIAL_MODULUS,
    SMTP,
    SOA_TIMERS,
    SRV_SERVICES,
    SUBMISSION,
    TYPE_ORDER,
    IPNetwork,
    csv_items,
)
from casarray.directory.dns.zones import zone_names
from casarray.directory.schema import (
    ClientAccessArrayRow,
    DnsClientSubnetRow,
    DnsQueryPolicyRow,
    DnsRecordRow,
    NlbClusterRow,
    NlbNodeRow,
    NlbPortRuleRow,
    ServerRow,
    SubnetRow,
    TopologyRow,
)


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
    return (labels, TYPE_ORDER.get(record.record_type, 99), record.data)


@dataclass(frozen=True)
class _TransportCluster:
    """An NLB cluster in front of Hub Transport servers (the module docstring)."""

    row: NlbClusterRow
    nodes: frozenset[int]  # server ids
    submission: bool  # a rule covers 587 too


def _transport_clusters(
    session: Session, clusters: list[NlbClusterRow], servers: list[ServerRow]
) -> list[_TransportCluster]:
    transport = {server.id for server in servers if server.hub_transport}
    nodes: dict[int, set[int]] = {}
    for node in session.scalars(select(NlbNodeRow)):
        nodes.setdefault(node.cluster_id, set()).add(node.server_id)
    covered: dict[int, set[int]] = {}
    for rule in session.scalars(select(NlbPortRuleRow)):
        if rule.mode != "Disabled" and rule.protocol in ("Tcp", "Both"):
            ports = {p for p in (25, 587) if rule.start_port <= p <= rule.end_port}
            covered.setdefault(rule.cluster_id, set()).update(ports)
    found = []
    for cluster in clusters:
        members = nodes.get(cluster.id, set())
        ports = covered.get(cluster.id, set())
        if cluster.array_id is None and members and members <= transport and 25 in ports:
            found.append(_TransportCluster(cluster, frozenset(members), 587 in ports))
    return found


def read_contents(session: Session) -> DnsContents:
    """Every zone with its records, the hidden names and the inside networks, as the
    module docstring says, read in `session` (the topology version first)."""
    version = session.scalar(select(TopologyRow.version).where(TopologyRow.id == 1)) or 0
    serial = int(version) % SERIAL_MODULUS
    listen = listening_address(session)
    accepted, added = zone_names(session)
    zones = accepted + [r.name_key for r in added if r.name_key not in accepted]
    cmdlet_rows = list(session.scalars(select(DnsRecordRow).order_by(DnsRecordRow.id)))
    servers = list(session.scalars(select(ServerRow).order_by(ServerRow.install_order)))
    arrays = list(session.scalars(select(ClientAccessArrayRow).order_by(ClientAccessArrayRow.id)))
    clusters = list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.id)))
    subnets = list(session.scalars(select(SubnetRow).order_by(SubnetRow.id)))
    client_subnets = list(
        session.scalars(select(DnsClientSubnetRow).order_by(DnsClientSubnetRow.id))
    )
    policies = [
        query_policy(row)
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
    hubs = _transport_clusters(session, clusters, servers)
    public_clusters = {hub.row.id for hub in hubs}
    for cluster in clusters:
        b.add_fqdn(cluster.name, "A", cluster.ip_address, f"NLB cluster '{cluster.name}'")
        if cluster.id not in public_clusters:
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
    behind = {node for hub in hubs for node in hub.nodes}
    transport = [server for server in servers if server.hub_transport and server.id not in behind]
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
        for server in transport:
            b.add(
                zone,
                SMTP,
                "AAAA" if ":" in server.ip_address else "A",
                server.ip_address,
                f"Hub Transport server '{server.name}'",
                replaceable=True,
            )
        for hub in hubs:
            b.add(
                zone,
                SMTP,
                "A",
                hub.row.ip_address,
                f"NLB cluster '{hub.row.name}' of Hub Transport servers",
                replaceable=True,
            )
        exchanger = SMTP if b.has_address(zone, SMTP) else MAIL
        for hub in hubs:  # the cluster takes the domain's mail, and submissions
            if not b.addresses(hub.row.name):
                continue
            origin = f"accepted domain '{zone}' (NLB cluster '{hub.row.name}')"
            target = f"{hub.row.name.lower()}."
            b.add(zone, "@", "MX", f"{MX_PREFERENCE} {target}", origin, replaceable=True)
            if hub.submission:
                b.add(zone, SUBMISSION, "SRV", f"0 1 587 {target}", origin, replaceable=True)
        if b.has_address(zone, exchanger) and (transport or not hubs):
            b.add(
                zone,
                "@",
                "MX",
                f"{MX_PREFERENCE} {exchanger}.{zone}.",
                f"accepted domain '{zone}'",
                replaceable=True,
            )
        for service, port, target in SRV_SERVICES:
            if service == SUBMISSION:
                if hubs and not transport:
                    continue  # every Hub Transport server is behind a cluster
                target = exchanger
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
        for cidr in csv_items(row.ipv4_subnets) + csv_items(row.ipv6_subnets)
    ]:
        network = ipaddress.ip_network(text, strict=False)
        if network not in inside:
            inside.append(network)
    inside += [n for n in LOOPBACK_NETWORKS if n not in inside]
    return DnsContents(serial, listen, tuple(contents), tuple(inside))
