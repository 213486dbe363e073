"""Network Load Balancing: Windows features, NLB clusters, their nodes and port rules,
with NLB's names, values and defaults (the NetworkLoadBalancingClusters module).

- `Install-WindowsFeature NLB -ComputerName CAS01` records the feature on the server;
  a cluster can be created on a host only when the host has it, and a host added as
  a node must have it too.
- A cluster is named by its FQDN and has a primary IP (a valid IPv4 address, no
  server's address), a subnet mask (by default NLB's: the address class's mask, so
  255.0.0.0 for 127.77.1.10), an operation mode (Unicast, Multicast, IgmpMulticast:
  kept and shown, meaningless on loopback) and a data plane for casarray's balancer
  (Kernel, Proxy, or Auto: the balancer picks when it starts).
- Nodes: a server is a node of at most one cluster. HostID (1..32) is the lowest free
  one; HostPriority (1..32, unique in the cluster, 1 the highest) by default too. The
  node with the highest priority (lowest number) among the started ones is the
  default host, shown as "Converged(default)".
- Following an array (`New-NlbCluster -ClientAccessArray`, `Set-NlbCluster
  -FollowArray`): the node list is computed when read, as the array's membership is:
  every Client Access server of the array's site, so a server installed in the site
  is a node at once, with no command and no row written. Such a node has no row until
  something about it is changed (Set-NlbClusterNode, Stop-NlbClusterNode, ...): then
  its row is written with the HostID and HostPriority it showed. Until then it takes,
  in install order, the lowest HostID and HostPriority no other node of the cluster
  holds; nodes with rows keep theirs, so what a node shows never changes under it
  while it stays a member. Such nodes need no NLB feature (casarray's balancer serves
  them) and start Started. A server that is a node of another cluster by its own row
  stays there; the following cluster leaves it out.
- Port rules: StartPort..EndPort (0..65535, start <= end) on one cluster IP or on all
  ("All"), Protocol Tcp|Udp|Both, Mode Multiple|Single|Disabled, Affinity
  None|Single|Network, Timeout minutes; the ranges of rules on the same IP never
  overlap (NLB refuses it). A new cluster has NLB's default rule: 0..65535, All, Both,
  Multiple, Single. Per rule and node a LoadWeight 0..100, or Equal (no row).

`cluster_view` hands the balancer its `ClusterView` (read in one transaction).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import (
    AmbiguousIdentityError,
    ConflictError,
    InUseError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.schema import (
    ClientAccessArrayRow,
    NlbClusterRow,
    NlbNodeRow,
    NlbNodeWeightRow,
    NlbPortRuleRow,
    ServerRow,
    WindowsFeatureRow,
)
from casarray.directory.servers import SERVER

if TYPE_CHECKING:
    from casarray.balancer.model import ClusterView
    from casarray.directory.service import Directory

# -- NLB's values ------------------------------------------------------------------

NLB = "NLB"
RSAT_NLB = "RSAT-NLB"
FEATURES = {NLB: "Network Load Balancing", RSAT_NLB: "Network Load Balancing Tools"}

OPERATION_MODES = ("Unicast", "Multicast", "IgmpMulticast")
DATA_PLANES = ("Kernel", "Proxy", "Auto")
HOST_STATES = ("Started", "Stopped", "Suspended")  # InitialHostState
STARTED, STOPPED, SUSPENDED, DRAINING = "Started", "Stopped", "Suspended", "Draining"
ADMIN_STATES = (STARTED, STOPPED, SUSPENDED, DRAINING)
PROTOCOLS = ("Tcp", "Udp", "Both")
MODES = ("Multiple", "Single", "Disabled")
AFFINITIES = ("None", "Single", "Network")

MAX_NODES = 32
MIN_PORT, MAX_PORT = 0, 65535
DEFAULT_INTERFACE = "Ethernet"
DEFAULT_RULE = (0, 65535)
EQUAL = None  # a LoadWeight of "Equal"


def _choice(parameter: str, value: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip()
    for choice in choices:
        if choice.lower() == text.lower():
            return choice
    raise InvalidValueError(parameter, value, f"is not one of {', '.join(choices)}.")


def default_subnet_mask(ip: str) -> str:
    """NLB's default mask for a cluster IP: its address class's (A: 255.0.0.0, B:
    255.255.0.0, C and above: 255.255.255.0)."""
    first = int(ip.split(".")[0])
    if first < 128:
        return "255.0.0.0"
    if first < 192:
        return "255.255.0.0"
    return "255.255.255.0"


def subnet_mask(parameter: str, value: str) -> str:
    text = str(value).strip()
    try:
        network = ipaddress.IPv4Network(f"0.0.0.0/{text}")
        ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidValueError(
            parameter, value, "is not a subnet mask (for example 255.255.255.0)."
        ) from None
    if network.prefixlen == 0:
        raise InvalidValueError(parameter, value, "is not a subnet mask (it masks nothing).")
    return str(network.netmask)


def port(parameter: str, value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidValueError(parameter, value, "is not a port number.") from None
    if not MIN_PORT <= number <= MAX_PORT:
        raise InvalidValueError(parameter, value, f"is not a port from {MIN_PORT} to {MAX_PORT}.")
    return number


def _in_range(parameter: str, value: object, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidValueError(
            parameter, value, f"is not a number from {low} to {high}."
        ) from None
    if not low <= number <= high:
        raise InvalidValueError(parameter, value, f"is not from {low} to {high}.")
    return number


def _lowest_free(taken: Iterable[int]) -> int | None:
    used = set(taken)
    return next((n for n in range(1, MAX_NODES + 1) if n not in used), None)


def _rule_ip(value: str | None) -> str | None:
    """None for every cluster IP ("All", NLB's 255.255.255.255 too), else the IPv4."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("all", "", "255.255.255.255"):
        return None
    return validate.ipv4("IP", text)


def _ip_text(ip: str | None) -> str:
    return ip if ip is not None else "All"


# -- records -------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowsFeature:
    """Get-WindowsFeature's view of one feature on one server."""

    server: str
    name: str
    display_name: str
    installed: bool


@dataclass(frozen=True)
class FeatureResult:
    """What Install-/Uninstall-WindowsFeature did: the features it changed (none when
    nothing needed changing)."""

    server: str
    changed: tuple[WindowsFeature, ...]

    @property
    def success(self) -> bool:
        return True

    @property
    def exit_code(self) -> str:
        return "Success" if self.changed else "NoChangeNeeded"


@dataclass(frozen=True)
class NlbCluster:
    guid: str
    name: str  # the FQDN
    ip_address: str
    subnet_mask: str
    operation_mode: str
    data_plane: str
    interface_name: str
    client_access_array: str | None
    follow_array: bool
    nodes: tuple[str, ...]  # server names, by HostID
    when_created: datetime
    when_changed: datetime


@dataclass(frozen=True)
class NlbNode:
    cluster: str
    cluster_guid: str
    cluster_ip: str
    name: str  # the server's name
    fqdn: str
    ip_address: str
    interface_name: str
    host_id: int
    host_priority: int
    initial_host_state: str
    admin_state: str  # Started, Stopped, Suspended, Draining
    drain_until: datetime | None
    is_default: bool  # the started node with the highest priority (lowest number)
    from_array: bool  # a member of the followed array with no row of its own yet
    # Set by the balancer (e.g. "Unhealthy: imap 143: connection refused"); the
    # directory knows no health.
    health: str | None = None

    @property
    def state(self) -> str:
        """The state as Get-NlbClusterNode shows it."""
        if self.health:
            return self.health
        if self.admin_state == STARTED:
            return "Converged(default)" if self.is_default else "Converged"
        return self.admin_state


@dataclass(frozen=True)
class NlbPortRule:
    cluster: str
    cluster_guid: str
    cluster_ip: str
    ip: str | None  # None: every cluster IP ("All")
    start_port: int
    end_port: int
    protocol: str
    mode: str
    affinity: str
    timeout: int  # minutes
    weights: tuple[tuple[str, int], ...] = field(default=())  # (node, LoadWeight); else Equal
    proxy_protocol: bool = False  # a PROXY v2 header to the nodes (casarray's own)

    @property
    def ip_text(self) -> str:
        return _ip_text(self.ip)

    def weight(self, node: str) -> int | None:
        """A node's LoadWeight, None for Equal."""
        return next((w for n, w in self.weights if n.lower() == node.lower()), None)


CLUSTER = identity.Kind(
    label="NLB cluster",
    row=NlbClusterRow,
    keys=("name_key", "ip_address"),
    dn=lambda names, row: f"CN={row.name},CN=NLB Clusters,{names.config_dn}",
    describe=lambda row: f"{row.name} ({row.ip_address})",
)


@dataclass
class _Member:
    """A node as read: its server, and its row (None for a following node not yet
    written) with the values it shows."""

    server: ServerRow
    row: NlbNodeRow | None
    host_id: int
    host_priority: int
    interface_name: str


class NlbService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    # -- Windows features ----------------------------------------------------------

    def _feature_name(self, name: str) -> str:
        return _choice("Name", name, tuple(FEATURES))

    def _has_feature(self, session: Session, server_id: int, name: str = NLB) -> bool:
        return (
            session.scalars(
                select(WindowsFeatureRow.id).where(
                    WindowsFeatureRow.server_id == server_id, WindowsFeatureRow.name == name
                )
            ).first()
            is not None
        )

    def install_feature(self, server: object, names: Iterable[str]) -> FeatureResult:
        """Install-WindowsFeature: record the features on the server."""

        wanted = list(dict.fromkeys(self._feature_name(n) for n in names))
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            changed = []
            for name in wanted:
                if not self._has_feature(session, row.id, name):
                    session.add(
                        WindowsFeatureRow(server_id=row.id, name=name, when_installed=utcnow())
                    )
                    changed.append(WindowsFeature(row.name, name, FEATURES[name], True))
            return FeatureResult(row.name, tuple(changed))

    def uninstall_feature(self, server: object, names: Iterable[str]) -> FeatureResult:
        """Uninstall-WindowsFeature. NLB can't go while the server is a node."""
        wanted = list(dict.fromkeys(self._feature_name(n) for n in names))
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            if NLB in wanted:
                cluster = self._cluster_of_server(session, row)
                if cluster is not None:
                    raise InUseError(
                        f"The server '{row.name}' is a node of the NLB cluster "
                        f"'{cluster.name}'; remove it first (Remove-NlbClusterNode "
                        f"-HostName {row.name}).",
                        dependents=[cluster.name],
                        target=row.name,
                    )
            changed = []
            for name in wanted:
                found = session.scalars(
                    select(WindowsFeatureRow).where(
                        WindowsFeatureRow.server_id == row.id, WindowsFeatureRow.name == name
                    )
                ).first()
                if found is not None:
                    session.delete(found)
                    changed.append(WindowsFeature(row.name, name, FEATURES[name], False))
            return FeatureResult(row.name, tuple(changed))

    def features(self, server: object, names: Iterable[str] | None = None) -> list[WindowsFeature]:
        """Get-WindowsFeature: the catalogue's features on the server, installed or not."""
        wanted = [self._feature_name(n) for n in names] if names else list(FEATURES)
        with self.dir.store.read() as session:
            row = self.dir.servers.resolve_row(session, server)
            installed = set(
                session.scalars(
                    select(WindowsFeatureRow.name).where(WindowsFeatureRow.server_id == row.id)
                )
            )
            return [WindowsFeature(row.name, n, FEATURES[n], n in installed) for n in wanted]

    # -- reading -------------------------------------------------------------------

    def _array_of(self, session: Session, row: NlbClusterRow) -> ClientAccessArrayRow | None:
        if row.array_id is None:
            return None
        return session.get(ClientAccessArrayRow, row.array_id)

    def _following(self, session: Session, row: NlbClusterRow) -> ClientAccessArrayRow | None:
        """The array whose members are the cluster's nodes, if it follows one."""
        return self._array_of(session, row) if row.follow_array else None

    def _members(self, session: Session, row: NlbClusterRow) -> list[_Member]:
        """The cluster's nodes, by HostID (see the module's note on following)."""
        rows = {
            node.server_id: node
            for node in session.scalars(select(NlbNodeRow).where(NlbNodeRow.cluster_id == row.id))
        }
        array = self._following(session, row)
        if array is None:
            servers = {
                s.id: s
                for s in session.scalars(select(ServerRow).where(ServerRow.id.in_(list(rows))))
            }
            members = [
                _Member(servers[sid], n, n.host_id, n.host_priority, n.interface_name)
                for sid, n in rows.items()
            ]
            return sorted(members, key=lambda m: m.host_id)
        site_servers = self.dir.servers.client_access_rows(session, array.site_id)
        elsewhere = set(
            session.scalars(
                select(NlbNodeRow.server_id).where(
                    NlbNodeRow.cluster_id != row.id,
                    NlbNodeRow.server_id.in_([s.id for s in site_servers]),
                )
            )
        )
        candidates = [s for s in site_servers if s.id not in elsewhere]
        members = [
            _Member(s, rows[s.id], rows[s.id].host_id, rows[s.id].host_priority, "")
            for s in candidates
            if s.id in rows
        ]
        for member in members:
            assert member.row is not None
            member.interface_name = member.row.interface_name
        ids = {m.host_id for m in members}
        priorities = {m.host_priority for m in members}
        for server in candidates:  # install order
            if server.id in rows:
                continue
            host_id, priority = _lowest_free(ids), _lowest_free(priorities)
            if host_id is None or priority is None:
                break  # NLB's limit: 32 hosts
            ids.add(host_id)
            priorities.add(priority)
            members.append(_Member(server, None, host_id, priority, row.interface_name))
        return sorted(members, key=lambda m: m.host_id)

    def _cluster_record(
        self, session: Session, row: NlbClusterRow, members: list[_Member] | None = None
    ) -> NlbCluster:
        members = self._members(session, row) if members is None else members
        array = self._array_of(session, row)
        return NlbCluster(
            guid=row.guid,
            name=row.name,
            ip_address=row.ip_address,
            subnet_mask=row.subnet_mask,
            operation_mode=row.operation_mode,
            data_plane=row.data_plane,
            interface_name=row.interface_name,
            client_access_array=array.name if array is not None else None,
            follow_array=bool(row.follow_array and array is not None),
            nodes=tuple(m.server.name for m in members),
            when_created=row.when_created,
            when_changed=row.when_changed,
        )

    @staticmethod
    def _admin_state(node: NlbNodeRow | None, now: datetime) -> tuple[str, datetime | None]:
        if node is None:
            return STARTED, None
        if node.state == DRAINING and node.drain_until is not None and node.drain_until <= now:
            return STOPPED, None  # the drain timed out: the rest were cut
        return node.state, node.drain_until if node.state == DRAINING else None

    def _node_records(self, row: NlbClusterRow, members: list[_Member]) -> list[NlbNode]:
        now = utcnow()
        states = {m.server.id: self._admin_state(m.row, now) for m in members}
        started = [m for m in members if states[m.server.id][0] == STARTED]
        default = min(started, key=lambda m: m.host_priority).server.id if started else None
        return [
            NlbNode(
                cluster=row.name,
                cluster_guid=row.guid,
                cluster_ip=row.ip_address,
                name=m.server.name,
                fqdn=m.server.fqdn,
                ip_address=m.server.ip_address,
                interface_name=m.interface_name,
                host_id=m.host_id,
                host_priority=m.host_priority,
                initial_host_state=m.row.initial_host_state if m.row is not None else STARTED,
                admin_state=states[m.server.id][0],
                drain_until=states[m.server.id][1],
                is_default=m.server.id == default,
                from_array=m.row is None,
            )
            for m in members
        ]

    def _resolve_cluster(self, session: Session, cluster: object) -> NlbClusterRow:
        """A cluster by GUID, FQDN or IP, or the cluster a server (name, FQDN) is a
        node of: NLB's cmdlets name a cluster by one of its hosts (-HostName)."""
        hits = identity.find(session, self.dir.names, CLUSTER, cluster)
        unique = {hit.id: hit for hit in hits}
        if len(unique) > 1:
            raise AmbiguousIdentityError(
                CLUSTER.label, str(cluster), (CLUSTER.describe(h) for h in unique.values())
            )
        if unique:
            return next(iter(unique.values()))
        shown = getattr(cluster, "name", None) or str(cluster)
        servers = identity.find(session, self.dir.names, SERVER, cluster)
        if len(servers) == 1:
            found = self._cluster_of_server(session, servers[0])
            if found is not None:
                return found
            raise InvalidOperationError(
                f"The server '{servers[0].name}' isn't a node of any NLB cluster.",
                target=servers[0].name,
            )
        raise NotFoundError(CLUSTER.label, str(shown))

    def _cluster_of_server(self, session: Session, server: ServerRow) -> NlbClusterRow | None:
        """The cluster the server is a node of: by its row, or as a member of an array
        a cluster follows."""
        node = session.scalars(select(NlbNodeRow).where(NlbNodeRow.server_id == server.id)).first()
        if node is not None:
            return session.get(NlbClusterRow, node.cluster_id)
        if not server.client_access:
            return None
        return session.scalars(
            select(NlbClusterRow)
            .join(ClientAccessArrayRow, NlbClusterRow.array_id == ClientAccessArrayRow.id)
            .where(
                NlbClusterRow.follow_array.is_(True),
                ClientAccessArrayRow.site_id == server.site_id,
            )
        ).first()

    def clusters(self, cluster: object | None = None) -> list[NlbCluster]:
        """Get-NlbCluster: one cluster (by FQDN, IP, GUID or one of its hosts) or all."""
        with self.dir.store.read() as session:
            if cluster is not None:
                rows = [self._resolve_cluster(session, cluster)]
            else:
                rows = list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.name_key)))
            return [self._cluster_record(session, row) for row in rows]

    def cluster(self, cluster: object) -> NlbCluster:
        return self.clusters(cluster)[0]

    def nodes(self, cluster: object | None = None, node: object | None = None) -> list[NlbNode]:
        """Get-NlbClusterNode: the nodes of one cluster or of all, or one node (by its
        server's name)."""
        with self.dir.store.read() as session:
            if node is not None:
                server = self.dir.servers.resolve_row(session, node)
                row = self._cluster_of_server(session, server)
                if row is None or (
                    cluster is not None and self._resolve_cluster(session, cluster).id != row.id
                ):
                    raise NotFoundError("NLB cluster node", server.name)
                records = self._node_records(row, self._members(session, row))
                return [r for r in records if r.name == server.name]
            if cluster is not None:
                rows = [self._resolve_cluster(session, cluster)]
            else:
                rows = list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.name_key)))
            out: list[NlbNode] = []
            for row in rows:
                out.extend(self._node_records(row, self._members(session, row)))
            return out

    def node(self, node: object) -> NlbNode:
        return self.nodes(node=node)[0]

    # -- checks -----------------------------------------------------------------------

    def _require_feature(self, session: Session, server: ServerRow) -> None:
        if not self._has_feature(session, server.id):
            raise InvalidOperationError(
                f"The NLB feature isn't installed on {server.name}; run "
                f"Install-WindowsFeature NLB -ComputerName {server.name}",
                target=server.name,
            )

    def _require_free(self, session: Session, server: ServerRow) -> None:
        other = self._cluster_of_server(session, server)
        if other is not None:
            raise ConflictError(
                f"The server '{server.name}' is already a node of the NLB cluster "
                f"'{other.name}'; a server can be in only one cluster.",
                conflicting=other.name,
                target=server.name,
            )

    def _check_cluster_ip(self, session: Session, ip: str, exclude_id: int | None) -> None:
        server = session.scalars(select(ServerRow).where(ServerRow.ip_address == ip)).first()
        if server is not None:
            raise ConflictError(
                f"The cluster IP {ip} is the address of server '{server.name}'; a cluster "
                "needs a virtual address of its own.",
                conflicting=server.name,
                target=ip,
            )
        other = session.scalars(select(NlbClusterRow).where(NlbClusterRow.ip_address == ip)).first()
        if other is not None and other.id != exclude_id:
            raise ConflictError(
                f"The IP address {ip} is already the primary IP of the NLB cluster '{other.name}'.",
                conflicting=other.name,
                target=ip,
            )

    def _check_cluster_name(self, session: Session, name: str, exclude_id: int | None) -> None:
        key = name.lower()
        other = session.scalars(select(NlbClusterRow).where(NlbClusterRow.name_key == key)).first()
        if other is not None and other.id != exclude_id:
            raise ConflictError(
                f"The NLB cluster '{other.name}' ({other.ip_address}) already has that name.",
                conflicting=other.name,
                target=name,
            )
        server = session.scalars(
            select(ServerRow).where(or_(ServerRow.name_key == key, ServerRow.fqdn_key == key))
        ).first()
        if server is not None:
            raise ConflictError(
                f"The cluster name '{name}' is the name of server '{server.name}' "
                f"({server.fqdn}); a cluster needs a virtual name of its own.",
                conflicting=server.fqdn,
                target=name,
            )

    def _check_follow(
        self, session: Session, row_id: int | None, array: ClientAccessArrayRow
    ) -> None:
        """The array is followed by no other cluster and none of its members is a node
        of another cluster's own (conflicts are refused here, not resolved later)."""
        other = session.scalars(
            select(NlbClusterRow).where(NlbClusterRow.array_id == array.id)
        ).first()
        if other is not None and other.id != row_id:
            raise ConflictError(
                f"The client access array '{array.name}' is already served by the NLB "
                f"cluster '{other.name}'.",
                conflicting=other.name,
                target=array.name,
            )
        for server in self.dir.servers.client_access_rows(session, array.site_id):
            node = session.scalars(
                select(NlbNodeRow).where(NlbNodeRow.server_id == server.id)
            ).first()
            if node is not None and node.cluster_id != row_id:
                cluster = session.get(NlbClusterRow, node.cluster_id)
                assert cluster is not None
                raise ConflictError(
                    f"The server '{server.name}', a member of the array '{array.name}', is "
                    f"already a node of the NLB cluster '{cluster.name}'; a server can be in "
                    "only one cluster. Remove it there first.",
                    conflicting=cluster.name,
                    target=server.name,
                )

    # -- clusters -------------------------------------------------------------------------

    def new_cluster(
        self,
        cluster_name: str,
        ip: str,
        *,
        host: object | None = None,
        interface: str | None = None,
        subnet_mask: str | None = None,
        operation_mode: str = "Unicast",
        array: object | None = None,
        data_plane: str = "Auto",
    ) -> NlbCluster:
        """New-NlbCluster on `host` (its first node), or following `array`'s members
        (then `host`, if given, must be one of them)."""

        name = validate.fqdn("ClusterName", cluster_name)
        address = validate.ipv4("ClusterPrimaryIP", ip)
        mask = (
            subnet_mask_value
            if (subnet_mask_value := subnet_mask_or_none(subnet_mask)) is not None
            else default_subnet_mask(address)
        )
        mode = _choice("OperationMode", operation_mode, OPERATION_MODES)
        plane = _choice("DataPlane", data_plane, DATA_PLANES)
        interface_name = validate.display_name("InterfaceName", interface or DEFAULT_INTERFACE, 255)
        if host is None and array is None:
            raise InvalidValueError(
                "HostName",
                "",
                "is missing: name the host the cluster starts on (or pass "
                "-ClientAccessArray to make the array's members its nodes).",
            )
        with self.dir.store.write() as session:
            host_row = self.dir.servers.resolve_row(session, host) if host is not None else None
            array_row = self.dir.arrays.resolve_row(session, array) if array is not None else None
            self._check_cluster_name(session, name, None)
            self._check_cluster_ip(session, address, None)
            if array_row is not None:
                self._check_follow(session, None, array_row)
            if host_row is not None:
                self._require_feature(session, host_row)
                self._require_free(session, host_row)
                if array_row is not None and not (
                    host_row.client_access and host_row.site_id == array_row.site_id
                ):
                    raise InvalidOperationError(
                        f"The server '{host_row.name}' isn't a member of the client access "
                        f"array '{array_row.name}' (its Client Access servers of site "
                        f"'{array_row.site.name}'), whose members the cluster's nodes are.",
                        target=host_row.name,
                    )
            now = utcnow()
            row = NlbClusterRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                ip_address=address,
                subnet_mask=mask,
                operation_mode=mode,
                data_plane=plane,
                interface_name=interface_name,
                array_id=array_row.id if array_row is not None else None,
                follow_array=array_row is not None,
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            if host_row is not None:
                session.add(
                    NlbNodeRow(
                        cluster_id=row.id,
                        server_id=host_row.id,
                        interface_name=interface_name,
                        host_id=1,
                        host_priority=1,
                        initial_host_state=STARTED,
                        state=STARTED,
                        drain_until=None,
                        when_added=now,
                    )
                )
            start, end = DEFAULT_RULE
            session.add(
                NlbPortRuleRow(
                    cluster_id=row.id,
                    ip=None,
                    start_port=start,
                    end_port=end,
                    protocol="Both",
                    mode="Multiple",
                    affinity="Single",
                    timeout=0,
                )
            )
            session.flush()
            return self._cluster_record(session, row)

    def set_cluster(
        self,
        cluster: object,
        *,
        name: str | None = None,
        operation_mode: str | None = None,
        data_plane: str | None = None,
        follow_array: bool | None = None,
        array: object | None = None,
    ) -> NlbCluster:
        """Set-NlbCluster. -FollowArray without an array links the array whose FQDN is
        the cluster's name; turning it off keeps the nodes it had (their rows are
        written)."""

        new_name = validate.fqdn("ClusterName", name) if name is not None else None
        mode = (
            _choice("OperationMode", operation_mode, OPERATION_MODES)
            if operation_mode is not None
            else None
        )
        plane = _choice("DataPlane", data_plane, DATA_PLANES) if data_plane is not None else None
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            if new_name is not None:
                self._check_cluster_name(session, new_name, row.id)
                row.name, row.name_key = new_name, new_name.lower()
            if mode is not None:
                row.operation_mode = mode
            if plane is not None:
                row.data_plane = plane
            if array is not None:
                array_row = self.dir.arrays.resolve_row(session, array)
                if row.follow_array and row.array_id != array_row.id:
                    self._materialise_all(session, row)
                row.array_id = array_row.id
                if follow_array is None:
                    follow_array = True
            if follow_array is True:
                self._follow(session, row)
            elif follow_array is False and row.follow_array:
                self._materialise_all(session, row)
                row.follow_array = False
            row.when_changed = utcnow()
            session.flush()
            return self._cluster_record(session, row)

    def _follow(self, session: Session, row: NlbClusterRow) -> None:
        array_row = self._array_of(session, row)
        if array_row is None:
            array_row = session.scalars(
                select(ClientAccessArrayRow).where(ClientAccessArrayRow.fqdn_key == row.name_key)
            ).first()
            if array_row is None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' serves no client access array, and no "
                    "array has its name as FQDN: name one with -ClientAccessArray.",
                    target=row.name,
                )
        self._check_follow(session, row.id, array_row)
        outsiders = [
            s.name
            for s in session.scalars(
                select(ServerRow)
                .join(NlbNodeRow, NlbNodeRow.server_id == ServerRow.id)
                .where(NlbNodeRow.cluster_id == row.id)
                .order_by(ServerRow.install_order)
            )
            if not (s.client_access and s.site_id == array_row.site_id)
        ]
        if outsiders:
            raise InvalidOperationError(
                f"The NLB cluster '{row.name}' has nodes that aren't members of the array "
                f"'{array_row.name}': {', '.join(outsiders)}. A cluster that follows an array "
                "has exactly its members as nodes; remove them first (Remove-NlbClusterNode).",
                target=row.name,
            )
        row.array_id = array_row.id
        row.follow_array = True

    def _materialise(self, session: Session, row: NlbClusterRow, member: _Member) -> NlbNodeRow:
        """Write the row of a following node with the values it showed."""

        if member.row is not None:
            return member.row
        node = NlbNodeRow(
            cluster_id=row.id,
            server_id=member.server.id,
            interface_name=member.interface_name,
            host_id=member.host_id,
            host_priority=member.host_priority,
            initial_host_state=STARTED,
            state=STARTED,
            drain_until=None,
            when_added=utcnow(),
        )
        session.add(node)
        session.flush()
        member.row = node
        return node

    def _materialise_all(self, session: Session, row: NlbClusterRow) -> None:
        members = self._members(session, row)
        keep = {m.server.id for m in members}
        session.execute(
            delete(NlbNodeRow).where(
                NlbNodeRow.cluster_id == row.id, NlbNodeRow.server_id.not_in(keep)
            )
        )
        for member in members:
            self._materialise(session, row, member)

    def remove_cluster(self, cluster: object) -> NlbCluster:
        """Remove-NlbCluster: the cluster, its nodes' places and its rules."""
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            record = self._cluster_record(session, row)
            session.delete(row)
            return record

    # -- nodes ------------------------------------------------------------------------------

    def add_node(self, cluster: object, server: object, interface: str | None = None) -> NlbNode:
        """Add-NlbClusterNode: HostID and HostPriority the lowest free ones."""

        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            server_row = self.dir.servers.resolve_row(session, server)
            array = self._following(session, row)
            if array is not None:
                member = self._cluster_of_server(session, server_row)
                if member is not None and member.id == row.id:
                    raise ConflictError(
                        f"The server '{server_row.name}' is already a node of the NLB "
                        f"cluster '{row.name}' (a member of the array '{array.name}' it "
                        "follows).",
                        conflicting=row.name,
                        target=server_row.name,
                    )
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' follows the client access array "
                    f"'{array.name}': its nodes are the array's members (the Client Access "
                    f"servers of site '{array.site.name}'). Install the server in that site, "
                    "or stop following (Set-NlbCluster -FollowArray:$false).",
                    target=server_row.name,
                )
            self._require_free(session, server_row)
            self._require_feature(session, server_row)
            members = self._members(session, row)
            host_id = _lowest_free(m.host_id for m in members)
            priority = _lowest_free(m.host_priority for m in members)
            if host_id is None or priority is None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' already has {MAX_NODES} nodes, NLB's limit.",
                    target=row.name,
                )
            interface_name = validate.display_name(
                "NewNodeInterface", interface or row.interface_name, 255
            )
            node = NlbNodeRow(
                cluster_id=row.id,
                server_id=server_row.id,
                interface_name=interface_name,
                host_id=host_id,
                host_priority=priority,
                initial_host_state=STARTED,
                state=STARTED,
                drain_until=None,
                when_added=utcnow(),
            )
            session.add(node)
            session.flush()
            return self._one_node(session, row, server_row.id)

    def _one_node(self, session: Session, row: NlbClusterRow, server_id: int) -> NlbNode:
        members = self._members(session, row)
        records = self._node_records(row, members)
        index = next(i for i, m in enumerate(members) if m.server.id == server_id)
        return records[index]

    def _node_for_change(
        self, session: Session, node: object
    ) -> tuple[NlbClusterRow, list[_Member], _Member]:
        server = self.dir.servers.resolve_row(session, node)
        row = self._cluster_of_server(session, server)
        if row is None:
            raise NotFoundError("NLB cluster node", server.name)
        members = self._members(session, row)
        member = next((m for m in members if m.server.id == server.id), None)
        if member is None:  # a member beyond NLB's 32
            raise NotFoundError("NLB cluster node", server.name)
        return row, members, member

    def remove_node(self, node: object) -> NlbNode:
        """Remove-NlbClusterNode. The cluster's last node can't go (remove the cluster)."""
        with self.dir.store.write() as session:
            row, members, member = self._node_for_change(session, node)
            record = self._node_records(row, members)[members.index(member)]
            array = self._following(session, row)
            if array is not None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' follows the client access array "
                    f"'{array.name}', so '{member.server.name}' is a node as long as it is a "
                    "member. Stop it (Stop-NlbClusterNode) or stop following "
                    "(Set-NlbCluster -FollowArray:$false) first.",
                    target=member.server.name,
                )
            if len(members) == 1:
                raise InvalidOperationError(
                    f"'{member.server.name}' is the last node of the NLB cluster "
                    f"'{row.name}'; remove the cluster instead (Remove-NlbCluster).",
                    target=member.server.name,
                )
            assert member.row is not None
            session.execute(
                delete(NlbNodeWeightRow).where(
                    NlbNodeWeightRow.server_id == member.server.id,
                    NlbNodeWeightRow.rule_id.in_(
                        select(NlbPortRuleRow.id).where(NlbPortRuleRow.cluster_id == row.id)
                    ),
                )
            )
            session.delete(member.row)
            return record

    def set_node(
        self,
        node: object,
        *,
        host_priority: int | None = None,
        initial_host_state: str | None = None,
    ) -> NlbNode:
        """Set-NlbClusterNode -HostPriority (1..32, unique) -InitialHostState."""
        priority = (
            _in_range("HostPriority", host_priority, 1, MAX_NODES)
            if host_priority is not None
            else None
        )
        initial = (
            _choice("InitialHostState", initial_host_state, HOST_STATES)
            if initial_host_state is not None
            else None
        )
        with self.dir.store.write() as session:
            row, members, member = self._node_for_change(session, node)
            if priority is not None:
                holder = next(
                    (m for m in members if m.host_priority == priority and m is not member), None
                )
                if holder is not None:
                    raise ConflictError(
                        f"The host priority {priority} is already that of node "
                        f"'{holder.server.name}' in the NLB cluster '{row.name}'; each node "
                        "needs its own (1 to 32, 1 the highest).",
                        conflicting=holder.server.name,
                        target=member.server.name,
                    )
            for other in members:  # keep every node's values where they are
                self._materialise(session, row, other)
            node_row = self._materialise(session, row, member)
            if priority is not None:
                node_row.host_priority = priority
            if initial is not None:
                node_row.initial_host_state = initial
            session.flush()
            return self._one_node(session, row, member.server.id)

    def _set_state(self, node: object, change: Any) -> NlbNode:
        with self.dir.store.write() as session:
            row, members, member = self._node_for_change(session, node)
            for other in members:
                self._materialise(session, row, other)
            node_row = self._materialise(session, row, member)
            change(node_row, member.server)
            session.flush()
            return self._one_node(session, row, member.server.id)

    def start_node(self, node: object) -> NlbNode:
        """Start-NlbClusterNode: Started (a suspended node must be resumed first)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                raise InvalidOperationError(
                    f"The node '{server.name}' is suspended; resume it first "
                    f"(Resume-NlbClusterNode -HostName {server.name}).",
                    target=server.name,
                )
            n.state, n.drain_until = STARTED, None

        return self._set_state(node, change)

    def stop_node(
        self, node: object, *, drain: bool = False, timeout: int | None = None
    ) -> NlbNode:
        """Stop-NlbClusterNode: Stopped at once, or with `drain` Draining (no new
        connections; existing ones run until they end or `timeout` seconds pass)."""

        if timeout is not None:
            if not drain:
                raise InvalidValueError(
                    "Timeout", timeout, "applies only with -Drain (a drainstop's limit)."
                )
            timeout = _in_range("Timeout", timeout, 0, 2**31 - 1)

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                raise InvalidOperationError(
                    f"The node '{server.name}' is suspended; resume it first "
                    f"(Resume-NlbClusterNode -HostName {server.name}).",
                    target=server.name,
                )
            if drain and n.state in (STARTED, DRAINING):
                n.state = DRAINING
                n.drain_until = utcnow() + timedelta(seconds=timeout) if timeout else None
            else:
                n.state, n.drain_until = STOPPED, None

        return self._set_state(node, change)

    def suspend_node(self, node: object) -> NlbNode:
        """Suspend-NlbClusterNode: Suspended (stops, and won't start until resumed)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            n.state, n.drain_until = SUSPENDED, None

        return self._set_state(node, change)

    def resume_node(self, node: object) -> NlbNode:
        """Resume-NlbClusterNode: a suspended node becomes Stopped (start it next)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                n.state, n.drain_until = STOPPED, None

        return self._set_state(node, change)

    # -- port rules --------------------------------------------------------------------------

    def _rule_record(
        self, session: Session, cluster: NlbClusterRow, rule: NlbPortRuleRow
    ) -> NlbPortRule:
        weights = session.execute(
            select(ServerRow.name, NlbNodeWeightRow.load_weight)
            .join(ServerRow, NlbNodeWeightRow.server_id == ServerRow.id)
            .where(NlbNodeWeightRow.rule_id == rule.id)
            .order_by(ServerRow.install_order)
        ).all()
        return NlbPortRule(
            cluster=cluster.name,
            cluster_guid=cluster.guid,
            cluster_ip=cluster.ip_address,
            ip=rule.ip,
            start_port=rule.start_port,
            end_port=rule.end_port,
            protocol=rule.protocol,
            mode=rule.mode,
            affinity=rule.affinity,
            timeout=rule.timeout,
            weights=tuple((n, w) for n, w in weights),
            proxy_protocol=bool(rule.proxy_protocol),
        )

    def _rules(self, session: Session, cluster: NlbClusterRow) -> list[NlbPortRuleRow]:
        return list(
            session.scalars(
                select(NlbPortRuleRow)
                .where(NlbPortRuleRow.cluster_id == cluster.id)
                .order_by(NlbPortRuleRow.start_port, NlbPortRuleRow.id)
            )
        )

    def _check_overlap(
        self,
        session: Session,
        cluster: NlbClusterRow,
        ip: str | None,
        start: int,
        end: int,
        exclude_id: int | None,
    ) -> None:
        if start > end:
            raise InvalidValueError(
                "EndPort",
                end,
                f"is lower than the start port {start}; a rule covers StartPort to EndPort.",
            )
        for other in self._rules(session, cluster):
            if other.id == exclude_id or other.ip != ip:
                continue
            if other.start_port <= end and start <= other.end_port:
                raise ConflictError(
                    f"The port range {start}-{end} on {_ip_text(ip)} overlaps the port rule "
                    f"{other.start_port}-{other.end_port} on {_ip_text(other.ip)} of the NLB "
                    f"cluster '{cluster.name}'; NLB doesn't allow port rules on the same IP "
                    "to overlap. Narrow or remove that rule first (Set-NlbClusterPortRule "
                    f"-Port {other.start_port} -NewStartPort/-NewEndPort, or "
                    f"Remove-NlbClusterPortRule -Port {other.start_port}).",
                    conflicting=f"{other.start_port}-{other.end_port}",
                    target=f"{start}-{end}",
                )

    def _check_ip_of_cluster(self, cluster: NlbClusterRow, ip: str | None) -> None:
        if ip is not None and ip != cluster.ip_address:
            raise InvalidValueError(
                "IP",
                ip,
                f"isn't an IP address of the NLB cluster '{cluster.name}' (its address is "
                f"{cluster.ip_address}); use it or All.",
            )

    def add_port_rule(
        self,
        cluster: object,
        start_port: int,
        end_port: int,
        *,
        ip: str | None = None,
        protocol: str = "Both",
        mode: str = "Multiple",
        affinity: str = "Single",
        timeout: int = 0,
        proxy_protocol: bool = False,
    ) -> NlbPortRule:
        """Add-NlbClusterPortRule, with NLB's defaults."""
        start, end = port("StartPort", start_port), port("EndPort", end_port)
        rule_ip = _rule_ip(ip)
        values = dict(
            protocol=_choice("Protocol", protocol, PROTOCOLS),
            mode=_choice("Mode", mode, MODES),
            affinity=_choice("Affinity", affinity, AFFINITIES),
            timeout=_in_range("Timeout", timeout, 0, 2**31 - 1),
            proxy_protocol=bool(proxy_protocol),
        )
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            self._check_ip_of_cluster(row, rule_ip)
            self._check_overlap(session, row, rule_ip, start, end, None)
            rule = NlbPortRuleRow(
                cluster_id=row.id, ip=rule_ip, start_port=start, end_port=end, **values
            )
            session.add(rule)
            session.flush()
            return self._rule_record(session, row, rule)

    def _resolve_rule(
        self, session: Session, cluster: NlbClusterRow, port_number: int | None, ip: Any
    ) -> NlbPortRuleRow:
        """The rule covering `port_number` (on `ip` when given); with no port, the
        cluster's only rule."""
        rules = self._rules(session, cluster)
        if ip is not None:
            wanted = _rule_ip(ip)
            rules = [r for r in rules if r.ip == wanted]
        if port_number is not None:
            number = port("Port", port_number)
            rules = [r for r in rules if r.start_port <= number <= r.end_port]
        if not rules:
            where = f" covering port {port_number}" if port_number is not None else ""
            on = f" on {ip}" if ip is not None else ""
            raise InvalidOperationError(
                f"The NLB cluster '{cluster.name}' has no port rule{where}{on}.",
                target=cluster.name,
            )
        if len(rules) > 1:
            listed = ", ".join(f"{r.start_port}-{r.end_port} on {_ip_text(r.ip)}" for r in rules)
            raise InvalidOperationError(
                f"Several port rules of the NLB cluster '{cluster.name}' match: {listed}. "
                "Name one with -Port and -IP.",
                target=cluster.name,
            )
        return rules[0]

    def port_rules(
        self, cluster: object | None = None, *, port_number: int | None = None, ip: Any = None
    ) -> list[NlbPortRule]:
        """Get-NlbClusterPortRule: a cluster's rules (or every cluster's), optionally
        those covering a port or on an IP."""
        with self.dir.store.read() as session:
            if cluster is not None:
                rows = [self._resolve_cluster(session, cluster)]
            else:
                rows = list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.name_key)))
            out = []
            wanted_ip = _rule_ip(ip) if ip is not None else None
            number = port("Port", port_number) if port_number is not None else None
            for row in rows:
                for rule in self._rules(session, row):
                    if ip is not None and rule.ip != wanted_ip:
                        continue
                    if number is not None and not rule.start_port <= number <= rule.end_port:
                        continue
                    out.append(self._rule_record(session, row, rule))
            return out

    def set_port_rule(
        self,
        cluster: object,
        port_number: int | None = None,
        *,
        ip: Any = None,
        new_start_port: int | None = None,
        new_end_port: int | None = None,
        new_ip: Any = None,
        new_protocol: str | None = None,
        new_mode: str | None = None,
        new_affinity: str | None = None,
        new_timeout: int | None = None,
        proxy_protocol: bool | None = None,
    ) -> NlbPortRule:
        """Set-NlbClusterPortRule: the rule covering `port_number` gets new values."""
        start = port("NewStartPort", new_start_port) if new_start_port is not None else None
        end = port("NewEndPort", new_end_port) if new_end_port is not None else None
        protocol = _choice("NewProtocol", new_protocol, PROTOCOLS) if new_protocol else None
        mode = _choice("NewMode", new_mode, MODES) if new_mode else None
        affinity = _choice("NewAffinity", new_affinity, AFFINITIES) if new_affinity else None
        timeout = (
            _in_range("NewTimeout", new_timeout, 0, 2**31 - 1) if new_timeout is not None else None
        )
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            rule = self._resolve_rule(session, row, port_number, ip)
            target_ip = rule.ip if new_ip is None else _rule_ip(new_ip)
            self._check_ip_of_cluster(row, target_ip)
            target_start = start if start is not None else rule.start_port
            target_end = end if end is not None else rule.end_port
            self._check_overlap(session, row, target_ip, target_start, target_end, rule.id)
            rule.ip, rule.start_port, rule.end_port = target_ip, target_start, target_end
            if protocol is not None:
                rule.protocol = protocol
            if mode is not None:
                rule.mode = mode
            if affinity is not None:
                rule.affinity = affinity
            if timeout is not None:
                rule.timeout = timeout
            if proxy_protocol is not None:
                rule.proxy_protocol = bool(proxy_protocol)
            session.flush()
            return self._rule_record(session, row, rule)

    def remove_port_rule(
        self, cluster: object, port_number: int | None = None, *, ip: Any = None
    ) -> NlbPortRule:
        """Remove-NlbClusterPortRule: the rule covering `port_number`."""
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            rule = self._resolve_rule(session, row, port_number, ip)
            record = self._rule_record(session, row, rule)
            session.delete(rule)
            return record

    def set_node_weight(
        self,
        cluster: object,
        node: object,
        load_weight: int | None,
        *,
        port_number: int | None = None,
        ip: Any = None,
    ) -> NlbPortRule:
        """Set-NlbClusterPortRuleNodeWeight: a node's LoadWeight (0..100) on the rule
        covering `port_number`, or Equal (`load_weight` None)."""
        weight = _in_range("LoadWeight", load_weight, 0, 100) if load_weight is not None else None
        with self.dir.store.write() as session:
            row = self._resolve_cluster(session, cluster)
            rule = self._resolve_rule(session, row, port_number, ip)
            server = self.dir.servers.resolve_row(session, node)
            if server.id not in {m.server.id for m in self._members(session, row)}:
                raise InvalidOperationError(
                    f"The server '{server.name}' isn't a node of the NLB cluster '{row.name}'.",
                    target=server.name,
                )
            existing = session.get(NlbNodeWeightRow, (rule.id, server.id))
            if weight is None:
                if existing is not None:
                    session.delete(existing)
            elif existing is not None:
                existing.load_weight = weight
            else:
                session.add(
                    NlbNodeWeightRow(rule_id=rule.id, server_id=server.id, load_weight=weight)
                )
            session.flush()
            return self._rule_record(session, row, rule)

    # -- the balancer's view ---------------------------------------------------------------

    def cluster_view(
        self, cluster: object, *, backend_offset: int = 0, listen_offset: int = 0
    ) -> ClusterView:
        """The balancer's `ClusterView` of a cluster, read in one transaction. A node
        whose drain timed out is Stopped; weights not set are Equal (50)."""
        from casarray.balancer import model

        with self.dir.store.read() as session:
            row = self._resolve_cluster(session, cluster)
            nodes = self._node_records(row, self._members(session, row))
            rules = [self._rule_record(session, row, r) for r in self._rules(session, row)]
        return model.ClusterView(
            name=row.name,
            ip=row.ip_address,
            nodes=tuple(
                model.Node(
                    name=n.name,
                    address=n.ip_address,
                    host_id=n.host_id,
                    priority=n.host_priority,
                    state=model.HostState(n.admin_state),
                    fqdn=n.fqdn,
                    drain_until=n.drain_until,
                )
                for n in nodes
            ),
            rules=tuple(
                model.PortRule(
                    start_port=r.start_port,
                    end_port=r.end_port,
                    ip=r.ip,
                    protocol=model.RuleProtocol(r.protocol),
                    mode=model.FilteringMode(r.mode),
                    affinity=model.Affinity(r.affinity),
                    timeout_minutes=r.timeout,
                    weights=dict(r.weights),
                    proxy_protocol=r.proxy_protocol,
                )
                for r in rules
            ),
            backend_offset=backend_offset,
            listen_offset=listen_offset,
        )


def subnet_mask_or_none(value: str | None) -> str | None:
    return subnet_mask("SubnetMask", value) if value is not None else None
