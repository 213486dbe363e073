"""What every NLB service reads: a cluster by its identity or by one of its hosts, the
cluster a server is a node of, and a cluster's nodes with what each shows.

A cluster that follows a client access array (`New-NlbCluster -ClientAccessArray`,
`Set-NlbCluster -FollowArray`) has its node list computed when read, as the array's
membership is: every Client Access server of the array's site, so a server installed
in the site is a node at once, with no command and no row written. Such a node has no
row until something about it is changed (Set-NlbClusterNode, Stop-NlbClusterNode,
...): then its row is written with the HostID and HostPriority it showed
(`materialise`). Until then it takes, in install order, the lowest HostID and
HostPriority no other node of the cluster holds; nodes with rows keep theirs, so what
a node shows never changes under it while it stays a member. Such nodes need no NLB
feature (casarray's balancer serves them) and start Started. A server that is a node
of another cluster by its own row stays there; the following cluster leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casarray.directory import identity
from casarray.directory.base import utcnow
from casarray.directory.errors import (
    AmbiguousIdentityError,
    ConflictError,
    InvalidOperationError,
    NotFoundError,
)
from casarray.directory.nlb.objects import NlbCluster, NlbNode
from casarray.directory.nlb.values import DRAINING, STARTED, STOPPED, lowest_free
from casarray.directory.schema import ClientAccessArrayRow, NlbClusterRow, NlbNodeRow, ServerRow
from casarray.directory.servers import SERVER

if TYPE_CHECKING:
    from casarray.directory.service import Directory

CLUSTER = identity.Kind(
    label="NLB cluster",
    row=NlbClusterRow,
    keys=("name_key", "ip_address"),
    dn=lambda names, row: f"CN={row.name},CN=NLB Clusters,{names.config_dn}",
    describe=lambda row: f"{row.name} ({row.ip_address})",
)


@dataclass
class Member:
    """A node as read: its server, and its row (None for a following node not yet
    written) with the values it shows."""

    server: ServerRow
    row: NlbNodeRow | None
    host_id: int
    host_priority: int
    interface_name: str


# -- clusters ----------------------------------------------------------------------------


def resolve_cluster(directory: Directory, session: Session, cluster: object) -> NlbClusterRow:
    """A cluster by GUID, FQDN or IP, or the cluster a server (name, FQDN) is a node
    of: NLB's cmdlets name a cluster by one of its hosts (-HostName)."""
    hits = identity.find(session, directory.names, CLUSTER, cluster)
    unique = {hit.id: hit for hit in hits}
    if len(unique) > 1:
        raise AmbiguousIdentityError(
            CLUSTER.label, str(cluster), (CLUSTER.describe(h) for h in unique.values())
        )
    if unique:
        return next(iter(unique.values()))
    shown = getattr(cluster, "name", None) or str(cluster)
    servers = identity.find(session, directory.names, SERVER, cluster)
    if len(servers) == 1:
        found = cluster_of_server(session, servers[0])
        if found is not None:
            return found
        raise InvalidOperationError(
            f"The server '{servers[0].name}' isn't a node of any NLB cluster.",
            target=servers[0].name,
        )
    raise NotFoundError(CLUSTER.label, str(shown))


def cluster_rows(
    directory: Directory, session: Session, cluster: object | None
) -> list[NlbClusterRow]:
    """The cluster named by `cluster`, or every cluster by name when it is None."""
    if cluster is not None:
        return [resolve_cluster(directory, session, cluster)]
    return list(session.scalars(select(NlbClusterRow).order_by(NlbClusterRow.name_key)))


def cluster_of_server(session: Session, server: ServerRow) -> NlbClusterRow | None:
    """The cluster the server is a node of: by its row, or as a member of an array a
    cluster follows."""
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


def require_free(session: Session, server: ServerRow) -> None:
    """Refuse a server that is already a node: a server is in at most one cluster."""
    other = cluster_of_server(session, server)
    if other is not None:
        raise ConflictError(
            f"The server '{server.name}' is already a node of the NLB cluster "
            f"'{other.name}'; a server can be in only one cluster.",
            conflicting=other.name,
            target=server.name,
        )


def array_of(session: Session, row: NlbClusterRow) -> ClientAccessArrayRow | None:
    if row.array_id is None:
        return None
    return session.get(ClientAccessArrayRow, row.array_id)


def following(session: Session, row: NlbClusterRow) -> ClientAccessArrayRow | None:
    """The array whose members are the cluster's nodes, if it follows one."""
    return array_of(session, row) if row.follow_array else None


def cluster_record(
    directory: Directory,
    session: Session,
    row: NlbClusterRow,
    members: list[Member] | None = None,
) -> NlbCluster:
    members = nodes_of(directory, session, row) if members is None else members
    array = array_of(session, row)
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
        heartbeat_period=row.heartbeat_period,
        heartbeat_tolerance=row.heartbeat_tolerance,
    )


# -- nodes ---------------------------------------------------------------------------------


def nodes_of(directory: Directory, session: Session, row: NlbClusterRow) -> list[Member]:
    """The cluster's nodes, by HostID (see the module's note on following)."""
    rows = {
        node.server_id: node
        for node in session.scalars(select(NlbNodeRow).where(NlbNodeRow.cluster_id == row.id))
    }
    array = following(session, row)
    if array is None:
        servers = {
            s.id: s for s in session.scalars(select(ServerRow).where(ServerRow.id.in_(list(rows))))
        }
        members = [
            Member(servers[sid], n, n.host_id, n.host_priority, n.interface_name)
            for sid, n in rows.items()
        ]
        return sorted(members, key=lambda m: m.host_id)
    site_servers = directory.servers.client_access_rows(session, array.site_id)
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
        Member(s, rows[s.id], rows[s.id].host_id, rows[s.id].host_priority, "")
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
        host_id, priority = lowest_free(ids), lowest_free(priorities)
        if host_id is None or priority is None:
            break  # NLB's limit: 32 hosts
        ids.add(host_id)
        priorities.add(priority)
        members.append(Member(server, None, host_id, priority, row.interface_name))
    return sorted(members, key=lambda m: m.host_id)


def _admin_state(node: NlbNodeRow | None, now: datetime) -> tuple[str, datetime | None]:
    if node is None:
        return STARTED, None
    if node.state == DRAINING and node.drain_until is not None and node.drain_until <= now:
        return STOPPED, None  # the drain timed out: the rest were cut
    return node.state, node.drain_until if node.state == DRAINING else None


def node_records(row: NlbClusterRow, members: list[Member]) -> list[NlbNode]:
    now = utcnow()
    states = {m.server.id: _admin_state(m.row, now) for m in members}
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


def materialise(session: Session, row: NlbClusterRow, member: Member) -> NlbNodeRow:
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


def materialise_all(directory: Directory, session: Session, row: NlbClusterRow) -> None:
    """Write the row of every node the cluster shows, and drop the rows of those it
    doesn't (beyond NLB's 32): the nodes stay as they are when it stops following."""
    members = nodes_of(directory, session, row)
    keep = {m.server.id for m in members}
    session.execute(
        delete(NlbNodeRow).where(NlbNodeRow.cluster_id == row.id, NlbNodeRow.server_id.not_in(keep))
    )
    for member in members:
        materialise(session, row, member)
