"""Test-ClientAccessArray: casarray's Best Practices Analyzer for client access arrays.

`analyze(directory, array)` checks every site (or the site of one array) and returns
one `Finding` per problem: its severity (Error, Warning, Info), the site and array,
what is wrong, and the command that fixes it, as the administrator would type it.
Per site, errors come first, then warnings, then Info; within each, the checks are in
this order:

- `NoArray`: a site has Client Access servers but no client access array. Recommended
  even with one server (a database made now gets the array's name, so a second server
  later changes nothing for clients): Info with one server, Warning with more.
- `NoDnsRecord`: the array FQDN has no address in the zones inside clients see (no
  zone holds it, or no NLB cluster serves the array and no record was added).
- `NotBalancerAddress`: the array FQDN resolves (inside; through CNAMEs) to an address
  that is not the IP of an NLB cluster: clients would bypass the balancer.
- `BalancerMissingMembers` (Warning) and `BalancerExtraNodes` (Error): the nodes of the
  NLB cluster that fronts the array (linked to it, else named by its FQDN, else the one
  its address points at) are not exactly the array's members.
- `MemberInMaintenance` (Warning): a member has ServerWideOffline or a client access
  component Inactive (Set-ServerComponentState), so balancers send it no clients.
- `MemberUnhealthy` (Error): a member the running balancer marks Unhealthy, or whose
  running server fails its health pages or IMAP greeting. `MemberHealthUnknown`
  (Info): neither a balancer of the array nor any member's server runs on this
  machine, so health could not be checked.
- `CertificateMissing` (Error): on a member, no usable certificate enabled for IMAP or
  for IIS covers the array FQDN (wildcards count; `Directory.certificates.test`).
- `EwsUrlNotCovered` (Error): the host of a member's EWS virtual directory URL
  (InternalUrl or ExternalUrl) is covered by no usable certificate enabled for IIS on
  that member: EWS clients sent there by Autodiscover get a certificate error.
- `DatabasesNotOnArray` (Warning): mailbox databases of the array's site whose
  RpcClientAccessServer is not the array FQDN (listed).
- `ResolvableOutside` (Warning): the array FQDN resolves for clients outside the
  organization's networks (the `outside` view of the zones). Microsoft's advice: the
  array name is internal only, or Outlook Anywhere clients outside try it directly.
- `SameAsPublicName` (Warning): the array FQDN is one of the public names,
  autodiscover.<accepted domain> or the web mail name. The directory has no OWA
  ExternalUrl setting; the web mail name is mail.<accepted domain>, the name casarray's
  DNS publishes for web mail, MX and IMAP (and autoconfig.<domain> counts as an
  Autodiscover name).

What is live is passed in, so that the analysis is a function of what it is given:
`zones` (a `casarray.dns.zones.ZoneSet`; default built from the directory) and
`health`, a callable giving each member's `MemberHealth` (default
`member_health.live_health()`: the running balancer's status file and the running
servers' health pages, found through their status files in $CASARRAY_HOME/run).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.name
import dns.rdatatype
import dns.zone

from casarray.diagnostics.member_health import (
    UNHEALTHY,
    UNKNOWN,
    HealthProvider,
    MemberHealth,
    live_health,
)
from casarray.directory.components import (
    CLIENT_ACCESS_COMPONENTS,
    INACTIVE,
    SERVER_WIDE_OFFLINE,
)
from casarray.directory.objects import ClientAccessArray, MailboxDatabase, ServerRole
from casarray.pki.names import unique as unique_names

if TYPE_CHECKING:
    from casarray.directory.nlb.objects import NlbCluster
    from casarray.directory.objects import Server, Site
    from casarray.directory.service import Directory
    from casarray.dns.zones import ZoneSet

ERROR, WARNING, INFO = "Error", "Warning", "Info"
SEVERITIES = (ERROR, WARNING, INFO)

NO_ARRAY = "NoArray"
NO_DNS_RECORD = "NoDnsRecord"
NOT_BALANCER_ADDRESS = "NotBalancerAddress"
BALANCER_MISSING_MEMBERS = "BalancerMissingMembers"
BALANCER_EXTRA_NODES = "BalancerExtraNodes"
MEMBER_IN_MAINTENANCE = "MemberInMaintenance"
MEMBER_UNHEALTHY = "MemberUnhealthy"
MEMBER_HEALTH_UNKNOWN = "MemberHealthUnknown"
CERTIFICATE_MISSING = "CertificateMissing"
EWS_URL_NOT_COVERED = "EwsUrlNotCovered"
DATABASES_NOT_ON_ARRAY = "DatabasesNotOnArray"
RESOLVABLE_OUTSIDE = "ResolvableOutside"
SAME_AS_PUBLIC_NAME = "SameAsPublicName"

CHECKS = (
    NO_ARRAY,
    NO_DNS_RECORD,
    NOT_BALANCER_ADDRESS,
    BALANCER_MISSING_MEMBERS,
    BALANCER_EXTRA_NODES,
    MEMBER_IN_MAINTENANCE,
    MEMBER_UNHEALTHY,
    MEMBER_HEALTH_UNKNOWN,
    CERTIFICATE_MISSING,
    DATABASES_NOT_ON_ARRAY,
    RESOLVABLE_OUTSIDE,
    SAME_AS_PUBLIC_NAME,
)

# The public names (per accepted domain) an array FQDN must not be.
PUBLIC_NAMES = ("autodiscover", "autoconfig", "mail")
CERTIFICATE_SERVICES = ("IMAP", "IIS")
LISTED = 10  # databases named in a finding's text; the rest are counted
MAX_CNAME_HOPS = 8


@dataclass(frozen=True)
class Finding:
    """One problem Test-ClientAccessArray found."""

    severity: str  # Error, Warning or Info
    check: str  # one of CHECKS
    site: str
    array: str | None  # the array's FQDN; None for a site without one
    target: str  # what the finding is about: a site, a name, a server, databases
    message: str
    fix: str  # the command(s) that fix it, as typed in the shell ("; " between two)


@dataclass(frozen=True)
class Resolution:
    """What a name resolves to in one view of the zones."""

    zone: str | None  # the zone that holds the name (None: no zone does)
    at_apex: bool  # the name is that zone's apex
    record_type: str | None  # the type of the record at the name itself: A, AAAA, CNAME
    addresses: tuple[str, ...]  # after following CNAMEs within the zones

    @property
    def exists(self) -> bool:
        return self.record_type is not None


# -- DNS ------------------------------------------------------------------------------


def resolve(zones: Iterable[dns.zone.Zone], fqdn: str) -> Resolution:
    """Resolve `fqdn` (A, AAAA, following CNAMEs) in `zones`, one view of a ZoneSet."""
    zone_list = list(zones)

    def holder(name: dns.name.Name) -> dns.zone.Zone | None:
        best: dns.zone.Zone | None = None
        for zone in zone_list:
            assert zone.origin is not None
            if name.is_subdomain(zone.origin) and (
                best is None or len(zone.origin) > len(best.origin or ())
            ):
                best = zone
        return best

    name = dns.name.from_text(fqdn)
    zone = holder(name)
    if zone is None:
        return Resolution(None, False, None, ())
    assert zone.origin is not None
    zone_name, at_apex = zone.origin.to_text(omit_final_dot=True), name == zone.origin
    record_type: str | None = None
    addresses: list[str] = []
    current: dns.name.Name = name
    for _hop in range(MAX_CNAME_HOPS):
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdataset = zone.get_rdataset(current, rdtype)
            if rdataset is not None:
                record_type = record_type or dns.rdatatype.to_text(rdtype)
                addresses.extend(rdata.address for rdata in rdataset)
        if addresses:
            break
        cname = zone.get_rdataset(current, dns.rdatatype.CNAME)
        if cname is None:
            break
        record_type = record_type or "CNAME"
        current = next(iter(cname)).target
        next_zone = holder(current)
        if next_zone is None:
            break
        zone = next_zone
    return Resolution(zone_name, at_apex, record_type, tuple(addresses))


def _relative(fqdn: str, zone: str) -> str:
    name = fqdn.lower().rstrip(".")
    return "@" if name == zone else name[: -len(zone) - 1]


# -- the analysis -----------------------------------------------------------------------


def analyze(
    directory: Directory,
    array: object | None = None,
    *,
    zones: ZoneSet | None = None,
    health: HealthProvider | None = None,
) -> list[Finding]:
    """Every finding for every site (or for `array`'s site: an array identity), in
    site order and, per site, errors first, then warnings, then Info, each in the
    order of the module docstring."""
    from casarray.dns.zones import build_zones

    if array is not None:
        arrays = directory.arrays.get(array)
        sites = [directory.sites.one(arrays[0].site)]
    else:
        arrays, sites = directory.arrays.get(), directory.sites.get()
    zones = zones if zones is not None else build_zones(directory)
    health = health if health is not None else live_health()
    context = _Context(directory, zones, health)
    findings: list[Finding] = []
    for site in sites:
        site_array = next((a for a in arrays if a.site.lower() == site.name.lower()), None)
        if site_array is None:
            found = context.site_without_array(site)
        else:
            found = context.check_array(site_array)
        findings.extend(sorted(found, key=lambda f: SEVERITIES.index(f.severity)))
    return findings


def is_clean(findings: Iterable[Finding]) -> bool:
    """No Error and no Warning (Info findings are recommendations)."""
    return not any(f.severity in (ERROR, WARNING) for f in findings)


class _Context:
    """What the checks share: the directory, the zones, the health provider, and what
    is read once (clusters, organization)."""

    def __init__(self, directory: Directory, zones: ZoneSet, health: HealthProvider) -> None:
        self.dir = directory
        self.zones = zones
        self.health = health
        self.clusters = directory.nlb.clusters()
        self.organization = directory.organization()

    # -- a site without an array ---------------------------------------------------

    def site_without_array(self, site: Site) -> list[Finding]:
        servers = self.dir.servers.get(site=site.name, role=ServerRole.ClientAccess)
        if not servers:
            return []
        names = ", ".join(s.name for s in servers)
        fqdn = self.suggested_fqdn(site.name)
        if len(servers) == 1:
            severity = INFO
            message = (
                f"Site {site.name} has a Client Access server ({names}) but no client "
                "access array. One is recommended even with one server: databases created "
                "from now on get the array's name, so clients need no change when a second "
                "server is added."
            )
        else:
            severity = WARNING
            message = (
                f"Site {site.name} has {len(servers)} Client Access servers ({names}) but no "
                "client access array: each database's users depend on one server, and a "
                "server's failure cuts them off."
            )
        fix = f'New-ClientAccessArray -Name "{site.name} CAS Array" -Fqdn {fqdn} -Site {site.name}'
        return [Finding(severity, NO_ARRAY, site.name, None, site.name, message, fix)]

    def suggested_fqdn(self, site: str) -> str:
        """<site>-cas.<default domain>, unless that names something already."""
        label = re.sub(r"[^a-z0-9-]+", "-", site.lower()).strip("-") or "site"
        domain = self.organization.default_domain
        taken = {a.fqdn.lower() for a in self.dir.arrays.get()}
        taken |= {s.fqdn.lower() for s in self.dir.servers.get()}
        taken |= {c.name.lower() for c in self.clusters}
        taken |= self.public_names()
        candidate, n = f"{label}-cas.{domain}", 2
        while candidate in taken:
            candidate, n = f"{label}-cas{n}.{domain}", n + 1
        return candidate

    def public_names(self) -> set[str]:
        return {f"{p}.{d}" for d in self.organization.accepted_domains for p in PUBLIC_NAMES}

    # -- an array ----------------------------------------------------------------------

    def check_array(self, array: ClientAccessArray) -> list[Finding]:
        members = self.dir.servers.get(site=array.site, role=ServerRole.ClientAccess)
        inside = resolve(self.zones.inside, array.fqdn)
        cluster = self.front(array, inside)
        findings = [
            *self.dns_record(array, inside, cluster, members),
            *self.balancer_address(array, inside, cluster, members),
            *self.balancer_nodes(array, cluster, members),
        ]
        maintenance = self.maintenance(array, members)
        findings += maintenance
        in_maintenance = {f.target for f in maintenance}
        findings += self.member_health(
            array, cluster, [m for m in members if m.name not in in_maintenance]
        )
        findings += self.certificates(array, members)
        findings += self.ews_urls(array, members)
        findings += self.databases(array)
        findings += self.outside(array)
        findings += self.public_name(array)
        return findings

    def front(self, array: ClientAccessArray, inside: Resolution) -> NlbCluster | None:
        """The NLB cluster in front of the array: linked to it, else named by its FQDN,
        else the one whose IP its name resolves to."""
        for cluster in self.clusters:
            if (cluster.client_access_array or "").lower() == array.name.lower():
                return cluster
        for cluster in self.clusters:
            if cluster.name.lower() == array.fqdn.lower():
                return cluster
        for cluster in self.clusters:
            if cluster.ip_address in inside.addresses:
                return cluster
        return None

    def _finding(
        self,
        severity: str,
        check: str,
        array: ClientAccessArray,
        target: str,
        message: str,
        fix: str,
    ) -> Finding:
        return Finding(severity, check, array.site, array.fqdn, target, message, fix)

    def new_cluster_command(self, array: ClientAccessArray) -> str:
        """New-NlbCluster following the array, on a free address of the site."""
        ip = self.free_address(array.site) or "<cluster IP address>"
        return (
            f"New-NlbCluster -ClusterName {array.fqdn} -ClusterPrimaryIP {ip} "
            f"-ClientAccessArray {array.fqdn}"
        )

    def free_address(self, site: str) -> str | None:
        """The lowest address from .10 up in the site's first subnet that no server or
        NLB cluster uses."""
        subnets = self.dir.sites.one(site).subnets
        ipv4 = [n for n in (ipaddress.ip_network(s) for s in subnets) if n.version == 4]
        if not ipv4:
            return None
        used = {s.ip_address for s in self.dir.servers.get()} | {
            c.ip_address for c in self.clusters
        }
        network = ipv4[0]
        for offset in range(10, network.num_addresses - 1):
            address = str(network.network_address + offset)
            if address not in used:
                return address
        return None

    def dns_record(
        self,
        array: ClientAccessArray,
        inside: Resolution,
        cluster: NlbCluster | None,
        members: Sequence[Server],
    ) -> list[Finding]:
        if inside.addresses:
            return []
        if inside.zone is None:
            parent = array.fqdn.split(".", 1)[1] if "." in array.fqdn else array.fqdn
            message = (
                f"The array FQDN {array.fqdn} has no DNS record: the DNS server is "
                f"authoritative for no zone that holds it, so clients can't resolve it."
            )
            fix = f"Add-DnsServerPrimaryZone -Name {parent}"
        elif cluster is not None:
            message = (
                f"The array FQDN {array.fqdn} has no address in zone {inside.zone}, though "
                f"the NLB cluster {cluster.name} ({cluster.ip_address}) fronts the array."
            )
            fix = (
                f"Add-DnsServerResourceRecordA -ZoneName {inside.zone} -Name "
                f"{_relative(array.fqdn, inside.zone)} -IPv4Address {cluster.ip_address}"
            )
        else:
            message = (
                f"The array FQDN {array.fqdn} has no DNS record: no NLB cluster serves the "
                "array (its A record comes from the cluster), so clients can't resolve it."
            )
            fix = self.new_cluster_command(array)
        return [self._finding(ERROR, NO_DNS_RECORD, array, array.fqdn, message, fix)]

    def balancer_address(
        self,
        array: ClientAccessArray,
        inside: Resolution,
        cluster: NlbCluster | None,
        members: Sequence[Server],
    ) -> list[Finding]:
        cluster_ips = {c.ip_address for c in self.clusters}
        stray = [a for a in inside.addresses if a not in cluster_ips]
        if not stray:
            return []
        servers = {s.ip_address: s.name for s in self.dir.servers.get()}
        shown = ", ".join(f"{a} (server {servers[a]})" if a in servers else a for a in stray)
        message = (
            f"The array FQDN {array.fqdn} resolves to {shown}, not to the IP of an NLB "
            "cluster: its clients bypass the balancer and lose failover."
        )
        assert inside.zone is not None
        host = _relative(array.fqdn, inside.zone)
        if inside.record_type == "CNAME":
            commands = [
                f"Remove-DnsServerResourceRecord -ZoneName {inside.zone} -Name {host} "
                "-RRType CName -Force"
            ]
        else:
            commands = [
                f"Remove-DnsServerResourceRecord -ZoneName {inside.zone} -Name {host} "
                f"-RRType {'AAAA' if ':' in a else 'A'} -RecordData {a} -Force"
                for a in stray
            ]
        if cluster is None:
            commands.append(self.new_cluster_command(array))
        return [
            self._finding(
                ERROR, NOT_BALANCER_ADDRESS, array, array.fqdn, message, "; ".join(commands)
            )
        ]

    def balancer_nodes(
        self, array: ClientAccessArray, cluster: NlbCluster | None, members: Sequence[Server]
    ) -> list[Finding]:
        if cluster is None:
            return []
        nodes = {n.lower(): n for n in cluster.nodes}
        member_names = {m.name.lower(): m.name for m in members}
        missing = [name for key, name in member_names.items() if key not in nodes]
        extra = [name for key, name in nodes.items() if key not in member_names]
        findings = []
        if extra:
            message = (
                f"The NLB cluster {cluster.name} in front of the array has nodes that aren't "
                f"members of the array (the Client Access servers of site {array.site}): "
                f"{', '.join(extra)}. Clients of {array.fqdn} are sent to them."
            )
            fix = "; ".join(f"Remove-NlbClusterNode -HostName {n} -Force" for n in extra)
            findings.append(
                self._finding(ERROR, BALANCER_EXTRA_NODES, array, ", ".join(extra), message, fix)
            )
        if missing:
            message = (
                f"Members of the array aren't nodes of the NLB cluster {cluster.name} in "
                f"front of it: {', '.join(missing)}. They get no clients of {array.fqdn}."
            )
            if cluster.follow_array:
                # a following cluster leaves out servers that are nodes of another cluster
                fix = "; ".join(f"Remove-NlbClusterNode -HostName {n} -Force" for n in missing)
            else:
                fix = (
                    f"Set-NlbCluster -HostName {cluster.name} -ClientAccessArray {array.fqdn} "
                    "-FollowArray"
                )
            findings.append(
                self._finding(
                    WARNING, BALANCER_MISSING_MEMBERS, array, ", ".join(missing), message, fix
                )
            )
        return findings

    def maintenance(self, array: ClientAccessArray, members: Sequence[Server]) -> list[Finding]:
        findings = []
        watched = (SERVER_WIDE_OFFLINE, *CLIENT_ACCESS_COMPONENTS)
        for member in members:
            states = [s for s in self.dir.components.get(member.name) if s.component in watched]
            off = [s for s in states if s.own_state == INACTIVE]
            if not off:
                continue
            shown = ", ".join(s.component for s in off)
            message = (
                f"The member {member.name} is out of service: {shown} Inactive "
                "(Set-ServerComponentState). Balancers send it no new clients; the other "
                "members carry its load."
            )
            fix = "; ".join(
                f"Set-ServerComponentState {member.name} -Component {s.component} "
                f"-State Active -Requester {e.requester}"
                for s in off
                for e in s.entries
                if e.state == INACTIVE
            )
            findings.append(
                self._finding(WARNING, MEMBER_IN_MAINTENANCE, array, member.name, message, fix)
            )
        return findings

    def member_health(
        self, array: ClientAccessArray, cluster: NlbCluster | None, members: Sequence[Server]
    ) -> list[Finding]:
        if not members:
            return []
        reports = self.health(array, cluster, members)
        findings = []
        unknown = []
        for member in members:
            report = reports.get(member.name) or MemberHealth(member.name, UNKNOWN)
            if report.state == UNHEALTHY:
                source = f" ({report.source})" if report.source else ""
                message = (
                    f"The member {member.name} is unhealthy{source}: {report.detail}. "
                    f"Clients of {array.fqdn} that reach it fail. Start it again, or take it "
                    f"out of the balancer meanwhile (Stop-NlbClusterNode -HostName "
                    f"{member.name} -Drain)."
                )
                fix = f"casarray server run {member.name}"
                findings.append(
                    self._finding(ERROR, MEMBER_UNHEALTHY, array, member.name, message, fix)
                )
            elif report.state == UNKNOWN:
                unknown.append(member.name)
        if len(unknown) == len(members):
            what = f"a balancer of {cluster.name}" if cluster is not None else "a balancer"
            message = (
                f"The health of the members ({', '.join(unknown)}) wasn't checked: neither "
                f"{what} nor a member's server runs on this machine."
            )
            fix = (
                f"casarray balancer run {cluster.name}"
                if cluster is not None
                else f"casarray server run {members[0].name}"
            )
            findings.append(
                self._finding(INFO, MEMBER_HEALTH_UNKNOWN, array, ", ".join(unknown), message, fix)
            )
        return findings

    def certificates(self, array: ClientAccessArray, members: Sequence[Server]) -> list[Finding]:
        findings = []
        for member in members:
            tests = self.dir.certificates.test(member.name, CERTIFICATE_SERVICES)
            lacking = [t.service for t in tests if array.fqdn.lower() in t.missing_names]
            if not lacking:
                continue
            names = unique_names(
                [array.fqdn]
                + [n for t in tests for n in t.required_names]
                # the fix's certificate covers the member's EWS URLs too (EwsUrlNotCovered)
                + (self.ews_hosts(member) if "IIS" in lacking else [])
            )
            services = ",".join(lacking)
            message = (
                f"No usable certificate enabled for {' or '.join(lacking)} on {member.name} "
                f"covers {array.fqdn}: clients connecting to the array get a certificate "
                "error."
            )
            certificate_file = f"{member.name}.cer"
            fix = (
                f'New-ExchangeCertificate -GenerateRequest -SubjectName "CN={array.fqdn}" '
                f"-DomainName {','.join(names)} -Server {member.name} | Get-LabCertificate "
                f"-Path {certificate_file}; Import-ExchangeCertificate -FileName "
                f"{certificate_file} -Server {member.name} | Enable-ExchangeCertificate "
                f"-Services {services} -Force"
            )
            findings.append(
                self._finding(ERROR, CERTIFICATE_MISSING, array, member.name, message, fix)
            )
        return findings

    def ews_hosts(self, member: Server) -> list[str]:
        """The host names (not addresses) of the member's EWS InternalUrl and
        ExternalUrl."""
        from urllib.parse import urlsplit

        hosts = []
        for vdir in self.dir.virtual_directories.get("WebServices", server=member.guid):
            for url in (vdir.internal_url, vdir.external_url):
                host = (urlsplit(url).hostname or "").lower() if url else ""
                if host and not _is_address(host):
                    hosts.append(host)
        return hosts

    def ews_urls(self, array: ClientAccessArray, members: Sequence[Server]) -> list[Finding]:
        """Members whose EWS InternalUrl or ExternalUrl names a host no certificate
        enabled for IIS there covers."""
        from urllib.parse import urlsplit

        findings = []
        for member in members:
            iis = self.dir.certificates.test(member.name, "IIS")
            if any(array.fqdn.lower() in t.missing_names for t in iis):
                continue  # CertificateMissing's fix covers the EWS URLs' names too
            for vdir in self.dir.virtual_directories.get("WebServices", server=member.guid):
                urls = [("InternalUrl", vdir.internal_url), ("ExternalUrl", vdir.external_url)]
                hosts = {which: (urlsplit(u).hostname or "").lower() for which, u in urls if u}
                names = [h for h in hosts.values() if h and not _is_address(h)]
                if not names:
                    continue
                tests = self.dir.certificates.test(member.name, "IIS", domain_names=names)
                missing = {n.lower() for t in tests for n in t.missing_names}
                for which, host in hosts.items():
                    if host not in missing:
                        continue
                    required = unique_names([host] + [n for t in tests for n in t.required_names])
                    message = (
                        f"The {which} of {vdir.identity} names {host}, which no usable "
                        f"certificate enabled for IIS on {member.name} covers: EWS clients "
                        "sent there (by Autodiscover) get a certificate error."
                    )
                    fix = (
                        f'New-ExchangeCertificate -GenerateRequest -SubjectName "CN={host}" '
                        f"-DomainName {','.join(required)} -Server {member.name} | "
                        f"Get-LabCertificate -Path {member.name}.cer; Import-ExchangeCertificate "
                        f"-FileName {member.name}.cer -Server {member.name} | "
                        "Enable-ExchangeCertificate -Services IIS -Force"
                    )
                    findings.append(
                        self._finding(
                            ERROR, EWS_URL_NOT_COVERED, array, f"{vdir.identity} {which}",
                            message, fix,
                        )
                    )  # fmt: skip
        return findings

    def databases(self, array: ClientAccessArray) -> list[Finding]:
        wrong: list[MailboxDatabase] = [
            db
            for db in self.dir.databases.get(site=array.site)
            if db.rpc_client_access_server.lower().rstrip(".") != array.fqdn.lower()
        ]
        if not wrong:
            return []
        shown = ", ".join(f"{db.name} ({db.rpc_client_access_server})" for db in wrong[:LISTED])
        if len(wrong) > LISTED:
            shown += f" and {len(wrong) - LISTED} more"
        message = (
            f"Mailbox databases of site {array.site} whose RpcClientAccessServer is not the "
            f"array {array.fqdn}: {shown}. Their users connect to that name, not the array, "
            "and lose failover. Creating an array doesn't update existing databases."
        )
        if len(wrong) == 1:
            fix = f"Set-MailboxDatabase {wrong[0].name} -RpcClientAccessServer {array.fqdn}"
        else:
            holders = list(dict.fromkeys(db.server for db in wrong))
            fix = "; ".join(
                f"Get-MailboxDatabase -Server {server} | Set-MailboxDatabase "
                f"-RpcClientAccessServer {array.fqdn}"
                for server in holders
            )
        target = ", ".join(db.name for db in wrong[:LISTED])
        return [self._finding(WARNING, DATABASES_NOT_ON_ARRAY, array, target, message, fix)]

    def outside(self, array: ClientAccessArray) -> list[Finding]:
        seen = resolve(self.zones.outside, array.fqdn)
        if not seen.exists:
            return []
        shown = ", ".join(seen.addresses) or seen.record_type or ""
        assert seen.zone is not None
        if seen.at_apex:
            message = (
                f"The array FQDN {array.fqdn} resolves from outside the organization's "
                f"networks ({shown}): it is the apex of zone {seen.zone}, which outside "
                "clients see. The array name should be internal only, or Outlook Anywhere "
                "clients outside try to reach it directly."
            )
            fix = f"Remove-DnsServerZone -Name {seen.zone} -Force"
        else:
            message = (
                f"The array FQDN {array.fqdn} resolves from outside the organization's "
                f"networks ({shown}). The array name should be internal only, or Outlook "
                "Anywhere clients outside try to reach it directly."
            )
            fix = (
                f'Add-DnsServerQueryResolutionPolicy -Name "Hide {array.fqdn}" -Action DENY '
                f'-Fqdn "EQ,{array.fqdn}"'
            )
        return [self._finding(WARNING, RESOLVABLE_OUTSIDE, array, array.fqdn, message, fix)]

    def public_name(self, array: ClientAccessArray) -> list[Finding]:
        if array.fqdn.lower() not in self.public_names():
            return []
        kind = (
            "the web mail (OWA) name"
            if array.fqdn.lower().startswith("mail.")
            else "the Autodiscover name"
        )
        message = (
            f"The array FQDN {array.fqdn} is {kind}. That name must resolve for clients "
            "outside, the array's must not: outside clients would try to reach the array "
            "directly, and casarray's DNS hides the name from them."
        )
        fix = (
            f'Set-ClientAccessArray -Identity "{array.name}" -Fqdn '
            f"{self.suggested_fqdn(array.site)}"
        )
        return [self._finding(WARNING, SAME_AS_PUBLIC_NAME, array, array.fqdn, message, fix)]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
